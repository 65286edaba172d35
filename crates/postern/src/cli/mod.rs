//! The `postern` command line. Each subcommand parses its input into domain types, does one
//! thing, and prints a human line or (with `--json`) one JSON document.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::admin::ops;
use crate::clock::{Clock, SystemClock, rfc3339};
use crate::config::Config;
use crate::init::{CONFIG_FILE, InitReport};
use crate::store::Store;

mod admin;
mod alerts;
mod audit;
mod feedback;
mod keys;
mod pause;
mod routing;
mod secrets;
mod simulate;
mod status;
mod suppressions;

use admin::{AdminCmd, admin};
use alerts::{AlertsCmd, alerts};

use audit::{AuditCmd, audit, audited};
use feedback::{BounceCmd, FeedbackCmd, classify_files, feedback};
use keys::{KeyLimitArgs, parse_duration_ms};
use pause::{HeldCmd, PauseArgs, held, pause};
use routing::{RouteCmd, route};
use secrets::{SecretsCmd, secrets};
use simulate::SimulateArgs;
use status::{BroadcastArgs, ContactCmd, IncidentCmd};
use suppressions::{SuppressionCmd, suppressions};

#[derive(Parser, Debug)]
#[command(
    name = "postern",
    version,
    about = "Self-hosted outbound messaging gateway"
)]
pub struct Cli {
    /// Configuration file [default: ./postern.toml]
    #[arg(long, global = true, env = "POSTERN_CONFIG")]
    config: Option<PathBuf>,
    /// Machine-readable output
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write a working postern.toml, TLS certificate, admin account and first API key
    Init {
        /// Directory for postern.toml and postern-data/
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Overwrite an existing postern.toml
        #[arg(long)]
        force: bool,
    },
    /// Run the HTTP API, SMTP submission and delivery workers; SIGTERM drains and exits
    Serve,
    /// Alerts sent to operators: list, acknowledge
    #[command(subcommand)]
    Alerts(AlertsCmd),
    /// Run a scenario on virtual time against the real detector, queue and routing
    Simulate(SimulateArgs),
    /// Tenants
    #[command(subcommand)]
    Tenants(TenantCmd),
    /// API keys
    #[command(subcommand)]
    Keys(KeyCmd),
    /// Delivery providers
    #[command(subcommand)]
    Providers(ProviderCmd),
    /// Routing: which providers each tenant's mail goes through, in order
    #[command(subcommand)]
    Route(RouteCmd),
    /// Kill switch: no new sends in the scope within 100 ms; calls under way finish, and
    /// messages are held, never dropped
    Pause(PauseArgs),
    /// Lift a pause; the messages it held go back in line in the order they were accepted
    Resume(PauseArgs),
    /// Held messages: list, release, purge
    #[command(subcommand)]
    Held(HeldCmd),
    /// A tenant's suppression list: addresses never sent to again
    #[command(subcommand)]
    Suppressions(SuppressionCmd),
    /// Bounces, complaints and auto-replies
    #[command(subcommand)]
    Bounce(BounceCmd),
    /// Apply and review feedback (bounces, complaints, auto-replies)
    #[command(subcommand)]
    Feedback(FeedbackCmd),
    /// The compromise detector: what it saw and what it did
    #[command(subcommand)]
    Guard(GuardCmd),
    /// Admin accounts (password + TOTP) and admin API tokens
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Incidents on the public status page (/status)
    #[command(subcommand)]
    Incident(IncidentCmd),
    /// Send an incident notice to every affected tenant on every channel it has, and post the
    /// incident on the status page
    Broadcast(BroadcastArgs),
    /// The audit log: every administrative act, hash-chained
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Encrypted secrets (provider credentials, tokens): set, list, rotate-kek
    #[command(subcommand)]
    Secrets(SecretsCmd),
}

#[derive(Subcommand, Debug)]
enum GuardCmd {
    /// Recent detections with their evidence and the action taken, newest first. A hold is a
    /// pause by `guard`: `postern resume --key ID` (or `--tenant T`) releases what it held.
    Alerts {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Subcommand, Debug)]
enum TenantCmd {
    /// Add a tenant
    Add { name: String },
    /// List tenants
    List,
    /// Where a tenant gets incident notices (email, SMS, webhook)
    #[command(subcommand)]
    Contacts(ContactCmd),
}

#[derive(Subcommand, Debug)]
enum KeyCmd {
    /// Create an API key; the secret is printed once
    Create {
        #[arg(long)]
        tenant: String,
        /// Comma-separated scopes: send, sms, social, read, admin
        #[arg(long, default_value = "send,read")]
        scope: String,
        /// A test key (pst_test_...)
        #[arg(long)]
        test: bool,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        limits: KeyLimitArgs,
    },
    /// Issue a successor; the old key keeps working for a grace period (every use of it is
    /// logged), then stops. The new secret is printed once.
    Rotate {
        id: String,
        /// How long the old key keeps working: 24h, 30m, 7d...
        #[arg(long, default_value = "24h")]
        grace: String,
    },
    /// List keys (never their secrets)
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key at once
    Revoke { id: String },
    /// A key's secret was found where it should not be: revoke it at once, hold its mail
    /// still waiting to go (review with `held list --key ID`), raise an alert
    ReportLeak {
        /// The leaked secret (pst_live_...)
        secret: String,
        /// Where it was found
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ProviderCmd {
    /// List configured providers and the default route
    List,
    /// Connect to a provider and check it answers
    Test { name: String },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_init(r: &InitReport, json_out: bool) {
    if json_out {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    println!("Wrote {}", r.config.display());
    println!("Admin user:      {}", r.admin_user);
    println!(
        "Admin password:  {}   (one-time: the first login enrols TOTP and sets your own)",
        r.admin_password
    );
    println!("Tenant:          {}", r.tenant);
    println!(
        "API key:         {}   (shown once; store it now)",
        r.api_key
    );
}

async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let url = cfg.database_url();
    Store::connect(&url)
        .await
        .with_context(|| format!("opening the database ({})", crate::server::redact_url(&url)))
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let explicit = cli.config.is_some();
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(CONFIG_FILE));
    let json_out = cli.json;
    match cli.command {
        Cmd::Init { dir, force } => {
            let r = crate::init::init(&dir, force).await?;
            print_init(&r, json_out);
            return Ok(());
        }
        Cmd::Bounce(BounceCmd::Classify { files, verbose }) => {
            return classify_files(files, verbose);
        }
        Cmd::Simulate(args) => return simulate::simulate(args, json_out).await,
        Cmd::Serve if !config_path.exists() => {
            if explicit {
                bail!(
                    "config file {} does not exist (run `postern init` to write one)",
                    config_path.display()
                );
            }
            // First run with nothing configured: set up the embedded default right here.
            let dir = config_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let r = crate::init::init(dir, false).await?;
            print_init(&r, json_out);
        }
        _ => {}
    }
    let cfg = Config::load(&config_path)?;
    let now = SystemClock.now_ms();
    match cli.command {
        Cmd::Init { .. } | Cmd::Bounce(_) | Cmd::Simulate(_) => unreachable_init(),
        Cmd::Serve => serve(cfg).await,
        Cmd::Tenants(TenantCmd::Add { name }) => {
            let store = open_store(&cfg).await?;
            let t = ops::add_tenant(&store, &name, now).await?;
            let target = format!("tenant:{}", t.name);
            audited(
                &cfg,
                &store,
                now,
                "tenant.add",
                &target,
                None,
                json!({"id": t.id}),
            )
            .await?;
            if json_out {
                println!("{}", serde_json::to_string(&t)?);
            } else {
                println!("Added tenant {} ({})", t.name, t.id);
            }
            Ok(())
        }
        Cmd::Tenants(TenantCmd::List) => {
            let store = open_store(&cfg).await?;
            let ts = store.list_tenants().await?;
            if json_out {
                println!("{}", serde_json::to_string(&ts)?);
            } else {
                for t in ts {
                    println!("{}\t{}\t{}", t.name, t.id, rfc3339(t.created_at));
                }
            }
            Ok(())
        }
        Cmd::Keys(KeyCmd::Create {
            tenant,
            scope,
            test,
            description,
            limits,
        }) => {
            let (policy, expires_at) = limits.policy(now)?;
            let scopes = ops::scopes(scope.split(','))?;
            let store = open_store(&cfg).await?;
            let tenant = match ops::tenant(&store, &tenant).await {
                Err(ops::OpError::NotFound(_)) => {
                    bail!("no tenant {tenant:?} (add it with `postern tenants add {tenant}`)")
                }
                r => r?,
            };
            let new = ops::NewKey {
                tenant,
                scopes: scopes.clone(),
                test,
                description,
                policy,
                expires_at,
            };
            let (rec, secret) = ops::create_key(&store, new, now).await?;
            let detail = json!({"tenant": rec.tenant, "scopes": rec.scopes, "policy": rec.policy, "expires_at": rec.expires_at, "description": rec.description});
            audited(
                &cfg,
                &store,
                now,
                "key.create",
                &format!("key:{}", rec.id),
                None,
                detail,
            )
            .await?;
            if json_out {
                println!(
                    "{}",
                    json!({"id": rec.id, "secret": secret.expose(), "tenant": rec.tenant, "scopes": scopes, "created_at": rfc3339(now)})
                );
            } else {
                println!("Created key {} for tenant {}", rec.id, rec.tenant);
                println!("{}", secret.expose());
                println!("(the secret is shown once; Postern stores only its hash)");
            }
            Ok(())
        }
        Cmd::Keys(KeyCmd::Rotate { id, grace }) => {
            let grace_ms = parse_duration_ms(&grace)?;
            let store = open_store(&cfg).await?;
            let old = ops::key(&store, &id).await?;
            let old_id = old.id.clone();
            let (new, secret) = ops::rotate_key(&store, old, grace_ms, now).await?;
            let detail = json!({"successor": new.id, "grace_until": now + grace_ms});
            audited(
                &cfg,
                &store,
                now,
                "key.rotate",
                &format!("key:{old_id}"),
                None,
                detail,
            )
            .await?;
            if json_out {
                println!(
                    "{}",
                    json!({"id": new.id, "secret": secret.expose(), "replaces": old_id, "old_key_works_until": rfc3339(now + grace_ms)})
                );
            } else {
                println!("Created key {} to replace {old_id}", new.id);
                println!("{}", secret.expose());
                println!(
                    "(shown once) {old_id} keeps working until {}; every use of it is logged.",
                    rfc3339(now + grace_ms)
                );
            }
            Ok(())
        }
        Cmd::Keys(KeyCmd::List { tenant }) => {
            let store = open_store(&cfg).await?;
            let tenant_id = tenant_id_if(&store, tenant.as_deref()).await?;
            let keys = store.list_keys(tenant_id.as_deref()).await?;
            if json_out {
                println!("{}", serde_json::to_string(&keys)?);
            } else {
                for k in keys {
                    let state = k
                        .revoked_at
                        .map_or("active".to_owned(), |t| format!("revoked {}", rfc3339(t)));
                    println!("{}\t{}\t{}\t{}", k.id, k.tenant, k.scopes, state);
                }
            }
            Ok(())
        }
        Cmd::Keys(KeyCmd::Revoke { id }) => {
            let store = open_store(&cfg).await?;
            let id = ops::key(&store, &id).await?.id;
            store.revoke_key(&id, now).await?;
            audited(
                &cfg,
                &store,
                now,
                "key.revoke",
                &format!("key:{id}"),
                None,
                json!({}),
            )
            .await?;
            if json_out {
                println!("{}", json!({"id": id, "revoked": true}));
            } else {
                println!(
                    "Revoked key {id} (running servers stop accepting it within {} s)",
                    crate::auth::CACHE_TTL.as_secs()
                );
            }
            Ok(())
        }
        Cmd::Providers(ProviderCmd::List) => {
            let list: Vec<_> = cfg
                .providers
                .iter()
                .map(|(n, p)| json!({"name": n, "type": p.kind(), "config": format!("{p:?}"), "in_default_route": cfg.routes.default.contains(n)}))
                .collect();
            if json_out {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for (n, p) in &cfg.providers {
                    println!("{n}\t{p:?}");
                }
                println!("default route: {}", cfg.routes.default.join(" → "));
            }
            Ok(())
        }
        Cmd::Keys(KeyCmd::ReportLeak { secret, url }) => {
            keys::report_leak(&cfg, json_out, now, &secret, url.as_deref()).await
        }
        Cmd::Route(cmd) => route(cmd, &cfg, json_out, now).await,
        Cmd::Tenants(TenantCmd::Contacts(cmd)) => status::contacts(cmd, &cfg, json_out, now).await,
        Cmd::Incident(cmd) => status::incident(cmd, &cfg, json_out, now).await,
        Cmd::Broadcast(args) => status::broadcast_cmd(args, &cfg, json_out, now).await,
        Cmd::Pause(args) => pause(args, true, &cfg, json_out, now).await,
        Cmd::Resume(args) => pause(args, false, &cfg, json_out, now).await,
        Cmd::Held(cmd) => held(cmd, &cfg, json_out, now).await,
        Cmd::Suppressions(cmd) => suppressions(cmd, &cfg, json_out, now).await,
        Cmd::Feedback(cmd) => feedback(cmd, &cfg, json_out, now).await,
        Cmd::Admin(cmd) => admin(cmd, &cfg, json_out, now).await,
        Cmd::Alerts(cmd) => alerts(cmd, &cfg, json_out, now).await,
        Cmd::Audit(cmd) => audit(cmd, &cfg, json_out, now).await,
        Cmd::Secrets(cmd) => secrets(cmd, &cfg, json_out, now).await,
        Cmd::Guard(GuardCmd::Alerts { limit }) => {
            let store = open_store(&cfg).await?;
            let alerts = store.alerts(limit.clamp(1, 10_000)).await?;
            if json_out {
                println!("{}", serde_json::to_string(&alerts)?);
            } else {
                for a in alerts {
                    println!(
                        "{}\t{}\t{} {}\t{}\t{}",
                        rfc3339(a.at),
                        a.signal,
                        a.scope,
                        a.target,
                        a.action,
                        a.evidence
                    );
                }
            }
            Ok(())
        }
        Cmd::Providers(ProviderCmd::Test { name }) => {
            let cfg = if crate::secrets::has_refs(&cfg) {
                crate::secrets::resolve_config(&cfg, &open_store(&cfg).await?).await?
            } else {
                cfg
            };
            let providers = crate::providers::Providers::from_config(&cfg)?;
            let p = providers
                .get(&name)
                .with_context(|| format!("no provider {name:?} in the config"))?;
            let result = p.probe().await;
            // Providers with an account API (SES GetAccount, Twilio) also report its state.
            let account = match &result {
                Ok(()) => p.account_status().await.and_then(Result::ok),
                Err(_) => None,
            };
            if json_out {
                let account = account.as_ref().map(|a| {
                    json!({"sending_enabled": a.sending_enabled, "enforcement": a.enforcement, "sent_last_24h": a.sent_last_24h})
                });
                println!(
                    "{}",
                    json!({"name": name, "channel": p.channel().as_str(), "ok": result.is_ok(), "error": result.as_ref().err().map(|e| e.to_string()), "account": account})
                );
            }
            match result {
                Ok(()) => {
                    if !json_out {
                        println!("{name}: ok");
                        if let Some(a) = account {
                            println!(
                                "{name}: account sending enabled: {}, enforcement: {}, sent in the last 24 h: {}",
                                a.sending_enabled,
                                a.enforcement.as_deref().unwrap_or("-"),
                                a.sent_last_24h
                                    .map(|n| n.to_string())
                                    .unwrap_or_else(|| "-".into())
                            );
                        }
                    }
                    Ok(())
                }
                Err(e) => bail!("{name}: {e}"),
            }
        }
    }
}

async fn tenant_id(store: &Store, name: &str) -> anyhow::Result<String> {
    Ok(ops::tenant(store, name).await?.id)
}

/// [`tenant_id`] for an optional `--tenant`.
async fn tenant_id_if(store: &Store, name: Option<&str>) -> anyhow::Result<Option<String>> {
    Ok(ops::tenant_if(store, name).await?.map(|t| t.id))
}

fn actor(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "cli".into())
}

fn unreachable_init() -> anyhow::Result<()> {
    bail!("init was handled above")
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let running = crate::server::start(&cfg, Arc::new(SystemClock)).await?;
    let smtp = running
        .smtp_addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "off".into());
    tracing::info!(http = %running.http_addr, smtp = %smtp, "postern is serving");
    // For scripts and tests that asked for port 0: where we actually listen.
    let info = json!({"http": running.http_addr.to_string(), "smtp": running.smtp_addr.map(|a| a.to_string()), "bounces": running.bounce_addr.map(|a| a.to_string()), "pid": std::process::id()});
    std::fs::write(cfg.data_dir.join("serve.json"), info.to_string())?;
    crate::server::shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight work");
    running.shutdown().await;
    let _ = std::fs::remove_file(cfg.data_dir.join("serve.json"));
    tracing::info!("stopped");
    Ok(())
}
