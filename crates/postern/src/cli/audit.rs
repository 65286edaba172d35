//! `postern audit verify/export`, and [`audited`], through which every administrative command
//! records what it did.

use std::io::Write;

use super::*;
use crate::audit::AuditEvent;

#[derive(Subcommand, Debug)]
pub(super) enum AuditCmd {
    /// Check the hash chain, the head row and the head file; names the first bad entry and
    /// exits non-zero when the log was tampered with
    Verify,
    /// Write entries as JSON lines, oldest first
    Export {
        /// Only entries since: a duration ago (24h, 7d) or an RFC 3339 time
        #[arg(long)]
        since: Option<String>,
        /// Write to this file instead of stdout
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// `cli:<$USER>`, or `cli:unknown`.
pub(super) fn cli_actor() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("cli:{user}")
}

/// Records an act done from the command line, then appends the new head to the head file.
pub(super) async fn audited(
    cfg: &Config,
    store: &Store,
    now: i64,
    action: &str,
    target: &str,
    reason: Option<&str>,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let actor = cli_actor();
    let ev = AuditEvent {
        actor: &actor,
        source_ip: None,
        action,
        target,
        reason,
        detail,
    };
    crate::audit::record(store, now, ev)
        .await
        .context("recording the act in the audit log")?;
    crate::audit::write_head(store, &cfg.audit.head_path(&cfg.data_dir), now).await?;
    Ok(())
}

pub(super) async fn audit(
    cmd: AuditCmd,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    match cmd {
        AuditCmd::Verify => {
            let head_file = cfg.audit.head_path(&cfg.data_dir);
            match crate::audit::verify(&store, Some(&head_file)).await? {
                Ok(v) => {
                    if json_out {
                        println!("{}", json!({"ok": true, "verified": v}));
                    } else {
                        println!(
                            "audit log intact: {} entries, head {} (checked against {} lines of {})",
                            v.entries,
                            v.head_hash,
                            v.head_file_lines,
                            head_file.display()
                        );
                    }
                    Ok(())
                }
                Err(b) => {
                    if json_out {
                        println!(
                            "{}",
                            json!({"ok": false, "bad_entry": b.seq(), "error": b.to_string()})
                        );
                    }
                    bail!("audit log broken: {b}")
                }
            }
        }
        AuditCmd::Export { since, output } => {
            let since = match since {
                None => i64::MIN,
                Some(s) => match keys::parse_rfc3339_ms(&s) {
                    Some(t) => t,
                    None => now - parse_duration_ms(&s).map_err(|_| {
                        anyhow::anyhow!(
                            "--since {s:?}: expected a duration ago (24h, 7d) or an RFC 3339 time"
                        )
                    })?,
                },
            };
            let mut out: Box<dyn std::io::Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let (mut after, mut n) = (0u64, 0u64);
            loop {
                let page = store.audit_entries(after, since, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for e in &page {
                    writeln!(out, "{}", crate::audit::export_line(e))?;
                    n += 1;
                }
            }
            out.flush()?;
            if let Some(p) = output {
                eprintln!("wrote {n} entries to {}", p.display());
            }
            Ok(())
        }
    }
}
