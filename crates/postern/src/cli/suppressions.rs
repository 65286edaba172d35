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
            let list: Vec<_> = ops::checked_addresses(&addresses)?
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
            let addresses = ops::checked_addresses(&addresses)?;
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
            let input = std::fs::File::open(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let list = ops::read_suppression_csv(input, &file.display().to_string(), now)?;
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
            ops::write_suppression_csv(out, &list)?;
            if let Some(f) = file {
                eprintln!("Wrote {} addresses to {}", list.len(), f.display());
            }
        }
    }
    Ok(())
}
