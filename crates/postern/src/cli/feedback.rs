//! `postern bounce classify` and `postern feedback ingest/list`.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum FeedbackCmd {
    /// Apply bounce/complaint/auto-reply messages to the store: events on the messages they are
    /// about, suppressions, orphans kept as evidence
    Ingest {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Recent feedback, newest first
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum BounceCmd {
    /// Read bounce/complaint/auto-reply messages; print one JSON line per bounced recipient
    Classify {
        /// RFC 822 message files
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Add the diagnostic text each reading was made from
        #[arg(long)]
        verbose: bool,
    },
}

/// `bounce classify`: one JSON line per reading on stdout, one line per unreadable file on
/// stderr; fails (non-zero exit) when any file could not be classified, after reading them all.
pub(super) fn classify_files(files: Vec<PathBuf>, verbose: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut failed = 0usize;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in &files {
        let file = path.display().to_string();
        let readings = std::fs::read(path)
            .with_context(|| format!("reading {file}"))
            .and_then(|raw| crate::feedback::classify(&raw).map_err(anyhow::Error::from));
        match readings {
            Ok(readings) => {
                for r in readings {
                    let mut line = json!({
                        "file": file,
                        "recipient": r.recipient,
                        "status": r.status,
                        "reply_code": r.reply_code,
                        "reason": r.reason.as_str(),
                        "hard_bounce": r.hard_bounce,
                        "feedback_type": r.feedback_type,
                        "action": r.action,
                    });
                    if verbose {
                        line["diagnostic"] = json!(r.diagnostic);
                    }
                    writeln!(out, "{line}")?;
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{file}: {e:#}");
            }
        }
    }
    out.flush()?;
    if failed > 0 {
        bail!("{failed} of {} files could not be classified", files.len());
    }
    Ok(())
}

pub(super) async fn feedback(
    cmd: FeedbackCmd,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    use crate::feedback::ingest::{Origin, ingest};
    let store = open_store(cfg).await?;
    match cmd {
        FeedbackCmd::Ingest { files } => {
            let origin = Origin {
                source: "cli",
                tenant_id: None,
                verp_message_id: None,
                guard: None,
                metrics: None,
            };
            let mut failed = 0;
            for f in &files {
                let raw = match std::fs::read(f) {
                    Ok(r) => r,
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: {e}", f.display());
                        continue;
                    }
                };
                match ingest(&store, &raw, &origin, &cfg.suppression, now).await {
                    Ok(applied) => {
                        for a in applied {
                            if json_out {
                                println!(
                                    "{}",
                                    json!({"file": f.display().to_string(), "feedback": a})
                                );
                            } else {
                                let r = &a.record;
                                println!(
                                    "{}\t{}\t{}\t{}\t{}{}",
                                    f.display(),
                                    r.recipient,
                                    r.kind,
                                    r.reason,
                                    r.message_id.as_deref().map_or(
                                        "orphan (no message of ours)".to_owned(),
                                        |m| format!("message {m}")
                                    ),
                                    if a.suppressed { "\tsuppressed" } else { "" }
                                );
                            }
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: {e}", f.display());
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} files could not be applied", files.len());
            }
        }
        FeedbackCmd::List { tenant, limit } => {
            let id = tenant_id_if(&store, tenant.as_deref()).await?;
            let list = store
                .feedback(id.as_deref(), limit.clamp(1, 10_000))
                .await?;
            if json_out {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for r in list {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        rfc3339(r.received_at),
                        r.kind,
                        r.reason,
                        r.recipient,
                        r.message_id.as_deref().unwrap_or("orphan")
                    );
                }
            }
        }
    }
    Ok(())
}
