//! The `postern` command line. Each subcommand parses its input into domain types, does one
//! thing, and prints a human line or (with `--json`) one JSON document.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::clock::{Clock, SystemClock, rfc3339};
use crate::config::Config;
use crate::domain::{ApiKeySecret, KeyMode, TenantName};
use crate::init::{CONFIG_FILE, InitReport};
use crate::store::{KeyRecord, Store, StoreError};

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
enum FeedbackCmd {
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
enum SuppressionCmd {
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

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["all", "tenant", "key", "provider", "channel"])))]
struct PauseArgs {
    /// Everything
    #[arg(long)]
    all: bool,
    /// One tenant (by name)
    #[arg(long)]
    tenant: Option<String>,
    /// One API key (by id)
    #[arg(long)]
    key: Option<String>,
    /// One provider: taken out of every route; its traffic goes to the next provider
    #[arg(long)]
    provider: Option<String>,
    /// One channel: email, sms or social
    #[arg(long)]
    channel: Option<String>,
    /// Why (kept with the pause and in every held message's events)
    #[arg(long, default_value = "no reason given")]
    reason: String,
    /// Who (default: $USER)
    #[arg(long)]
    actor: Option<String>,
}

#[derive(clap::Args, Debug)]
struct HeldFilterArgs {
    /// Only this tenant's (by name)
    #[arg(long)]
    tenant: Option<String>,
    /// Only this key's (by id)
    #[arg(long)]
    key: Option<String>,
}

#[derive(Subcommand, Debug)]
enum HeldCmd {
    /// Count held messages and show the oldest
    List {
        #[command(flatten)]
        filter: HeldFilterArgs,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Put held messages back in line (in accept order)
    Release {
        #[command(flatten)]
        filter: HeldFilterArgs,
        /// Every held message (required when no filter is given)
        #[arg(long)]
        all: bool,
        #[arg(long)]
        actor: Option<String>,
    },
    /// End held messages for good; they are never sent (status purged, with your name)
    Purge {
        #[command(flatten)]
        filter: HeldFilterArgs,
        #[arg(long)]
        all: bool,
        /// Why (required)
        #[arg(long)]
        reason: String,
        #[arg(long)]
        actor: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum RouteCmd {
    /// Set a tenant's route: providers in order, the first healthy one wins
    Set {
        #[arg(long)]
        tenant: String,
        /// Comma-separated provider names, e.g. ses,postmark,smtp-backup
        providers: String,
    },
    /// Remove a tenant's own route; it follows the default route again
    Clear {
        #[arg(long)]
        tenant: String,
    },
    /// Show the default route, tenant routes, active moves and what each tenant resolves to
    Show,
    /// Move all traffic (or one tenant's) from one provider to another, queued messages
    /// included. Moving back (--from Q --to P) undoes it.
    Move {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum BounceCmd {
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

#[derive(Subcommand, Debug)]
enum TenantCmd {
    /// Add a tenant
    Add { name: String },
    /// List tenants
    List,
}

#[derive(Subcommand, Debug)]
enum KeyCmd {
    /// Create an API key; the secret is printed once
    Create {
        #[arg(long)]
        tenant: String,
        /// Comma-separated scopes: send, read
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
}

#[derive(Subcommand, Debug)]
enum ProviderCmd {
    /// List configured providers and the default route
    List,
    /// Connect to a provider and check it answers
    Test { name: String },
}

/// send: email; sms; social: posts; read: message status; admin: everything.
const SCOPES: &[&str] = &["send", "sms", "social", "read", "admin"];

#[derive(clap::Args, Debug)]
struct KeyLimitArgs {
    /// Allowed From domains, comma-separated (*.example.com covers subdomains)
    #[arg(long)]
    from_domain: Option<String>,
    /// Allowed recipient domains, comma-separated
    #[arg(long)]
    rcpt_domain: Option<String>,
    /// Rate limit: N or N/s (messages per second)
    #[arg(long)]
    rate: Option<String>,
    /// Messages per UTC day
    #[arg(long)]
    daily: Option<u64>,
    /// Networks the key may be used from, comma-separated CIDRs (10.0.0.0/8,2001:db8::/32)
    #[arg(long)]
    allow_ip: Option<String>,
    /// Expiry: a duration from now (90d, 12h) or an RFC 3339 time
    #[arg(long)]
    expires: Option<String>,
}

fn list_arg(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `90d`, `12h`, `30m`, `45s` → milliseconds.
fn parse_duration_ms(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("{s:?} is not a duration (like 90d, 12h, 30m)"))?;
    let unit_ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        _ => bail!("{s:?} is not a duration (like 90d, 12h, 30m)"),
    };
    n.checked_mul(unit_ms)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| anyhow::anyhow!("{s:?} is not a positive duration"))
}

impl KeyLimitArgs {
    fn policy(&self, now: i64) -> anyhow::Result<(crate::domain::KeyPolicy, Option<i64>)> {
        let rate = match &self.rate {
            None => None,
            Some(r) => Some(
                r.trim()
                    .trim_end_matches("/s")
                    .parse::<f64>()
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "--rate {r:?}: expected messages per second, like 10 or 10/s"
                        )
                    })?,
            ),
        };
        let allow_ips = list_arg(&self.allow_ip)
            .iter()
            .map(|c| {
                c.parse::<ipnet::IpNet>()
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!("--allow-ip {c:?} is not a network (10.0.0.0/8) or address")
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let policy = crate::domain::KeyPolicy {
            from_domains: list_arg(&self.from_domain),
            rcpt_domains: list_arg(&self.rcpt_domain),
            rate_per_sec: rate,
            daily_limit: self.daily,
            allow_ips,
        }
        .normalized()
        .map_err(|e| anyhow::anyhow!(e))?;
        let expires_at = match &self.expires {
            None => None,
            Some(e) => Some(
                match time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                {
                    Ok(t) => (t.unix_timestamp_nanos() / 1_000_000) as i64,
                    Err(_) => now + parse_duration_ms(e).map_err(|_| {
                        anyhow::anyhow!(
                            "--expires {e:?}: expected a duration (90d, 12h) or an RFC 3339 time"
                        )
                    })?,
                },
            ),
        };
        if expires_at.is_some_and(|t| t <= now) {
            bail!("--expires is in the past");
        }
        Ok((policy, expires_at))
    }
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
        "Admin password:  {}   (shown once; change it at first login)",
        r.admin_password
    );
    println!("Tenant:          {}", r.tenant);
    println!(
        "API key:         {}   (shown once; store it now)",
        r.api_key
    );
}

/// `bounce classify`: one JSON line per reading on stdout, one line per unreadable file on
/// stderr; fails (non-zero exit) when any file could not be classified, after reading them all.
fn classify_files(files: Vec<PathBuf>, verbose: bool) -> anyhow::Result<()> {
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
        Cmd::Init { .. } | Cmd::Bounce(_) => unreachable_init(),
        Cmd::Serve => serve(cfg).await,
        Cmd::Tenants(TenantCmd::Add { name }) => {
            let name = TenantName::parse(&name)?;
            let store = open_store(&cfg).await?;
            let t = store.create_tenant(name.as_str(), now).await?;
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
            let tenant = TenantName::parse(&tenant)?;
            let scopes: Vec<&str> = scope
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if scopes.is_empty() {
                bail!("--scope needs at least one of: {}", SCOPES.join(", "));
            }
            if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(s)) {
                bail!("unknown scope {bad:?}; known scopes: {}", SCOPES.join(", "));
            }
            let store = open_store(&cfg).await?;
            let t = match store.tenant_by_name(tenant.as_str()).await {
                Err(StoreError::NotFound) => {
                    bail!("no tenant {tenant:?} (add it with `postern tenants add {tenant}`)")
                }
                r => r?,
            };
            let secret = ApiKeySecret::generate(if test { KeyMode::Test } else { KeyMode::Live });
            let rec = KeyRecord {
                id: secret.id().to_string(),
                tenant_id: t.id,
                tenant: t.name,
                secret_hash: secret.hash(),
                scopes: scopes.join(","),
                description,
                created_at: now,
                policy,
                expires_at,
                ..Default::default()
            };
            store.insert_key(&rec).await?;
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
            let old_id = key_id(&store, &id).await?;
            let old = store.key(&old_id).await?;
            if old.revoked_at.is_some() {
                bail!("key {old_id} is revoked; create a new key instead");
            }
            let secret = ApiKeySecret::generate(KeyMode::Live);
            let new = KeyRecord {
                id: secret.id().to_string(),
                secret_hash: secret.hash(),
                created_at: now,
                description: Some(format!("successor of {old_id}")),
                revoked_at: None,
                grace_until: None,
                successor_id: None,
                last_used_at: None,
                last_ip: None,
                ..old
            };
            match store.rotate_key(&old_id, &new, now + grace_ms).await {
                Err(StoreError::Conflict(what)) => bail!("cannot rotate: there is already {what}"),
                r => r?,
            }
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
            let tenant_id = match tenant {
                Some(t) => Some(
                    store
                        .tenant_by_name(TenantName::parse(&t)?.as_str())
                        .await
                        .map_err(|e| match e {
                            StoreError::NotFound => anyhow::anyhow!("no tenant {t:?}"),
                            e => e.into(),
                        })?
                        .id,
                ),
                None => None,
            };
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
            let id = crate::domain::ApiKeyId::parse(&id).map_err(|_| {
                anyhow::anyhow!(
                    "{id:?} is not a key id (12 letters and digits, as in `postern keys list`)"
                )
            })?;
            let store = open_store(&cfg).await?;
            match store.revoke_key(id.as_str(), now).await {
                Err(StoreError::NotFound) => bail!("no key {id}"),
                r => r?,
            }
            if json_out {
                println!("{}", json!({"id": id.as_str(), "revoked": true}));
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
        Cmd::Route(cmd) => route(cmd, &cfg, json_out, now).await,
        Cmd::Pause(args) => pause(args, true, &cfg, json_out, now).await,
        Cmd::Resume(args) => pause(args, false, &cfg, json_out, now).await,
        Cmd::Held(cmd) => held(cmd, &cfg, json_out, now).await,
        Cmd::Suppressions(cmd) => suppressions(cmd, &cfg, json_out, now).await,
        Cmd::Feedback(cmd) => feedback(cmd, &cfg, json_out, now).await,
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
    let name = TenantName::parse(name)?;
    match store.tenant_by_name(name.as_str()).await {
        Err(StoreError::NotFound) => bail!("no tenant {name:?} (see `postern tenants list`)"),
        r => Ok(r?.id),
    }
}

fn known_provider(cfg: &Config, name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if !cfg.providers.contains_key(name) {
        let known: Vec<&str> = cfg.providers.keys().map(String::as_str).collect();
        bail!(
            "no provider {name:?} in the config (configured: {})",
            known.join(", ")
        );
    }
    Ok(name.to_owned())
}

async fn route(cmd: RouteCmd, cfg: &Config, json_out: bool, now: i64) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    match cmd {
        RouteCmd::Set { tenant, providers } => {
            let id = tenant_id(&store, &tenant).await?;
            let list = providers
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| known_provider(cfg, p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if list.is_empty() {
                bail!(
                    "name at least one provider (or use `postern route clear --tenant {tenant}`)"
                );
            }
            if let Some(dup) = list
                .iter()
                .enumerate()
                .find(|(i, p)| list[..*i].contains(p))
            {
                bail!("provider {:?} is named twice", dup.1);
            }
            store.set_route(&id, &list, now).await?;
            if json_out {
                println!("{}", json!({"tenant": tenant, "route": list}));
            } else {
                println!(
                    "Route of {tenant}: {} (running servers use it within 1 s)",
                    list.join(" → ")
                );
            }
        }
        RouteCmd::Clear { tenant } => {
            let id = tenant_id(&store, &tenant).await?;
            store.set_route(&id, &[], now).await?;
            if json_out {
                println!("{}", json!({"tenant": tenant, "route": cfg.routes.default}));
            } else {
                println!(
                    "{tenant} follows the default route again: {}",
                    cfg.routes.default.join(" → ")
                );
            }
        }
        RouteCmd::Show => {
            let tenants = store.list_tenants().await?;
            let mut table = crate::queue::RouteTable {
                default: cfg.routes.default.clone(),
                moves: store.route_moves().await?,
                ..Default::default()
            };
            table.tenants = store.routes().await?.into_iter().collect();
            let name_of = |id: &str| {
                tenants
                    .iter()
                    .find(|t| t.id == id)
                    .map_or(id.to_owned(), |t| t.name.clone())
            };
            let resolved: Vec<_> = tenants
                .iter()
                .map(|t| json!({"tenant": t.name, "own_route": table.tenants.get(&t.id), "resolved": table.resolve(&t.id)}))
                .collect();
            let moves: Vec<_> = table
                .moves
                .iter()
                .map(|m| json!({"from": m.from, "to": m.to, "tenant": m.tenant_id.as_deref().map(name_of), "since": rfc3339(m.created_at)}))
                .collect();
            if json_out {
                println!(
                    "{}",
                    json!({"default": table.default, "tenants": resolved, "moves": moves})
                );
            } else {
                println!("default: {}", table.default.join(" → "));
                for m in &table.moves {
                    let scope = m
                        .tenant_id
                        .as_deref()
                        .map_or("all tenants".to_owned(), name_of);
                    println!(
                        "move: {} → {} ({scope}, since {})",
                        m.from,
                        m.to,
                        rfc3339(m.created_at)
                    );
                }
                for t in &tenants {
                    let own = if table.tenants.contains_key(&t.id) {
                        "own"
                    } else {
                        "default"
                    };
                    println!("{}	{}	({own})", t.name, table.resolve(&t.id).join(" → "));
                }
            }
        }
        RouteCmd::Move { from, to, tenant } => {
            let from = known_provider(cfg, &from)?;
            let to = known_provider(cfg, &to)?;
            let id = match &tenant {
                Some(t) => Some(tenant_id(&store, t).await?),
                None => None,
            };
            let scope = tenant.as_deref().unwrap_or("all tenants");
            let m = match store.move_route(id.as_deref(), &from, &to, now).await {
                Err(StoreError::Conflict(what)) => bail!("cannot move: {what}"),
                r => r?,
            };
            if json_out {
                println!(
                    "{}",
                    json!({"from": from, "to": to, "tenant": tenant, "in_force": m.is_some()})
                );
            } else if m.is_some() {
                println!(
                    "Moved {scope} from {from} to {to}; running servers follow within 1 s, deferred messages included. Undo with `postern route move --from {to} --to {from}{}`.",
                    tenant
                        .as_deref()
                        .map(|t| format!(" --tenant {t}"))
                        .unwrap_or_default()
                );
            } else {
                println!(
                    "Undid the move of {scope} from {to} to {from}; traffic follows the routes again."
                );
            }
        }
    }
    Ok(())
}

fn actor(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "cli".into())
}

async fn key_id(store: &Store, id: &str) -> anyhow::Result<String> {
    let id = crate::domain::ApiKeyId::parse(id).map_err(|_| {
        anyhow::anyhow!("{id:?} is not a key id (12 letters and digits, as in `postern keys list`)")
    })?;
    match store.key(id.as_str()).await {
        Err(StoreError::NotFound) => bail!("no key {id}"),
        r => Ok(r?.id),
    }
}

async fn pause(
    a: PauseArgs,
    on: bool,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    use crate::guard::{Pause, PauseScope};
    let store = open_store(cfg).await?;
    let (scope, label) = if a.all {
        (PauseScope::All, "everything".to_owned())
    } else if let Some(t) = &a.tenant {
        (
            PauseScope::Tenant(tenant_id(&store, t).await?),
            format!("tenant {t}"),
        )
    } else if let Some(k) = &a.key {
        (
            PauseScope::Key(key_id(&store, k).await?),
            format!("key {k}"),
        )
    } else if let Some(p) = &a.provider {
        (
            PauseScope::Provider(known_provider(cfg, p)?),
            format!("provider {p}"),
        )
    } else if let Some(c) = &a.channel {
        let c = c.trim().to_ascii_lowercase();
        if !["email", "sms", "social"].contains(&c.as_str()) {
            bail!("unknown channel {c:?}; channels: email, sms, social");
        }
        (PauseScope::Channel(c.clone()), format!("channel {c}"))
    } else {
        bail!("say what to pause: --all, --tenant, --key, --provider or --channel")
    };
    let who = actor(a.actor.clone());
    if on {
        let p = Pause {
            scope,
            reason: a.reason.clone(),
            actor: who,
            created_at: now,
        };
        let new = store.pause(&p).await?;
        if json_out {
            println!("{}", json!({"paused": p, "already": !new}));
        } else if new {
            println!(
                "Paused {label}. Running servers stop starting sends within 100 ms; messages are held, not dropped. Undo: postern resume {}",
                resume_hint(&p.scope, &a)
            );
        } else {
            println!("{label} was already paused");
        }
    } else {
        let (was, released) = store.resume(&scope, &who, now).await?;
        if json_out {
            println!(
                "{}",
                json!({"resumed": scope, "was_paused": was, "released": released})
            );
        } else if was {
            println!("Resumed {label}; {released} held messages released in order.");
        } else {
            println!("{label} was not paused ({released} messages it had held released).");
        }
    }
    Ok(())
}

fn resume_hint(scope: &crate::guard::PauseScope, a: &PauseArgs) -> String {
    use crate::guard::PauseScope as S;
    match scope {
        S::All => "--all".into(),
        S::Tenant(_) => format!("--tenant {}", a.tenant.as_deref().unwrap_or_default()),
        S::Key(_) => format!("--key {}", a.key.as_deref().unwrap_or_default()),
        S::Provider(p) => format!("--provider {p}"),
        S::Channel(c) => format!("--channel {c}"),
    }
}

async fn held_filter(
    store: &Store,
    f: &HeldFilterArgs,
) -> anyhow::Result<crate::store::HeldFilter> {
    Ok(crate::store::HeldFilter {
        tenant_id: match &f.tenant {
            Some(t) => Some(tenant_id(store, t).await?),
            None => None,
        },
        key_id: match &f.key {
            Some(k) => Some(key_id(store, k).await?),
            None => None,
        },
        held_by: None,
    })
}

async fn held(cmd: HeldCmd, cfg: &Config, json_out: bool, now: i64) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    let unfiltered = |f: &HeldFilterArgs| f.tenant.is_none() && f.key.is_none();
    match cmd {
        HeldCmd::List { filter, limit } => {
            let f = held_filter(&store, &filter).await?;
            let (total, list) = store.held(&f, limit.clamp(0, 10_000)).await?;
            if json_out {
                println!("{}", json!({"total": total, "messages": list}));
            } else {
                println!("{total} held");
                for m in list {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        m.id,
                        rfc3339(m.created_at),
                        m.held_by.as_deref().unwrap_or("-"),
                        m.mail_from,
                        m.subject.as_deref().unwrap_or("")
                    );
                }
            }
        }
        HeldCmd::Release {
            filter,
            all,
            actor: who,
        } => {
            if unfiltered(&filter) && !all {
                bail!("say which held messages: --tenant, --key, or --all");
            }
            let f = held_filter(&store, &filter).await?;
            let who = actor(who);
            let n = store
                .release_held(&f, &who, "released by an operator", now)
                .await?;
            if json_out {
                println!("{}", json!({"released": n}));
            } else {
                println!(
                    "Released {n} held messages (in accept order). A pause still in force holds them again."
                );
            }
        }
        HeldCmd::Purge {
            filter,
            all,
            reason,
            actor: who,
        } => {
            if unfiltered(&filter) && !all {
                bail!("say which held messages: --tenant, --key, or --all");
            }
            if reason.trim().is_empty() {
                bail!("--reason must say why these messages are never sent");
            }
            let f = held_filter(&store, &filter).await?;
            let who = actor(who);
            let n = store.purge_held(&f, &who, &reason, now).await?;
            if json_out {
                println!("{}", json!({"purged": n, "by": who}));
            } else {
                println!("Purged {n} held messages (by {who}: {reason}); they will never be sent.");
            }
        }
    }
    Ok(())
}

fn checked_addresses(addresses: &[String]) -> anyhow::Result<Vec<String>> {
    addresses
        .iter()
        .map(|a| {
            crate::domain::EmailAddress::parse(a.trim())
                .map(|e| e.as_str().to_ascii_lowercase())
                .map_err(|e| anyhow::anyhow!("{a:?} is not an email address: {e}"))
        })
        .collect()
}

async fn suppressions(
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
            let n = store
                .unsuppress(&id, &checked_addresses(&addresses)?)
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
fn read_suppression_csv(
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

async fn feedback(cmd: FeedbackCmd, cfg: &Config, json_out: bool, now: i64) -> anyhow::Result<()> {
    use crate::feedback::ingest::{Origin, ingest};
    let store = open_store(cfg).await?;
    match cmd {
        FeedbackCmd::Ingest { files } => {
            let origin = Origin {
                source: "cli",
                tenant_id: None,
                verp_message_id: None,
                guard: None,
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
            let id = match &tenant {
                Some(t) => Some(tenant_id(&store, t).await?),
                None => None,
            };
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
