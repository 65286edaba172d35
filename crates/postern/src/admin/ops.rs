//! Operations the command line and the admin API share: they take names as typed by an
//! operator, check them, act on the store, and fail with an [`OpError`] that each edge turns
//! into its own form (a CLI error line, an HTTP 4xx).

use crate::config::Config;
use crate::domain::{ApiKeySecret, KeyMode, KeyPolicy, TenantName};
use crate::guard::PauseScope;
use crate::queue::RouteTable;
use crate::store::{HeldFilter, KeyRecord, RouteMove, Store, StoreError, Suppression, Tenant};

/// Why an operation was refused. The messages name what is wrong and are safe to show.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Bad input (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    /// A named thing does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with the current state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type OpResult<T> = Result<T, OpError>;

fn invalid(msg: impl Into<String>) -> OpError {
    OpError::Invalid(msg.into())
}

// ---- tenants ----------------------------------------------------------------------------

pub async fn tenant(store: &Store, name: &str) -> OpResult<Tenant> {
    let name = TenantName::parse(name).map_err(|e| invalid(e.to_string()))?;
    match store.tenant_by_name(name.as_str()).await {
        Err(StoreError::NotFound) => Err(OpError::NotFound(format!(
            "no tenant {name:?} (see `postern tenants list`)"
        ))),
        r => Ok(r?),
    }
}

/// [`tenant`] for an optional name.
pub async fn tenant_if(store: &Store, name: Option<&str>) -> OpResult<Option<Tenant>> {
    match name {
        Some(t) => Ok(Some(tenant(store, t).await?)),
        None => Ok(None),
    }
}

pub async fn add_tenant(store: &Store, name: &str, now: i64) -> OpResult<Tenant> {
    let name = TenantName::parse(name).map_err(|e| invalid(e.to_string()))?;
    match store.create_tenant(name.as_str(), now).await {
        Err(StoreError::Conflict(what)) => Err(OpError::Conflict(format!("{what} already exists"))),
        r => Ok(r?),
    }
}

// ---- keys -------------------------------------------------------------------------------

/// send: email; sms; social: posts; read: message status; admin: everything.
pub const SCOPES: &[&str] = &["send", "sms", "social", "read", "admin"];

/// Checks a list of scopes (at least one, each known).
pub fn scopes<'a>(list: impl IntoIterator<Item = &'a str>) -> OpResult<Vec<String>> {
    let list: Vec<String> = list
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if list.is_empty() {
        return Err(invalid(format!(
            "scope needs at least one of: {}",
            SCOPES.join(", ")
        )));
    }
    if let Some(bad) = list.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(invalid(format!(
            "unknown scope {bad:?}; known scopes: {}",
            SCOPES.join(", ")
        )));
    }
    Ok(list)
}

/// A key's limits as an operator gives them; `flag` is how the edge names its options
/// (`--` on the command line, nothing in JSON).
pub struct KeyLimits<'a> {
    pub flag: &'a str,
    pub from_domains: Vec<String>,
    pub rcpt_domains: Vec<String>,
    pub rate_per_sec: Option<f64>,
    pub daily_limit: Option<u64>,
    pub allow_ips: Vec<String>,
    pub expires: Option<String>,
}

impl KeyLimits<'_> {
    /// The policy and expiry time these limits describe.
    pub fn policy(self, now: i64) -> OpResult<(KeyPolicy, Option<i64>)> {
        let flag = self.flag;
        let allow_ips = self
            .allow_ips
            .iter()
            .map(|c| {
                c.parse::<ipnet::IpNet>()
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        invalid(format!(
                            "{flag}allow-ip {c:?} is not a network (10.0.0.0/8) or address"
                        ))
                    })
            })
            .collect::<OpResult<Vec<_>>>()?;
        if self
            .rate_per_sec
            .is_some_and(|r| !(r > 0.0 && r.is_finite()))
        {
            return Err(invalid(format!(
                "{flag}rate must be a positive number of messages per second"
            )));
        }
        let policy = KeyPolicy {
            from_domains: self.from_domains,
            rcpt_domains: self.rcpt_domains,
            rate_per_sec: self.rate_per_sec,
            daily_limit: self.daily_limit,
            allow_ips,
        }
        .normalized()
        .map_err(invalid)?;
        let expires_at = match &self.expires {
            None => None,
            Some(e) => Some(
                match time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                {
                    Ok(t) => (t.unix_timestamp_nanos() / 1_000_000) as i64,
                    Err(_) => {
                        now + crate::clock::parse_duration_ms(e).map_err(|_| {
                            invalid(format!(
                                "{flag}expires {e:?}: expected a duration (90d, 12h) or an RFC 3339 time"
                            ))
                        })?
                    }
                },
            ),
        };
        if expires_at.is_some_and(|t| t <= now) {
            return Err(invalid(format!("{flag}expires is in the past")));
        }
        Ok((policy, expires_at))
    }
}

/// What a new key is for.
pub struct NewKey {
    pub tenant: Tenant,
    pub scopes: Vec<String>,
    pub test: bool,
    pub description: Option<String>,
    pub policy: KeyPolicy,
    pub expires_at: Option<i64>,
}

/// Creates a key; the secret is in the returned [`ApiKeySecret`] only.
pub async fn create_key(store: &Store, k: NewKey, now: i64) -> OpResult<(KeyRecord, ApiKeySecret)> {
    let secret = ApiKeySecret::generate(if k.test { KeyMode::Test } else { KeyMode::Live });
    let rec = KeyRecord {
        id: secret.id().to_string(),
        tenant_id: k.tenant.id,
        tenant: k.tenant.name,
        secret_hash: secret.hash(),
        scopes: k.scopes.join(","),
        description: k.description,
        created_at: now,
        policy: k.policy,
        expires_at: k.expires_at,
        ..Default::default()
    };
    store.insert_key(&rec).await?;
    Ok((rec, secret))
}

/// A key by its id as an operator typed it.
pub async fn key(store: &Store, id: &str) -> OpResult<KeyRecord> {
    let id = crate::domain::ApiKeyId::parse(id).map_err(|_| {
        invalid(format!(
            "{id:?} is not a key id (12 letters and digits, as in `postern keys list`)"
        ))
    })?;
    match store.key(id.as_str()).await {
        Err(StoreError::NotFound) => Err(OpError::NotFound(format!("no key {id}"))),
        r => Ok(r?),
    }
}

/// Issues a successor of `old`, which keeps working for `grace_ms`.
pub async fn rotate_key(
    store: &Store,
    old: KeyRecord,
    grace_ms: i64,
    now: i64,
) -> OpResult<(KeyRecord, ApiKeySecret)> {
    let old_id = old.id.clone();
    if old.revoked_at.is_some() {
        return Err(OpError::Conflict(format!(
            "key {old_id} is revoked; create a new key instead"
        )));
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
        Err(StoreError::Conflict(what)) => Err(OpError::Conflict(format!(
            "cannot rotate: there is already {what}"
        ))),
        r => Ok(r.map(|()| (new, secret))?),
    }
}

// ---- providers and routes ---------------------------------------------------------------

pub fn known_provider(cfg: &Config, name: &str) -> OpResult<String> {
    let name = name.trim();
    if !cfg.providers.contains_key(name) {
        let known: Vec<&str> = cfg.providers.keys().map(String::as_str).collect();
        return Err(invalid(format!(
            "no provider {name:?} in the config (configured: {})",
            known.join(", ")
        )));
    }
    Ok(name.to_owned())
}

/// Sets a tenant's route: providers in order, each configured, none twice.
pub async fn set_route(
    store: &Store,
    cfg: &Config,
    tenant: &Tenant,
    providers: &[String],
    now: i64,
) -> OpResult<Vec<String>> {
    let list = providers
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| known_provider(cfg, p))
        .collect::<OpResult<Vec<_>>>()?;
    if list.is_empty() {
        return Err(invalid(format!(
            "name at least one provider (or use `postern route clear --tenant {}`)",
            tenant.name
        )));
    }
    if let Some(dup) = list
        .iter()
        .enumerate()
        .find(|(i, p)| list[..*i].contains(p))
    {
        return Err(invalid(format!("provider {:?} is named twice", dup.1)));
    }
    store.set_route(&tenant.id, &list, now).await?;
    Ok(list)
}

/// The default route, tenants' own routes and active moves, as running servers read them.
pub async fn route_table(store: &Store, cfg: &Config) -> OpResult<RouteTable> {
    let mut table = RouteTable {
        default: cfg.routes.default.clone(),
        moves: store.route_moves().await?,
        ..Default::default()
    };
    table.tenants = store.routes().await?.into_iter().collect();
    Ok(table)
}

/// The routes as `route show --json` and the admin API show them: the default route, each
/// tenant's own route and what it resolves to, and active moves.
pub fn routes_view(table: &RouteTable, tenants: &[Tenant]) -> serde_json::Value {
    let name_of = |id: &str| {
        tenants
            .iter()
            .find(|t| t.id == id)
            .map_or(id.to_owned(), |t| t.name.clone())
    };
    let resolved: Vec<_> = tenants
        .iter()
        .map(|t| serde_json::json!({"tenant": t.name, "own_route": table.tenants.get(&t.id), "resolved": table.resolve(&t.id)}))
        .collect();
    let moves: Vec<_> = table
        .moves
        .iter()
        .map(|m| serde_json::json!({"from": m.from, "to": m.to, "tenant": m.tenant_id.as_deref().map(name_of), "since": crate::clock::rfc3339(m.created_at)}))
        .collect();
    serde_json::json!({"default": table.default, "tenants": resolved, "moves": moves})
}

/// Moves traffic from one provider to another (for one tenant or all); moving back undoes.
/// Returns the move in force afterwards, if any.
pub async fn move_route(
    store: &Store,
    cfg: &Config,
    from: &str,
    to: &str,
    tenant: Option<&Tenant>,
    now: i64,
) -> OpResult<Option<RouteMove>> {
    let from = known_provider(cfg, from)?;
    let to = known_provider(cfg, to)?;
    match store
        .move_route(tenant.map(|t| t.id.as_str()), &from, &to, now)
        .await
    {
        Err(StoreError::Conflict(what)) => Err(OpError::Conflict(format!("cannot move: {what}"))),
        r => Ok(r?),
    }
}

// ---- pauses and held messages -----------------------------------------------------------

/// A pause scope from its kind (`all`, `tenant`, `key`, `provider`, `channel`) and target as
/// an operator names it (tenant name, key id, provider name, channel); with a label for people.
pub async fn pause_scope(
    store: &Store,
    cfg: &Config,
    kind: &str,
    target: Option<&str>,
) -> OpResult<(PauseScope, String)> {
    let need = |what: &str| {
        target
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid(format!("a {what} pause needs a target")))
    };
    Ok(match kind {
        "all" => (PauseScope::All, "everything".to_owned()),
        "tenant" => {
            let t = tenant(store, need("tenant")?).await?;
            let label = format!("tenant {}", t.name);
            (PauseScope::Tenant(t.id), label)
        }
        "key" => {
            let k = key(store, need("key")?).await?;
            (PauseScope::Key(k.id.clone()), format!("key {}", k.id))
        }
        "provider" => {
            let p = known_provider(cfg, need("provider")?)?;
            (PauseScope::Provider(p.clone()), format!("provider {p}"))
        }
        "channel" => {
            let c = need("channel")?.to_ascii_lowercase();
            if !["email", "sms", "social"].contains(&c.as_str()) {
                return Err(invalid(format!(
                    "unknown channel {c:?}; channels: email, sms, social"
                )));
            }
            (PauseScope::Channel(c.clone()), format!("channel {c}"))
        }
        other => {
            return Err(invalid(format!(
                "unknown pause scope {other:?}; scopes: all, tenant, key, provider, channel"
            )));
        }
    })
}

/// Which held messages: by tenant name and/or key id; neither means all of them, which must
/// be asked for (`all`) when the operation changes them. `flag` is how the edge names its
/// options (`--` on the command line, nothing in JSON).
pub async fn held_filter(
    store: &Store,
    tenant_name: Option<&str>,
    key_id: Option<&str>,
    all: Option<bool>,
    flag: &str,
) -> OpResult<HeldFilter> {
    if tenant_name.is_none() && key_id.is_none() && all == Some(false) {
        return Err(invalid(format!(
            "say which held messages: {flag}tenant, {flag}key, or {flag}all"
        )));
    }
    Ok(HeldFilter {
        tenant_id: tenant_if(store, tenant_name).await?.map(|t| t.id),
        key_id: match key_id {
            Some(k) => Some(key(store, k).await?.id),
            None => None,
        },
        held_by: None,
    })
}

/// A purge must say why: it is final.
pub fn purge_reason<'a>(reason: &'a str, flag: &str) -> OpResult<&'a str> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(invalid(format!(
            "{flag}reason must say why these messages are never sent"
        )));
    }
    Ok(r)
}

// ---- suppressions -----------------------------------------------------------------------

/// Email addresses, each checked and lowercased.
pub fn checked_addresses(addresses: &[String]) -> OpResult<Vec<String>> {
    if addresses.is_empty() {
        return Err(invalid("name at least one address"));
    }
    addresses
        .iter()
        .map(|a| {
            crate::domain::EmailAddress::parse(a.trim())
                .map(|e| e.as_str().to_ascii_lowercase())
                .map_err(|e| invalid(format!("{a:?} is not an email address: {e}")))
        })
        .collect()
}

/// Reads a suppression CSV (header row with an `address` column; `reason` and `detail`
/// optional). Every bad row is reported, and then nothing is imported. `label` names the
/// input in messages.
pub fn read_suppression_csv(
    input: impl std::io::Read,
    label: &str,
    now: i64,
) -> OpResult<Vec<Suppression>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = r
        .headers()
        .map_err(|e| invalid(format!("{label}: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let Some(addr_col) = col("address") else {
        return Err(invalid(format!(
            "{label}: the first row must be a header with an `address` column"
        )));
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
            Ok(a) => list.push(Suppression {
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
        return Err(invalid(format!(
            "{label}: nothing imported; fix these rows first:\n  {shown}{}",
            if more > 0 {
                format!("\n  ... and {more} more")
            } else {
                String::new()
            }
        )));
    }
    Ok(list)
}

/// Writes a suppression list as CSV: `address,reason,source,detail,created_at`.
pub fn write_suppression_csv(out: impl std::io::Write, list: &[Suppression]) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["address", "reason", "source", "detail", "created_at"])?;
    for s in list {
        w.write_record([
            s.address.as_str(),
            &s.reason,
            &s.source,
            s.detail.as_deref().unwrap_or(""),
            &crate::clock::rfc3339(s.created_at),
        ])?;
    }
    w.flush()?;
    Ok(())
}
