//! API key authentication, shared by HTTP and SMTP. Keys are looked up by their public id and
//! compared by hash in constant time; records are cached briefly so a busy key does not cost a
//! query per message, and a revocation made by another process takes effect within
//! [`CACHE_TTL`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::clock::{SharedClock, rfc3339};
use crate::domain::{ApiKeySecret, KeyError};
use crate::store::{KeyRecord, Store, StoreError};

pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// Why a presented key was refused. The messages are safe to show the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key")]
    Missing,
    #[error(transparent)]
    Malformed(#[from] KeyError),
    #[error("unknown API key")]
    Unknown,
    #[error("API key {0} has been revoked")]
    Revoked(String),
    #[error("API key {0} lacks the {1:?} scope")]
    Scope(String, String),
    #[error("API key {0} expired at {1}")]
    Expired(String, String),
    #[error("API key {0} was rotated and its grace period ended; use its successor {1}")]
    Rotated(String, String),
    #[error("API key {0} may not be used from {1}")]
    Network(String, String),
    #[error("key store unavailable")]
    Store(#[source] StoreError),
}

/// The key a request was made with.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub tenant_id: String,
    pub tenant: String,
    pub key: Arc<KeyRecord>,
    /// Where the request came from, when known (the guard's throttle spares known networks).
    pub ip: Option<IpAddr>,
}

/// Why a key may not send this message. The messages are safe to show the client.
#[derive(Debug, thiserror::Error)]
pub enum SendRefusal {
    #[error("API key {0} may not send from {1:?} (allowed From domains: {2})")]
    FromDomain(String, String, String),
    #[error("API key {0} may not send to {1:?} (allowed recipient domains: {2})")]
    RcptDomain(String, String, String),
    #[error("API key {0} is over its rate of {1} messages per second; retry shortly")]
    Rate(String, f64),
    #[error("API key {0} reached its daily limit of {1} messages (resets at 00:00 UTC)")]
    Daily(String, u64),
    #[error("key store unavailable")]
    Store(#[source] StoreError),
}

/// Per-key send counters: a rate bucket and the count for the current UTC day.
#[derive(Default)]
struct Usage {
    /// GCRA: the time the next message may go without exceeding the rate.
    next_ms: f64,
    day: i64,
    sent_today: Option<u64>,
}

const DAY_MS: i64 = 86_400_000;

/// When a key was last used and from which address.
type LastUse = (i64, Option<String>);

/// A key record and when it was read.
type Cached = (Arc<KeyRecord>, Instant);

#[derive(Clone)]
pub struct KeyAuthenticator {
    store: Store,
    clock: SharedClock,
    cache: Arc<RwLock<HashMap<String, Cached>>>,
    /// Last use of each key since the last flush: (when, from where).
    seen: Arc<Mutex<HashMap<String, LastUse>>>,
    usage: Arc<Mutex<HashMap<String, Usage>>>,
    /// Told of every use and refusal (access signals); its throttles cap keys' rates.
    guard: Option<crate::guard::Guard>,
}

impl KeyAuthenticator {
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            cache: Arc::default(),
            seen: Arc::default(),
            usage: Arc::default(),
            guard: None,
        }
    }

    /// Reports uses and refusals to the detector and applies its throttles.
    pub fn with_guard(mut self, guard: Option<crate::guard::Guard>) -> Self {
        self.guard = guard;
        self
    }

    fn refused(&self, key: &str, why: &dyn std::fmt::Display) {
        if let Some(g) = &self.guard {
            g.key_refused(key, &why.to_string());
        }
    }

    /// Writes the last-use times and addresses gathered since the last call (the server calls
    /// this every few seconds, so a busy key does not cost a write per message).
    pub async fn flush_usage(&self) -> Result<(), StoreError> {
        let batch: Vec<(String, i64, Option<String>)> = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.drain().map(|(id, (at, ip))| (id, at, ip)).collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        self.store.record_key_usage(&batch).await
    }

    /// Checks a message against the key's policy and counts it against its limits.
    pub async fn admit_send(
        &self,
        who: &Principal,
        from: &str,
        recipients: &[String],
    ) -> Result<(), SendRefusal> {
        let k = &who.key;
        let p = &k.policy;
        if !p.allows_from(from) {
            let e =
                SendRefusal::FromDomain(k.id.clone(), from.to_owned(), p.from_domains.join(", "));
            self.refused(&k.id, &e);
            return Err(e);
        }
        if let Some(r) = recipients.iter().find(|r| !p.allows_rcpt(r)) {
            let e = SendRefusal::RcptDomain(k.id.clone(), r.clone(), p.rcpt_domains.join(", "));
            self.refused(&k.id, &e);
            return Err(e);
        }
        // The guard's throttle, when it put one on this key, is a rate like the key's own.
        let throttle = self
            .guard
            .as_ref()
            .and_then(|g| g.throttle_of(&k.id, who.ip));
        let rate = match (p.rate_per_sec, throttle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if rate.is_none() && p.daily_limit.is_none() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let day = now.div_euclid(DAY_MS);
        let known_today = {
            let usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
            usage
                .get(&k.id)
                .filter(|u| u.day == day)
                .and_then(|u| u.sent_today)
        };
        // The first message of a day (or since start) counts what the store already holds.
        let seed = match (p.daily_limit, known_today) {
            (Some(_), None) => Some(
                self.store
                    .key_messages_since(&k.id, day * DAY_MS)
                    .await
                    .map_err(SendRefusal::Store)? as u64,
            ),
            _ => None,
        };
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let u = usage.entry(k.id.clone()).or_default();
        if u.day != day {
            u.day = day;
            u.sent_today = None;
        }
        if u.sent_today.is_none() {
            u.sent_today = seed.or(Some(0));
        }
        if let (Some(limit), Some(sent)) = (p.daily_limit, u.sent_today)
            && sent >= limit
        {
            return Err(SendRefusal::Daily(k.id.clone(), limit));
        }
        if let Some(rate) = rate {
            let interval = 1000.0 / rate;
            let burst = interval * (rate.max(1.0) - 1.0);
            let now_f = now as f64;
            let start = u.next_ms.max(now_f - burst);
            if start > now_f {
                return Err(SendRefusal::Rate(k.id.clone(), rate));
            }
            u.next_ms = start + interval;
        }
        u.sent_today = u.sent_today.map(|n| n + 1);
        Ok(())
    }

    /// Drops a key from the cache, so its next use reads the store (after a revocation made
    /// by this process).
    pub fn forget(&self, id: &str) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    async fn record(&self, id: &str) -> Result<Arc<KeyRecord>, AuthError> {
        if let Some((rec, at)) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(rec.clone());
        }
        let rec = match self.store.key(id).await {
            Ok(r) => Arc::new(r),
            Err(StoreError::NotFound) => return Err(AuthError::Unknown),
            Err(e) => return Err(AuthError::Store(e)),
        };
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), (rec.clone(), Instant::now()));
        Ok(rec)
    }

    /// The key behind a session that authenticated once (SMTP), checked again before each
    /// message: a revocation, an expiry, the end of a rotation's grace period or a narrowed
    /// policy applies to a session already open as to the next request (the record is cached
    /// for at most [`CACHE_TTL`]).
    pub async fn recheck(&self, who: &Principal, scope: &str) -> Result<Principal, AuthError> {
        let rec = self.record(&who.key_id).await?;
        usable(&rec, self.clock.now_ms())?;
        permitted(&rec, scope, who.ip)?;
        Ok(Principal {
            key: rec,
            ..who.clone()
        })
    }

    /// Checks a presented key for `scope`, used from `ip` (when known).
    pub async fn authenticate(
        &self,
        presented: &str,
        scope: &str,
        ip: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        self.authenticate_from(presented, scope, ip, None).await
    }

    /// [`KeyAuthenticator::authenticate`], with the client's User-Agent (HTTP) for the
    /// guard's access signals.
    pub async fn authenticate_from(
        &self,
        presented: &str,
        scope: &str,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
    ) -> Result<Principal, AuthError> {
        if presented.is_empty() {
            return Err(AuthError::Missing);
        }
        let secret = ApiKeySecret::parse(presented)?;
        if secret.mode() == crate::domain::KeyMode::Admin {
            return Err(AuthError::Unknown);
        }
        let rec = self.record(secret.id().as_str()).await?;
        if !secret.matches(&rec.secret_hash) {
            return Err(AuthError::Unknown);
        }
        let now = self.clock.now_ms();
        usable(&rec, now)?;
        if let Some(grace) = rec.grace_until {
            // Reported on every use: the old key should be going quiet.
            let successor = rec.successor_id.as_deref().unwrap_or_default();
            tracing::warn!(key = %rec.id, successor = %successor, ip = ?ip, until = %rfc3339(grace), "rotated API key used during its grace period");
        }
        if let Err(e) = permitted(&rec, scope, ip) {
            // Reading a message falls back from `read` to `send`: not a probe.
            if !(matches!(e, AuthError::Scope(..)) && scope == "read") {
                self.refused(&rec.id, &e);
            }
            return Err(e);
        }
        if let Some(g) = &self.guard {
            g.key_used(&rec.id, ip, user_agent);
        }
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rec.id.clone(), (now, ip.map(|i| i.to_string())));
        Ok(Principal {
            key_id: rec.id.clone(),
            tenant_id: rec.tenant_id.clone(),
            tenant: rec.tenant.clone(),
            key: rec,
            ip,
        })
    }
}

/// Whether a usable key may be used from `ip` (its network allowlist) for `scope`.
fn permitted(rec: &KeyRecord, scope: &str, ip: Option<IpAddr>) -> Result<(), AuthError> {
    if !rec.policy.allows_ip(ip) {
        let from = ip.map_or("an unknown address".to_owned(), |i| i.to_string());
        return Err(AuthError::Network(rec.id.clone(), from));
    }
    if !rec.scopes.split(',').any(|s| s == scope || s == "admin") {
        return Err(AuthError::Scope(rec.id.clone(), scope.to_owned()));
    }
    Ok(())
}

/// Whether a key whose secret matched may be used at `now`: not revoked, not expired, not past
/// the grace period of a rotation.
fn usable(rec: &KeyRecord, now: i64) -> Result<(), AuthError> {
    if rec.revoked_at.is_some() {
        return Err(AuthError::Revoked(rec.id.clone()));
    }
    if let Some(exp) = rec.expires_at.filter(|e| *e <= now) {
        return Err(AuthError::Expired(rec.id.clone(), rfc3339(exp)));
    }
    if rec.grace_until.is_some_and(|g| g <= now) {
        return Err(AuthError::Rotated(
            rec.id.clone(),
            rec.successor_id.clone().unwrap_or_default(),
        ));
    }
    Ok(())
}
