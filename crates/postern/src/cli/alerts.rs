//! `postern alerts list` and `alerts ack ID`: the notices operators were sent.

use super::*;
use crate::store::StoreError;

#[derive(Subcommand, Debug)]
pub(super) enum AlertsCmd {
    /// Notices sent to operators (unacknowledged ones unless --all), newest first
    List {
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Acknowledge a notice: its escalation stops
    Ack {
        id: String,
        /// Who (default: $USER)
        #[arg(long)]
        actor: Option<String>,
    },
}

pub(super) async fn alerts(
    cmd: AlertsCmd,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    match cmd {
        AlertsCmd::List { all, limit } => {
            let notices = store.notices(all, limit.clamp(1, 10_000)).await?;
            if json_out {
                println!("{}", serde_json::to_string(&notices)?);
                return Ok(());
            }
            if notices.is_empty() {
                println!("No {}alerts.", if all { "" } else { "unacknowledged " });
            }
            for n in notices {
                let ack = match (&n.acked_by, n.acked_at) {
                    (Some(by), Some(at)) => format!("acked by {by} at {}", rfc3339(at)),
                    _ => "open".into(),
                };
                println!(
                    "{}\t{}\t{}\t{} {}\t{}x\tlevel {}\t{}\t{}",
                    n.id,
                    rfc3339(n.last_at),
                    n.signal,
                    n.scope,
                    n.target,
                    n.count,
                    n.level,
                    n.sent,
                    ack
                );
            }
            Ok(())
        }
        AlertsCmd::Ack { id, actor } => {
            let actor = actor
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "operator".into());
            let n = match store.ack_notice(&id, &actor, now).await {
                Err(StoreError::NotFound) => {
                    bail!("no alert {id} (see `postern alerts list --all`)")
                }
                r => r?,
            };
            if json_out {
                println!("{}", serde_json::to_string(&n)?);
            } else {
                println!(
                    "Acknowledged {} ({} on {} {})",
                    n.id, n.signal, n.scope, n.target
                );
            }
            Ok(())
        }
    }
}
