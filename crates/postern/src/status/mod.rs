//! The public status page: the state of each channel (derived from provider health and the
//! kill switch), incident posts with their updates, and their history. The CLI, the HTTP
//! handlers (and later the admin API) all go through the functions here.
//!
//! Provider health lives in the memory of each delivering node; those nodes also record it in
//! the store ([`health_recorder`]), so the page, the CLI and `broadcast` on any machine see the
//! same thing. With several nodes, the last change any of them saw wins.

pub mod broadcast;
mod incident_file;
pub mod render;

use serde::Serialize;

use crate::config::Config;
use crate::guard::{Pause, PauseScope};
use crate::providers::health::HealthState;
use crate::store::{IncidentRecord, ProviderHealthRecord, Store, StoreError};

/// The channels the page reports on, in display order. A webhook provider carries email in the
/// queue, but on the page it is a channel of its own: tenants see it as one.
pub const CHANNELS: [&str; 4] = ["email", "sms", "social", "webhook"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl IncidentState {
    pub const ALL: [IncidentState; 4] = [
        Self::Investigating,
        Self::Identified,
        Self::Monitoring,
        Self::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Investigating => "investigating",
            Self::Identified => "identified",
            Self::Monitoring => "monitoring",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StatusError> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s.trim())
            .ok_or_else(|| StatusError::InvalidState(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelState {
    Operational,
    Degraded,
    Outage,
    Paused,
}

impl ChannelState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operational => "operational",
            Self::Degraded => "degraded",
            Self::Outage => "outage",
            Self::Paused => "paused",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "unknown incident state {0:?}; states: investigating, identified, monitoring, resolved"
    )]
    InvalidState(String),
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("{0} is too long (at most {1} characters)")]
    TooLong(&'static str, usize),
    #[error("no incident {0:?} (see `postern incident list`)")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

const TITLE_MAX: usize = 200;
const BODY_MAX: usize = 20_000;

fn text(what: &'static str, s: &str, max: usize) -> Result<String, StatusError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(StatusError::Empty(what));
    }
    if s.chars().count() > max {
        return Err(StatusError::TooLong(what, max));
    }
    Ok(s.to_owned())
}

/// Opens an incident with its first update.
pub async fn open_incident(
    store: &Store,
    now: i64,
    title: &str,
    state: IncidentState,
    body: &str,
) -> Result<IncidentRecord, StatusError> {
    let title = text("title", title, TITLE_MAX)?;
    let body = text("body", body, BODY_MAX)?;
    let id = uuid::Uuid::now_v7().to_string();
    store
        .insert_incident(&id, &title, state.as_str(), &body, now)
        .await?;
    Ok(store.incident(&id).await?)
}

/// Posts an update to an incident and moves it to `state`.
pub async fn update_incident(
    store: &Store,
    now: i64,
    id: &str,
    state: IncidentState,
    body: &str,
) -> Result<IncidentRecord, StatusError> {
    let body = text("body", body, BODY_MAX)?;
    let id = id.trim();
    match store
        .add_incident_update(id, state.as_str(), &body, now)
        .await
    {
        Err(StoreError::NotFound) => return Err(StatusError::NotFound(id.to_owned())),
        r => r?,
    }
    Ok(store.incident(id).await?)
}

pub async fn list_incidents(store: &Store, limit: i64) -> Result<Vec<IncidentRecord>, StatusError> {
    Ok(store.incidents(limit.clamp(1, 10_000)).await?)
}

/// One channel on the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelStatus {
    pub channel: String,
    pub state: ChannelState,
}

/// Everything the page shows, also served as `/status.json`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusPage {
    pub generated_at: String,
    /// The worst state of any channel.
    pub overall: ChannelState,
    pub channels: Vec<ChannelStatus>,
    /// Incidents not resolved yet, most recently updated first.
    pub incidents: Vec<IncidentView>,
    /// Resolved incidents, most recently updated first.
    pub history: Vec<IncidentView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentView {
    pub id: String,
    pub title: String,
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
    pub resolved_at: Option<String>,
    /// Newest first, as a status page reads.
    pub updates: Vec<UpdateView>,
    #[serde(skip)]
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpdateView {
    pub at: String,
    pub state: String,
    pub body: String,
}

impl From<IncidentRecord> for IncidentView {
    fn from(i: IncidentRecord) -> Self {
        use crate::clock::rfc3339;
        Self {
            created_at: rfc3339(i.created_at),
            updated_at: rfc3339(i.updated_at),
            resolved_at: i.resolved_at.map(rfc3339),
            updates: i
                .updates
                .into_iter()
                .rev()
                .map(|u| UpdateView {
                    at: rfc3339(u.at),
                    state: u.state,
                    body: u.body,
                })
                .collect(),
            updated_ms: i.updated_at,
            id: i.id,
            title: i.title,
            state: i.state,
        }
    }
}

/// How many incidents the page reads (open and history together).
const PAGE_INCIDENTS: i64 = 50;

pub async fn status_page(store: &Store, now: i64) -> Result<StatusPage, StatusError> {
    let health = store.provider_health().await?;
    let pauses = store.pauses().await?;
    let channels = channel_states(&health, &pauses);
    let (history, incidents): (Vec<IncidentRecord>, Vec<IncidentRecord>) = store
        .incidents(PAGE_INCIDENTS)
        .await?
        .into_iter()
        .partition(|i| i.state == IncidentState::Resolved.as_str());
    Ok(StatusPage {
        generated_at: crate::clock::rfc3339(now),
        overall: channels
            .iter()
            .map(|c| c.state)
            .max()
            .unwrap_or(ChannelState::Operational),
        channels,
        incidents: incidents.into_iter().map(Into::into).collect(),
        history: history.into_iter().map(Into::into).collect(),
    })
}

/// The page's channel a provider belongs to.
pub fn status_channel(kind: &str, channel: &str) -> String {
    if kind == "webhook" {
        "webhook".into()
    } else {
        channel.to_owned()
    }
}

/// Derives each channel's state. *paused*: the kill switch covers the channel (or all);
/// *outage*: no provider of the channel can take traffic (down, suspended, or paused by the
/// kill switch); *degraded*: some can, but not all are healthy; *operational*: all healthy.
/// Channels without a provider are left out.
pub fn channel_states(health: &[ProviderHealthRecord], pauses: &[Pause]) -> Vec<ChannelStatus> {
    let paused_provider = |n: &str| {
        pauses
            .iter()
            .any(|p| matches!(&p.scope, PauseScope::Provider(q) if q == n))
    };
    CHANNELS
        .iter()
        .filter_map(|&ch| {
            let ps: Vec<&ProviderHealthRecord> = health
                .iter()
                .filter(|h| status_channel(&h.kind, &h.channel) == ch)
                .collect();
            let first = ps.first()?;
            let queue_channel = first.channel.as_str();
            let channel_paused = pauses.iter().any(|p| match &p.scope {
                PauseScope::All => true,
                PauseScope::Channel(c) => c == queue_channel,
                _ => false,
            });
            let usable = |h: &&&ProviderHealthRecord| {
                !paused_provider(&h.provider)
                    && (h.state == HealthState::Healthy.as_str()
                        || h.state == HealthState::Degraded.as_str())
            };
            let state = if channel_paused {
                ChannelState::Paused
            } else if !ps.iter().any(|h| usable(&h)) {
                ChannelState::Outage
            } else if ps
                .iter()
                .all(|h| usable(&h) && h.state == HealthState::Healthy.as_str())
            {
                ChannelState::Operational
            } else {
                ChannelState::Degraded
            };
            Some(ChannelStatus {
                channel: ch.to_owned(),
                state,
            })
        })
        .collect()
}

/// Writes provider health to the store for the page and for `broadcast`: the configured
/// providers at start (forgetting removed ones), then each change. Returns a function the
/// server's health watcher calls with each state.
pub async fn record_all_health(
    store: &Store,
    cfg: &Config,
    views: &[crate::providers::health::HealthView],
    now: i64,
) -> Result<(), StoreError> {
    let names: Vec<String> = cfg.providers.keys().cloned().collect();
    store.retain_provider_health(&names).await?;
    for v in views {
        record_health(store, cfg, &v.provider, v.state, v.since, &v.reason, now).await?;
    }
    Ok(())
}

/// The channel a provider type carries (what its adapter's `channel()` says).
pub fn queue_channel(kind: &str) -> crate::providers::Channel {
    use crate::providers::Channel;
    match kind {
        "twilio" => Channel::Sms,
        "social" => Channel::Social,
        _ => Channel::Email,
    }
}

/// Records one provider's state.
pub async fn record_health(
    store: &Store,
    cfg: &Config,
    provider: &str,
    state: HealthState,
    since: i64,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    let Some(p) = cfg.providers.get(provider) else {
        return Ok(());
    };
    store
        .record_provider_health(&ProviderHealthRecord {
            provider: provider.to_owned(),
            kind: p.kind().to_owned(),
            channel: queue_channel(p.kind()).as_str().to_owned(),
            state: state.as_str().to_owned(),
            since,
            reason: reason.to_owned(),
            updated_at: now,
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(provider: &str, kind: &str, channel: &str, state: &str) -> ProviderHealthRecord {
        ProviderHealthRecord {
            provider: provider.into(),
            kind: kind.into(),
            channel: channel.into(),
            state: state.into(),
            since: 0,
            reason: String::new(),
            updated_at: 0,
        }
    }

    fn pause(scope: PauseScope) -> Pause {
        Pause {
            scope,
            reason: "r".into(),
            actor: "op".into(),
            created_at: 0,
        }
    }

    fn states(health: &[ProviderHealthRecord], pauses: &[Pause]) -> Vec<(String, &'static str)> {
        channel_states(health, pauses)
            .into_iter()
            .map(|c| (c.channel, c.state.as_str()))
            .collect()
    }

    #[test]
    fn channel_state_follows_health_and_pauses() {
        let mut hs = vec![
            h("ses", "ses", "email", "healthy"),
            h("relay", "smtp", "email", "healthy"),
            h("sms", "twilio", "sms", "healthy"),
            h("hook", "webhook", "email", "healthy"),
        ];
        let s = |v: &[(String, &str)]| {
            v.iter()
                .map(|(c, s)| format!("{c}={s}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            s(&states(&hs, &[])),
            "email=operational,sms=operational,webhook=operational"
        );
        hs[0].state = "suspended".into();
        assert_eq!(s(&states(&hs, &[]))[..14], *"email=degraded");
        hs[1].state = "down".into();
        assert!(s(&states(&hs, &[])).starts_with("email=outage,sms=operational"));
        hs[1].state = "healthy".into();
        assert!(
            s(&states(&hs, &[pause(PauseScope::Provider("relay".into()))]))
                .starts_with("email=outage")
        );
        assert_eq!(
            s(&states(&hs, &[pause(PauseScope::Channel("sms".into()))])),
            "email=degraded,sms=paused,webhook=operational"
        );
        // Webhook providers carry email in the queue: an email pause covers them.
        assert_eq!(
            s(&states(&hs, &[pause(PauseScope::Channel("email".into()))])),
            "email=paused,sms=operational,webhook=paused"
        );
        assert_eq!(
            s(&states(&hs, &[pause(PauseScope::All)])),
            "email=paused,sms=paused,webhook=paused"
        );
        // A tenant's pause is not the channel's.
        assert!(
            s(&states(&hs, &[pause(PauseScope::Tenant("t".into()))])).starts_with("email=degraded")
        );
    }

    #[test]
    fn incident_states_parse() {
        for s in IncidentState::ALL {
            assert_eq!(IncidentState::parse(s.as_str()).ok(), Some(s));
        }
        let e = IncidentState::parse("fixed").unwrap_err().to_string();
        assert!(e.contains("\"fixed\"") && e.contains("monitoring"), "{e}");
    }
}
