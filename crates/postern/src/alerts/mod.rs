//! Alerts to operators, on paths that do not depend on the provider under suspicion. Guard
//! alerts (recorded by the containment task in `guard_alerts`) are read after a cursor; the
//! same alert within the dedup window adds to the count of the notice already sent; a new one
//! goes at once to the level-1 channels (signed webhook, email through a provider other than
//! the suspect ones, SMS), and a notice nobody acknowledged goes on to the next level after
//! `escalate_after_secs`. Notices are kept in `alert_notices`: `postern alerts list` and
//! `alerts ack ID`.

mod channels;
pub mod config;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::providers::Providers;
use crate::providers::health::{Health, HealthState};
use crate::queue::routing::Routes;
use crate::store::{Alert, Notice, Store};

pub use config::{AlertsConfig, ChannelConfig};

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// New notices sent.
    pub notified: usize,
    /// Alerts folded into an existing notice.
    pub deduplicated: usize,
    /// Notices escalated to a further level.
    pub escalated: usize,
}

/// Reads guard alerts and tells operators; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    cfg: Arc<AlertsConfig>,
    store: Store,
    providers: Providers,
    health: Option<Health>,
    routes: Option<Routes>,
    clock: SharedClock,
    http: reqwest::Client,
}

impl Notifier {
    pub fn new(
        cfg: AlertsConfig,
        store: Store,
        providers: Providers,
        health: Option<Health>,
        routes: Option<Routes>,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        for c in &cfg.channels {
            channels::check(c, &providers)?;
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self {
            cfg: Arc::new(cfg),
            store,
            providers,
            health,
            routes,
            clock,
            http,
        })
    }

    /// Handles the alerts recorded since the last pass, then escalates what is overdue.
    pub async fn pass(&self) -> crate::store::Result<Pass> {
        let mut out = Pass::default();
        for alert in self.store.alerts_after_cursor(500).await? {
            if self.handle(&alert).await? {
                out.notified += 1;
            } else {
                out.deduplicated += 1;
            }
            self.store.advance_alert_cursor(&alert).await?;
        }
        out.escalated = self.escalate().await?;
        Ok(out)
    }

    /// True when a new notice was sent, false when the alert was folded into one.
    async fn handle(&self, a: &Alert) -> crate::store::Result<bool> {
        let key = format!("{}:{}:{}", a.signal, a.scope, a.target);
        let since = a.at - self.cfg.dedup_window_secs as i64 * 1000;
        if let Some(n) = self.store.open_notice(&key, since).await? {
            self.store.bump_notice(&n.id, a.at).await?;
            return Ok(false);
        }
        let now = self.clock.now_ms();
        let mut n = Notice {
            id: uuid::Uuid::now_v7().to_string(),
            dedup_key: key,
            scope: a.scope.clone(),
            target: a.target.clone(),
            signal: a.signal.clone(),
            action: a.action.clone(),
            first_at: a.at,
            last_at: a.at,
            count: 1,
            level: 0,
            notified_at: now,
            sent: String::new(),
            acked_at: None,
            acked_by: None,
        };
        let level = self.levels().into_iter().next().unwrap_or(1);
        n.level = i64::from(level);
        n.sent = self.tell(&n, level, Some(a)).await;
        self.store.insert_notice(&n).await?;
        Ok(true)
    }

    async fn escalate(&self) -> crate::store::Result<usize> {
        let now = self.clock.now_ms();
        let before = now - self.cfg.escalate_after_secs as i64 * 1000;
        let mut n_escalated = 0;
        for n in self.store.notices_to_escalate(before).await? {
            let Some(next) = self.levels().into_iter().find(|l| i64::from(*l) > n.level) else {
                continue;
            };
            let told = self.tell(&n, next, None).await;
            let sent = [n.sent.as_str(), told.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("; ");
            self.store
                .escalate_notice(&n.id, i64::from(next), now, &sent)
                .await?;
            n_escalated += 1;
        }
        Ok(n_escalated)
    }

    /// The configured levels, lowest first.
    fn levels(&self) -> Vec<u32> {
        let mut l: Vec<u32> = self.cfg.channels.iter().map(|c| c.level()).collect();
        l.sort_unstable();
        l.dedup();
        l
    }

    /// Sends the notice on every channel of `level`; returns what was told, for the record.
    async fn tell(&self, n: &Notice, level: u32, alert: Option<&Alert>) -> String {
        let suspects = self.suspects(n).await;
        let mut told = Vec::new();
        for c in self.cfg.channels.iter().filter(|c| c.level() == level) {
            match channels::send(self, c, n, alert, &suspects).await {
                Ok(what) => told.push(what),
                Err(e) => {
                    tracing::error!(channel = c.kind(), notice = %n.id, error = %e, "an alert could not be sent on this channel");
                    told.push(format!("{} failed", c.kind()));
                }
            }
        }
        told.join(", ")
    }

    /// The providers an alert is about: its provider, or the route of its tenant (or of its
    /// key's tenant, or the default route). Alert email never goes through one of these.
    async fn suspects(&self, n: &Notice) -> Vec<String> {
        let tenant = match n.scope.as_str() {
            "provider" => return vec![n.target.clone()],
            "tenant" => Some(n.target.clone()),
            "key" => self.store.key(&n.target).await.ok().map(|k| k.tenant_id),
            _ => None,
        };
        match &self.routes {
            Some(r) => r.resolve(tenant.as_deref().unwrap_or("")),
            None => Vec::new(),
        }
    }

    /// Whether a provider may carry an alert now.
    fn usable(&self, name: &str, suspects: &[String]) -> bool {
        !suspects.iter().any(|s| s == name)
            && !self.health.as_ref().is_some_and(|h| {
                matches!(
                    h.state(name),
                    Some(HealthState::Down | HealthState::Suspended)
                )
            })
    }
}

/// `serve`'s loop: a pass every second.
pub async fn run(notifier: Notifier, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match notifier.pass().await {
            Ok(p) if p != Pass::default() => tracing::info!(?p, "operator alerts"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading guard alerts for operators failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}
