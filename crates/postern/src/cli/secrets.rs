//! `postern secrets set/list/rotate-kek`. Values come from stdin, never from the command line
//! (which other users can read in the process list and which shells keep in their history).

use std::io::Read;

use super::*;
use crate::secrets::{KekSource, Keyring};

#[derive(Subcommand, Debug)]
pub(super) enum SecretsCmd {
    /// Store a secret read from stdin (a new version when NAME exists). Refer to it from a
    /// provider setting as "secret:NAME".
    Set { name: String },
    /// Names, versions and KEK ids; never values
    List,
    /// Wrap every data key with a new KEK, in one transaction. Then configure the new KEK as
    /// kek_* and the old one as previous_kek_* until every node runs with the new one.
    RotateKek {
        #[arg(long, group = "new_kek")]
        new_kek_file: Option<PathBuf>,
        #[arg(long, group = "new_kek")]
        new_kek_env: Option<String>,
        #[arg(long, group = "new_kek")]
        new_kek_command: Option<String>,
    },
}

pub(super) async fn secrets(
    cmd: SecretsCmd,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    match cmd {
        SecretsCmd::Set { name } => {
            crate::secrets::check_name(&name)?;
            let keys = Keyring::from_config(&cfg.secrets)?;
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("Type the secret, then Ctrl-D (it is not echoed to any log):");
            }
            let mut value = secrecy::zeroize::Zeroizing::new(Vec::new());
            std::io::stdin()
                .read_to_end(&mut value)
                .context("reading the secret from stdin")?;
            // One trailing newline is the terminal's or echo's, not the secret's.
            if value.ends_with(b"\n") {
                value.pop();
                if value.ends_with(b"\r") {
                    value.pop();
                }
            }
            if value.is_empty() {
                bail!("no secret on stdin (pipe it in: `postern secrets set {name} < file`)");
            }
            if std::str::from_utf8(&value).is_err() {
                bail!("the secret on stdin is not UTF-8 text");
            }
            let store = open_store(cfg).await?;
            let version = crate::secrets::set(&store, &keys, &name, &value, now).await?;
            let detail = json!({"version": version, "kek_id": keys.current.id()});
            audited(
                cfg,
                &store,
                now,
                "secret.set",
                &format!("secret:{name}"),
                None,
                detail,
            )
            .await?;
            if json_out {
                println!("{}", json!({"name": name, "version": version}));
            } else {
                println!(
                    "Stored secret {name} (version {version}); refer to it as \"secret:{name}\"."
                );
            }
        }
        SecretsCmd::List => {
            let store = open_store(cfg).await?;
            let rows = store.list_secrets().await?;
            if json_out {
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                for r in rows {
                    println!(
                        "{}\tv{}\tkek {}\t{}",
                        r.name,
                        r.version,
                        r.kek_id,
                        rfc3339(r.updated_at)
                    );
                }
            }
        }
        SecretsCmd::RotateKek {
            new_kek_file,
            new_kek_env,
            new_kek_command,
        } => {
            let new = KekSource::pick(&new_kek_file, &new_kek_env, &new_kek_command, "--new-kek")?
                .context(
                    "say where the new KEK is: --new-kek-file, --new-kek-env or --new-kek-command",
                )?
                .load()?;
            let keys = Keyring::from_config(&cfg.secrets)?;
            let store = open_store(cfg).await?;
            let n = crate::secrets::rotate_kek(&store, &keys, &new, now).await?;
            let detail = json!({"from": keys.current.id(), "to": new.id(), "secrets": n});
            audited(
                cfg,
                &store,
                now,
                "secret.rotate_kek",
                "secrets",
                None,
                detail,
            )
            .await?;
            if json_out {
                println!("{}", json!({"rewrapped": n, "kek_id": new.id()}));
            } else {
                println!(
                    "Rewrapped {n} data keys with KEK {}. Now set the new KEK as [secrets] kek_* and keep the old one as previous_kek_* until every node has restarted.",
                    new.id()
                );
            }
        }
    }
    Ok(())
}
