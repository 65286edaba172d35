//! `postern suppressions`: a tenant's suppression list, CSV import and export.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum SuppressionCmd {
    /// List a tenant's suppressed addresses
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Suppress addresses
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(required = true)]
        addresses: Vec<String>,
        #[arg(long, default_value = "manual")]
        reason: String,
    },
    /// Stop suppressing addresses
    Remove {
        #[arg(long)]
        tenant: String,
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Import a CSV with a header row and an `address` column (optional: reason, detail);
    /// nothing is imported unless every row is valid
    Import {
        #[arg(long)]
        tenant: String,
        file: PathBuf,
    },
    /// Write the list as CSV (address,reason,source,detail,created_at) to FILE or stdout
    Export {
        #[arg(long)]
        tenant: String,
        file: Option<PathBuf>,
    },
}

pub(super) fn checked_addresses(addresses: &[String]) -> anyhow::Result<Vec<String>> {
    addresses
        .iter()
        .map(|a| {
            crate::domain::EmailAddress::parse(a.trim())
                .map(|e| e.as_str().to_ascii_lowercase())
                .map_err(|e| anyhow::anyhow!("{a:?} is not an email address: {e}"))
        })
        .collect()
}

pub(super) async fn suppressions(
    cmd: SuppressionCmd,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    use crate::store::Suppression;
    let store = open_store(cfg).await?;
    let entry = |address: String, reason: &str, source: &str, detail: Option<String>| Suppression {
        address,
        reason: reason.to_owned(),
        source: source.to_owned(),
        detail,
        created_at: now,
    };
    match cmd {
        SuppressionCmd::List { tenant } => {
            let list = store
                .suppressions(&tenant_id(&store, &tenant).await?)
                .await?;
            if json_out {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for s in &list {
                    println!(
                        "{}\t{}\t{}\t{}",
                        s.address,
                        s.reason,
                        s.source,
                        rfc3339(s.created_at)
                    );
                }
                println!("{} suppressed", list.len());
            }
        }
        SuppressionCmd::Add {
            tenant,
            addresses,
            reason,
        } => {
            let id = tenant_id(&store, &tenant).await?;
            let list: Vec<_> = checked_addresses(&addresses)?
                .into_iter()
                .map(|a| entry(a, &reason, "cli", None))
                .collect();
            let n = store.suppress(&id, &list).await?;
            let addresses: Vec<&str> = list.iter().map(|s| s.address.as_str()).collect();
            let detail = json!({"addresses": addresses, "added": n});
            let target = format!("tenant:{tenant}");
            audited(
                cfg,
                &store,
                now,
                "suppression.add",
                &target,
                Some(&reason),
                detail,
            )
            .await?;
            if json_out {
                println!("{}", json!({"added": n, "already": list.len() as u64 - n}));
            } else {
                println!(
                    "Suppressed {n} addresses for {tenant} ({} already were).",
                    list.len() as u64 - n
                );
            }
        }
        SuppressionCmd::Remove { tenant, addresses } => {
            let id = tenant_id(&store, &tenant).await?;
            let addresses = checked_addresses(&addresses)?;
            let n = store.unsuppress(&id, &addresses).await?;
            let detail = json!({"addresses": addresses, "removed": n});
            let target = format!("tenant:{tenant}");
            audited(
                cfg,
                &store,
                now,
                "suppression.remove",
                &target,
                None,
                detail,
            )
            .await?;
            if json_out {
                println!("{}", json!({"removed": n}));
            } else {
                println!("Removed {n} addresses from {tenant}'s suppression list.");
            }
        }
        SuppressionCmd::Import { tenant, file } => {
            let id = tenant_id(&store, &tenant).await?;
            let list = read_suppression_csv(&file, now)?;
            let n = store.suppress(&id, &list).await?;
            let detail = json!({"file": file, "rows": list.len(), "added": n});
            let target = format!("tenant:{tenant}");
            audited(
                cfg,
                &store,
                now,
                "suppression.import",
                &target,
                None,
                detail,
            )
            .await?;
            if json_out {
                println!("{}", json!({"rows": list.len(), "added": n}));
            } else {
                println!(
                    "Imported {} rows into {tenant}'s suppression list ({n} new).",
                    list.len()
                );
            }
        }
        SuppressionCmd::Export { tenant, file } => {
            let list = store
                .suppressions(&tenant_id(&store, &tenant).await?)
                .await?;
            let out: Box<dyn std::io::Write> = match &file {
                Some(f) => Box::new(
                    std::fs::File::create(f)
                        .with_context(|| format!("creating {}", f.display()))?,
                ),
                None => Box::new(std::io::stdout()),
            };
            let mut w = csv::Writer::from_writer(out);
            w.write_record(["address", "reason", "source", "detail", "created_at"])?;
            for s in &list {
                w.write_record([
                    s.address.as_str(),
                    &s.reason,
                    &s.source,
                    s.detail.as_deref().unwrap_or(""),
                    &rfc3339(s.created_at),
                ])?;
            }
            w.flush()?;
            if let Some(f) = file {
                eprintln!("Wrote {} addresses to {}", list.len(), f.display());
            }
        }
    }
    Ok(())
}

/// Reads a suppression CSV (header row with an `address` column; `reason` and `detail`
/// optional). Every bad row is reported, and then nothing is imported.
pub(super) fn read_suppression_csv(
    path: &std::path::Path,
    now: i64,
) -> anyhow::Result<Vec<crate::store::Suppression>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let headers = r.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let Some(addr_col) = col("address") else {
        bail!(
            "{}: the first row must be a header with an `address` column",
            path.display()
        );
    };
    let (reason_col, detail_col) = (col("reason"), col("detail"));
    let mut list = Vec::new();
    let mut bad = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                bad.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let raw = rec.get(addr_col).unwrap_or("");
        match crate::domain::EmailAddress::parse(raw) {
            Ok(a) => list.push(crate::store::Suppression {
                address: a.as_str().to_ascii_lowercase(),
                reason: reason_col
                    .and_then(|c| rec.get(c))
                    .filter(|r| !r.is_empty())
                    .unwrap_or("import")
                    .to_owned(),
                source: "import".into(),
                detail: detail_col
                    .and_then(|c| rec.get(c))
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned),
                created_at: now,
            }),
            Err(e) => bad.push(format!(
                "line {line}: {raw:?} is not an email address ({e})"
            )),
        }
    }
    if !bad.is_empty() {
        let more = bad.len().saturating_sub(10);
        let shown = bad.into_iter().take(10).collect::<Vec<_>>().join("\n  ");
        bail!(
            "{}: nothing imported; fix these rows first:\n  {shown}{}",
            path.display(),
            if more > 0 {
                format!("\n  ... and {more} more")
            } else {
                String::new()
            }
        );
    }
    Ok(list)
}
