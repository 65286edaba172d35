//! API key authentication, shared by HTTP and SMTP. Keys are looked up by their public id and
//! compared by hash in constant time; records are cached briefly so a busy key does not cost a
//! query per message, and a revocation made by another process takes effect within
//! [`CACHE_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
    #[error("key store unavailable")]
    Store(#[source] StoreError),
}

/// The key a request was made with.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub tenant_id: String,
    pub tenant: String,
}

/// A key record and when it was read.
type Cached = (Arc<KeyRecord>, Instant);

#[derive(Clone)]
pub struct KeyAuthenticator {
    store: Store,
    cache: Arc<RwLock<HashMap<String, Cached>>>,
}

impl KeyAuthenticator {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::default(),
        }
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

    /// Checks a presented key for `scope`.
    pub async fn authenticate(&self, presented: &str, scope: &str) -> Result<Principal, AuthError> {
        if presented.is_empty() {
            return Err(AuthError::Missing);
        }
        let secret = ApiKeySecret::parse(presented)?;
        let rec = self.record(secret.id().as_str()).await?;
        if !secret.matches(&rec.secret_hash) {
            return Err(AuthError::Unknown);
        }
        if rec.revoked_at.is_some() {
            return Err(AuthError::Revoked(rec.id.clone()));
        }
        if !rec.scopes.split(',').any(|s| s == scope || s == "admin") {
            return Err(AuthError::Scope(rec.id.clone(), scope.to_owned()));
        }
        Ok(Principal {
            key_id: rec.id.clone(),
            tenant_id: rec.tenant_id.clone(),
            tenant: rec.tenant.clone(),
        })
    }
}
