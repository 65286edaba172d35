//! `postern init`: a working configuration on the embedded default, a TLS certificate for
//! SMTP STARTTLS, an admin account with a one-time password, and a first tenant with an API key.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::{ApiKeySecret, KeyMode};
use crate::store::{KeyRecord, Store, StoreError};

pub const CONFIG_FILE: &str = "postern.toml";

const TEMPLATE: &str = r#"# Postern configuration. Every key can also be set from the environment as
# POSTERN_<SECTION>_<KEY>, e.g. POSTERN_HTTP_LISTEN=127.0.0.1:9000. See README.md.
# Relative paths are relative to this file.

data_dir = "./postern-data"
# database_url = "postgres://postgres@127.0.0.1/postern"   # default: SQLite in data_dir

[http]
listen = "127.0.0.1:8025"

[smtp]
listen = "127.0.0.1:2587"
tls_cert = "./postern-data/tls/cert.pem"
tls_key = "./postern-data/tls/key.pem"

[queue]
retry_window_secs = 259200   # 3 days, then a message expires with a reason

[providers.local]
type = "file"
dir = "./postern-data/outbox"

# [providers.relay]
# type = "smtp"
# host = "127.0.0.1"
# port = 2525
# tls = "none"              # none | starttls | tls

[routes]
default = ["local"]

[secrets]                    # the key-encryption key: seals stored secrets and admin TOTP secrets
kek_file = "./postern.kek"   # written by `postern init` (0600); keep it out of database backups

# [admin]                    # admin logins (POST /admin/v1/login): password + TOTP
# session_ttl = "12h"        # a session ends this long after login
# session_idle = "30m"       # ... or when unused this long
# max_failures = 5           # failed logins in a row that lock an account
# lockout = "15m"            # for this long; also the window of the per-address limit
# ip_max_failures = 20       # failed logins from one address within `lockout`
# secure_cookie = false      # true when admins reach Postern over HTTPS
"#;

const KEK_FILE: &str = "postern.kek";

/// A new KEK (base64 of 32 random bytes), readable by the owner only. An existing one is
/// kept: what it sealed would be lost with it.
fn write_kek(path: &Path) -> anyhow::Result<()> {
    use base64::Engine;
    use rand::RngCore;
    use std::io::Write;
    if path.exists() {
        return Ok(());
    }
    let mut key = secrecy::zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    let text = secrecy::zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD.encode(key.as_ref()) + "\n",
    );
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// What `init` created, printed once.
#[derive(Debug, serde::Serialize)]
pub struct InitReport {
    pub config: PathBuf,
    pub admin_user: String,
    pub admin_password: String,
    pub tenant: String,
    pub api_key_id: String,
    pub api_key: String,
}

/// Writes `dir/postern.toml` and everything it points at. Refuses to overwrite unless `force`.
pub async fn init(dir: &Path, force: bool) -> anyhow::Result<InitReport> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(CONFIG_FILE);
    if path.exists() && !force {
        bail!(
            "{} already exists; use --force to overwrite it",
            path.display()
        );
    }
    std::fs::write(&path, TEMPLATE).with_context(|| format!("writing {}", path.display()))?;
    let kek = dir.join(KEK_FILE);
    let kek_existed = kek.exists();
    write_kek(&kek)?;
    let cfg = Config::load(&path)?;
    std::fs::create_dir_all(&cfg.data_dir)?;
    let store = Store::connect(&cfg.database_url()).await?;
    // A database set up before (the config file lost, or a shared PostgreSQL named in the
    // environment) keeps its owner account: resetting it would drop its TOTP enrolment and
    // password for a one-time one printed to whoever runs this. Only --force does that.
    let admins = store.list_admins().await?;
    match admins.first() {
        Some(_) if !force => {
            let _ = std::fs::remove_file(&path);
            if !kek_existed {
                let _ = std::fs::remove_file(&kek);
            }
            bail!(
                "the database ({}) is already set up: it has an admin account, which was left as it \
                 is, with its keys; no config file or certificate was written. Restore the config \
                 file that went with it, or run `postern init --force` to reset the admin's \
                 password and TOTP and issue a new API key",
                crate::server::redact_url(&cfg.database_url())
            );
        }
        _ => {}
    }
    let (cert, key) = cfg.tls_paths();
    crate::tls::write_self_signed(
        &cert,
        &key,
        &[cfg.smtp.hostname.clone(), "127.0.0.1".into()],
    )?;
    let now = SystemClock.now_ms();
    // The owner account, on a one-time password: its first login enrols TOTP and sets a
    // password of its own (see crate::admin).
    let password = crate::admin::one_time_password();
    let hash = crate::admin::hash_password(&password)?;
    store.upsert_admin("admin", &hash, now).await?;
    let tenant = match store.create_tenant("default", now).await {
        Ok(t) => t,
        Err(StoreError::Conflict(_)) => store.tenant_by_name("default").await?,
        Err(e) => return Err(e.into()),
    };
    let secret = ApiKeySecret::generate(KeyMode::Live);
    store
        .insert_key(&KeyRecord {
            id: secret.id().to_string(),
            tenant_id: tenant.id.clone(),
            tenant: tenant.name.clone(),
            secret_hash: secret.hash(),
            scopes: "send,read".into(),
            description: Some("created by postern init".into()),
            created_at: now,
            revoked_at: None,
            ..Default::default()
        })
        .await?;
    store.close().await;
    Ok(InitReport {
        config: path,
        admin_user: "admin".into(),
        admin_password: password,
        tenant: tenant.name,
        api_key_id: secret.id().to_string(),
        api_key: secret.expose().to_owned(),
    })
}
