//! `postern admin`: admin accounts and admin API tokens.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum AdminCmd {
    /// Add an admin account; prints a one-time password (the first login enrols TOTP)
    Add {
        name: String,
        /// owner, operator, auditor (read-only) or tenant-admin (one tenant)
        #[arg(long)]
        role: String,
        /// The tenant of a tenant-admin
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List admin accounts
    List,
    /// Disable an account and end its sessions
    Disable { name: String },
    /// Admin API tokens (pst_admin_…)
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Subcommand, Debug)]
pub(super) enum TokenCmd {
    /// Create an admin API token; printed once, only its hash is stored
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        tenant: Option<String>,
        /// Expiry: a duration from now (90d, 12h)
        #[arg(long)]
        expires: Option<String>,
    },
    /// List admin tokens (never their secrets)
    List,
    /// Revoke a token at once
    Revoke { id: String },
}

pub(super) async fn admin(
    cmd: AdminCmd,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    match cmd {
        AdminCmd::Add { name, role, tenant } => {
            let password =
                crate::admin::add_admin(&store, &name, &role, tenant.as_deref(), now).await?;
            if json_out {
                println!(
                    "{}",
                    json!({"name": name, "role": role, "tenant": tenant, "one_time_password": password})
                );
            } else {
                println!("Added admin {name} ({role})");
                println!("One-time password: {password}");
                println!(
                    "(shown once; the first login with it returns a TOTP enrolment and recovery codes)"
                );
            }
        }
        AdminCmd::List => {
            let list = store.list_admins().await?;
            if json_out {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for a in list {
                    let state = if a.disabled_at.is_some() {
                        "disabled"
                    } else if a.pending {
                        "not enrolled"
                    } else {
                        "active"
                    };
                    println!(
                        "{}\t{}\t{}\t{state}",
                        a.username,
                        a.role,
                        a.tenant.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        AdminCmd::Disable { name } => {
            crate::admin::disable_admin(&store, &name, now).await?;
            if json_out {
                println!("{}", json!({"name": name, "disabled": true}));
            } else {
                println!("Disabled admin {name}; its sessions are ended.");
            }
        }
        AdminCmd::Token(TokenCmd::Create {
            name,
            role,
            tenant,
            expires,
        }) => {
            let who = format!("cli:{}", actor(None));
            let (rec, secret) = crate::admin::create_token(
                &store,
                &name,
                &role,
                tenant.as_deref(),
                expires.as_deref(),
                &who,
                now,
            )
            .await?;
            if json_out {
                let mut v = serde_json::to_value(&rec)?;
                v["token"] = secret.expose().into();
                println!("{v}");
            } else {
                println!("Created admin token {} ({})", rec.id, rec.role);
                println!("{}", secret.expose());
                println!("(shown once; Postern stores only its hash)");
            }
        }
        AdminCmd::Token(TokenCmd::List) => {
            let list = store.list_admin_tokens().await?;
            if json_out {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for t in list {
                    let state = t
                        .revoked_at
                        .map_or("active".to_owned(), |at| format!("revoked {}", rfc3339(at)));
                    println!("{}\t{}\t{}\t{state}", t.id, t.name, t.role);
                }
            }
        }
        AdminCmd::Token(TokenCmd::Revoke { id }) => {
            crate::admin::revoke_token(&store, &id, now).await?;
            if json_out {
                println!("{}", json!({"id": id, "revoked": true}));
            } else {
                println!("Revoked admin token {id}");
            }
        }
    }
    Ok(())
}
