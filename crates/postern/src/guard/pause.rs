//! The kill switch. A pause stops new provider calls in its scope: messages of a paused
//! tenant, key or channel (or of everyone) are accepted as `held` and claimed ones are held
//! before their call starts; a paused provider is skipped by routing. Calls already under way
//! finish. Resuming releases what the pause held, in the order it was accepted.
//!
//! The set lives in memory (a lookup per message, no query) and is reloaded from the store
//! every [`RELOAD_EVERY`]; on PostgreSQL a `NOTIFY` on [`CHANNEL`] makes every node reload at
//! once.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::providers::Channel;
use crate::store::Store;

/// How often a node re-reads the pauses from the store.
pub const RELOAD_EVERY: Duration = Duration::from_millis(50);
/// The PostgreSQL notification channel a pause change is announced on.
pub const CHANNEL: &str = "postern_pauses";

/// What a pause covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "scope", content = "target", rename_all = "lowercase")]
pub enum PauseScope {
    All,
    Tenant(String),
    Key(String),
    Provider(String),
    Channel(String),
}

impl PauseScope {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Tenant(_) => "tenant",
            Self::Key(_) => "key",
            Self::Provider(_) => "provider",
            Self::Channel(_) => "channel",
        }
    }

    pub fn target(&self) -> &str {
        match self {
            Self::All => "",
            Self::Tenant(t) | Self::Key(t) | Self::Provider(t) | Self::Channel(t) => t,
        }
    }

    pub fn from_parts(kind: &str, target: &str) -> Option<Self> {
        Some(match kind {
            "all" => Self::All,
            "tenant" => Self::Tenant(target.to_owned()),
            "key" => Self::Key(target.to_owned()),
            "provider" => Self::Provider(target.to_owned()),
            "channel" => Self::Channel(target.to_owned()),
            _ => return None,
        })
    }

    /// The tag a held message carries, so resuming this scope releases exactly what it held.
    pub fn tag(&self) -> String {
        match self {
            Self::All => "pause:all".into(),
            s => format!("pause:{}:{}", s.kind(), s.target()),
        }
    }
}

/// One active pause.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pause {
    #[serde(flatten)]
    pub scope: PauseScope,
    pub reason: String,
    pub actor: String,
    pub created_at: i64,
}

/// The active pauses of this node; cheap to clone.
#[derive(Clone, Default)]
pub struct Pauses {
    set: Arc<RwLock<Arc<Vec<Pause>>>>,
    /// Pauses made on this node (by the guard) that the store may not show yet: kept across
    /// reloads until the store has them, so a reload racing the write cannot lift them.
    local: Arc<std::sync::Mutex<Vec<(Pause, std::time::Instant)>>>,
}

/// How long a local pause waits to show up in the store before the store's word wins.
const LOCAL_GRACE: Duration = Duration::from_secs(30);

impl Pauses {
    pub fn list(&self) -> Arc<Vec<Pause>> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, pauses: Vec<Pause>) {
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(pauses);
    }

    /// Pauses at once on this node, before (and whatever) the store says.
    pub fn add_local(&self, p: Pause) {
        let mut list = self.list().as_ref().clone();
        if !list.iter().any(|q| q.scope == p.scope) {
            list.push(p.clone());
            self.replace(list);
        }
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((p, std::time::Instant::now()));
    }

    /// The pause that holds a message of this tenant, key and channel, if any. The broadest
    /// scope wins, so resuming it releases the message (a narrower one still active holds it
    /// again at its next attempt).
    pub fn holding(
        &self,
        tenant_id: &str,
        key_id: Option<&str>,
        channel: Channel,
    ) -> Option<Pause> {
        let set = self.list();
        let order = |p: &Pause| match &p.scope {
            PauseScope::All => 0,
            PauseScope::Channel(_) => 1,
            PauseScope::Tenant(_) => 2,
            PauseScope::Key(_) => 3,
            PauseScope::Provider(_) => 4,
        };
        set.iter()
            .filter(|p| match &p.scope {
                PauseScope::All => true,
                PauseScope::Tenant(t) => t == tenant_id,
                PauseScope::Key(k) => Some(k.as_str()) == key_id,
                PauseScope::Channel(c) => c == channel.as_str(),
                PauseScope::Provider(_) => false,
            })
            .min_by_key(|p| order(p))
            .cloned()
    }

    pub fn provider_paused(&self, name: &str) -> bool {
        self.list()
            .iter()
            .any(|p| matches!(&p.scope, PauseScope::Provider(n) if n == name))
    }

    /// Re-reads the pauses from the store; returns whether they changed.
    pub async fn reload(&self, store: &Store) -> crate::store::Result<bool> {
        let mut fresh = store.pauses().await?;
        {
            let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
            local.retain(|(p, at)| {
                at.elapsed() < LOCAL_GRACE && !fresh.iter().any(|q| q.scope == p.scope)
            });
            fresh.extend(local.iter().map(|(p, _)| p.clone()));
        }
        if *self.list() == fresh {
            return Ok(false);
        }
        self.replace(fresh);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(scope: PauseScope) -> Pause {
        Pause {
            scope,
            reason: "test".into(),
            actor: "op".into(),
            created_at: 0,
        }
    }

    #[test]
    fn scopes_hold_what_they_cover_and_the_broadest_wins() {
        let p = Pauses::default();
        assert!(p.holding("t1", Some("k1"), Channel::Email).is_none());
        p.replace(vec![pause(PauseScope::Key("k1".into()))]);
        assert!(p.holding("t1", Some("k1"), Channel::Email).is_some());
        assert!(p.holding("t1", Some("k2"), Channel::Email).is_none());
        p.replace(vec![
            pause(PauseScope::Key("k1".into())),
            pause(PauseScope::Tenant("t1".into())),
        ]);
        let h = p.holding("t1", Some("k1"), Channel::Email).unwrap();
        assert_eq!(h.scope, PauseScope::Tenant("t1".into()));
        assert!(p.holding("t2", Some("k9"), Channel::Email).is_none());
        p.replace(vec![pause(PauseScope::Channel("sms".into()))]);
        assert!(p.holding("t1", None, Channel::Email).is_none());
        assert!(p.holding("t1", None, Channel::Sms).is_some());
        p.replace(vec![pause(PauseScope::Provider("ses".into()))]);
        assert!(p.holding("t1", None, Channel::Email).is_none());
        assert!(p.provider_paused("ses") && !p.provider_paused("smtp"));
        p.replace(vec![pause(PauseScope::All)]);
        assert_eq!(
            p.holding("x", None, Channel::Social).unwrap().scope.tag(),
            "pause:all"
        );
    }
}
