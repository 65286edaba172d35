//! TOTP secrets at rest. The server must read an operator's TOTP secret to check codes, so it
//! cannot be hashed; with a KEK configured (`[secrets]`) it is sealed in the secret store
//! (`crate::secrets`, row `admin-totp.<hash of the name>`) and the account row keeps only the
//! reference `secret:admin-totp.…`. Without a KEK the secret is stored as given (and a warning
//! says so at start). Secrets stored plain before a KEK was configured are sealed at the next
//! start. Opened secrets are kept in memory, so a KEK rotation under a running server does not
//! interrupt logins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::secrets::{Keyring, REF_PREFIX};
use crate::store::Store;

/// The secret-store name of an account's TOTP secret (names allow fewer characters than
/// admin names, so the name is hashed).
pub fn secret_name(username: &str) -> String {
    let h = hex::encode(Sha256::digest(username.as_bytes()));
    format!("admin-totp.{}", &h[..32])
}

#[derive(Clone, Default)]
pub struct TotpSecrets {
    keys: Option<Arc<Keyring>>,
    /// Opened secrets by secret-store name.
    opened: Arc<Mutex<HashMap<String, SecretString>>>,
}

impl TotpSecrets {
    pub fn new(keys: Option<Keyring>) -> Self {
        Self {
            keys: keys.map(Arc::new),
            opened: Arc::default(),
        }
    }

    pub fn sealing(&self) -> bool {
        self.keys.is_some()
    }

    fn remember(&self, name: String, secret: &SecretString) {
        if let Ok(mut m) = self.opened.lock() {
            m.insert(name, secret.clone());
        }
    }

    /// What the account row keeps for a new secret: a reference to the sealed row, or
    /// without a KEK the secret itself.
    pub async fn stored_value(
        &self,
        store: &Store,
        username: &str,
        secret: &str,
        now: i64,
    ) -> anyhow::Result<String> {
        let Some(keys) = &self.keys else {
            return Ok(secret.to_owned());
        };
        let name = secret_name(username);
        crate::secrets::set(store, keys, &name, secret.as_bytes(), now).await?;
        self.remember(name.clone(), &SecretString::from(secret.to_owned()));
        Ok(format!("{REF_PREFIX}{name}"))
    }

    /// The secret behind an account row's value.
    pub async fn open(&self, store: &Store, stored: &SecretString) -> anyhow::Result<SecretString> {
        let Some(name) = stored.expose_secret().strip_prefix(REF_PREFIX) else {
            return Ok(stored.clone());
        };
        if let Some(s) = self.opened.lock().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(s);
        }
        let keys = self.keys.as_ref().with_context(|| {
            format!("the TOTP secret is sealed ({name}) but no KEK is configured in [secrets]")
        })?;
        let secret = crate::secrets::get(store, keys, name).await?;
        self.remember(name.to_owned(), &secret);
        Ok(secret)
    }

    /// At start: seals every TOTP secret still stored plain (when a KEK is configured) and
    /// opens the sealed ones into memory. Returns how many were sealed.
    pub async fn seal_existing(&self, store: &Store, now: i64) -> anyhow::Result<u64> {
        let mut sealed = 0;
        for a in store.list_admins().await? {
            let Some(stored) = &a.totp_secret else {
                continue;
            };
            if stored.expose_secret().starts_with(REF_PREFIX) {
                self.open(store, stored)
                    .await
                    .with_context(|| format!("opening admin {:?}'s TOTP secret", a.username))?;
                continue;
            }
            let Some(_) = &self.keys else {
                tracing::warn!(
                    admin = %a.username,
                    "TOTP secret stored unsealed: configure a KEK in [secrets] to seal it"
                );
                continue;
            };
            let value = self
                .stored_value(store, &a.username, stored.expose_secret(), now)
                .await?;
            if store
                .replace_totp_secret(&a.username, stored.expose_secret(), &value)
                .await?
            {
                sealed += 1;
            }
        }
        Ok(sealed)
    }
}
