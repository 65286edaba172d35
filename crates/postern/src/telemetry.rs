//! Metrics in Prometheus format, kept in a registry owned by the app (no global recorder, so
//! many instances can live in one test process), and the tracing subscriber for the binary.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

struct Inner {
    registry: Registry,
    accepted: Family<Labels, Counter>,
    deliveries: Family<Labels, Counter>,
    outcomes_written: Counter,
    commit_batch: Histogram,
    commit_seconds: Histogram,
    log_flushes: Counter,
    queue_depth: Family<Labels, Gauge>,
    http_requests: Family<Labels, Counter>,
    accept_seconds: Histogram,
    provider_health: Family<Labels, Gauge>,
    state_changes: Family<Labels, Counter>,
    feedback: Family<Labels, Counter>,
    guard_actions: Family<Labels, Counter>,
    messages: Family<Labels, Counter>,
    tenants: Family<Labels, Gauge>,
    pauses: Family<Labels, Gauge>,
    delivery_seconds: Family<Labels, Histogram>,
    attempt_seconds: Histogram,
    rates: crate::feedback::rates::RateMetrics,
}

/// Cheap to clone; every clone updates the same registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let accepted = Family::<Labels, Counter>::default();
        registry.register(
            "postern_messages_accepted",
            "Messages made durable, by entry point",
            accepted.clone(),
        );
        let deliveries = Family::<Labels, Counter>::default();
        registry.register(
            "postern_delivery_attempts",
            "Delivery attempts by provider and resulting message status",
            deliveries.clone(),
        );
        let outcomes_written = Counter::default();
        registry.register(
            "postern_delivery_outcomes_written",
            "Attempt outcomes written back to the store",
            outcomes_written.clone(),
        );
        let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "postern_accept_commit_batch_size",
            "Messages per group commit",
            commit_batch.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "postern_accept_commit_seconds",
            "Duration of one group commit",
            commit_seconds.clone(),
        );
        let log_flushes = Counter::default();
        registry.register(
            "postern_accept_log_flushes",
            "Flushes of SQLite's write-ahead log by the group commit (one covers every commit made before it began)",
            log_flushes.clone(),
        );
        let queue_depth = Family::<Labels, Gauge>::default();
        registry.register(
            "postern_queue_messages",
            "Messages in the store by status",
            queue_depth.clone(),
        );
        let http_requests = Family::<Labels, Counter>::default();
        registry.register(
            "postern_http_responses",
            "HTTP API answers by route and status code",
            http_requests.clone(),
        );
        let accept_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "postern_http_accept_seconds",
            "Latency of POST /v1/messages",
            accept_seconds.clone(),
        );
        let provider_health = Family::<Labels, Gauge>::default();
        registry.register(
            "postern_provider_health",
            "1 for the state each provider is in (healthy, degraded, down, suspended), else 0",
            provider_health.clone(),
        );
        let state_changes = Family::<Labels, Counter>::default();
        registry.register(
            "postern_provider_state_changes",
            "Provider health changes, by provider and new state",
            state_changes.clone(),
        );
        let feedback = Family::<Labels, Counter>::default();
        registry.register(
            "postern_feedback",
            "Feedback received, by kind (bounce, complaint, autoreply, delivery) and whether it matched a message Postern sent",
            feedback.clone(),
        );
        let guard_actions = Family::<Labels, Counter>::default();
        registry.register(
            "postern_guard_actions",
            "Guard detections, by signal and action (hold, alert)",
            guard_actions.clone(),
        );
        let messages = Family::<Labels, Counter>::default();
        registry.register(
            "postern_messages",
            "Messages by outcome (accepted, held, suppressed at accept; delivered, bounced, deferred, expired, held after an attempt), tenant id, channel and provider",
            messages.clone(),
        );
        let tenants = Family::<Labels, Gauge>::default();
        registry.register(
            "postern_tenant_info",
            "1 per tenant: its name by id, to join on tenant_id",
            tenants.clone(),
        );
        let pauses = Family::<Labels, Gauge>::default();
        registry.register(
            "postern_pauses_active",
            "Active kill-switch pauses by scope (all, tenant, key, provider, channel)",
            pauses.clone(),
        );
        let delivery_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 18))
        });
        registry.register(
            "postern_delivery_seconds",
            "From accept to delivery, by provider",
            delivery_seconds.clone(),
        );
        let attempt_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "postern_delivery_attempt_seconds",
            "Duration of one delivery attempt (every provider it walked)",
            attempt_seconds.clone(),
        );
        let rates = crate::feedback::rates::RateMetrics::register(&mut registry);
        Self(Arc::new(Inner {
            rates,
            registry,
            accepted,
            deliveries,
            outcomes_written,
            commit_batch,
            commit_seconds,
            log_flushes,
            queue_depth,
            http_requests,
            accept_seconds,
            provider_health,
            state_changes,
            feedback,
            guard_actions,
            messages,
            tenants,
            pauses,
            delivery_seconds,
            attempt_seconds,
        }))
    }

    /// `n` messages accepted at once (one group commit's, counted in one step).
    pub fn accepted_n(&self, source: &str, n: u64) {
        self.0
            .accepted
            .get_or_create(&vec![("source".into(), source.into())])
            .inc_by(n);
    }

    pub fn delivery_outcome(&self, provider: &str, status: &str) {
        self.0
            .deliveries
            .get_or_create(&vec![
                ("provider".into(), provider.into()),
                ("status".into(), status.into()),
            ])
            .inc();
    }

    pub fn completed(&self, n: usize) {
        self.0.outcomes_written.inc_by(n as u64);
    }

    pub fn log_flushed(&self) {
        self.0.log_flushes.inc();
    }

    pub fn observe_commit(&self, batch: usize, took: Duration) {
        self.0.commit_batch.observe(batch as f64);
        self.0.commit_seconds.observe(took.as_secs_f64());
    }

    pub fn http_response(&self, route: &'static str, status: u16) {
        self.0
            .http_requests
            .get_or_create(&vec![
                ("route".into(), route.into()),
                ("code".into(), status.to_string()),
            ])
            .inc();
    }

    pub fn observe_accept(&self, took: Duration) {
        self.0.accept_seconds.observe(took.as_secs_f64());
    }

    /// Sets the gauge for every status: one with no rows any more reads 0, not its last value.
    pub fn set_queue_depth(&self, counts: &[(String, i64)]) {
        use crate::domain::MessageStatus as S;
        for s in [
            S::Queued,
            S::Sending,
            S::Deferred,
            S::Delivered,
            S::Bounced,
            S::Expired,
            S::Held,
            S::Suppressed,
            S::Purged,
        ] {
            if !counts.iter().any(|(status, _)| status == s.as_str()) {
                self.0
                    .queue_depth
                    .get_or_create(&vec![("status".into(), s.as_str().into())])
                    .set(0);
            }
        }
        for (status, n) in counts {
            self.0
                .queue_depth
                .get_or_create(&vec![("status".into(), status.clone())])
                .set(*n);
        }
    }

    /// Sets the health gauges of one provider: 1 for its state, 0 for the others.
    pub fn set_provider_health(
        &self,
        provider: &str,
        state: crate::providers::health::HealthState,
    ) {
        for s in crate::providers::health::HealthState::ALL {
            self.0
                .provider_health
                .get_or_create(&vec![
                    ("provider".into(), provider.into()),
                    ("state".into(), s.as_str().into()),
                ])
                .set(i64::from(s == state));
        }
    }

    pub fn provider_state_changed(
        &self,
        provider: &str,
        to: crate::providers::health::HealthState,
    ) {
        self.0
            .state_changes
            .get_or_create(&vec![
                ("provider".into(), provider.into()),
                ("state".into(), to.as_str().into()),
            ])
            .inc();
    }

    /// Rolling feedback rates and orphan feedback by domain.
    pub fn rates(&self) -> &crate::feedback::rates::RateMetrics {
        &self.0.rates
    }

    pub fn feedback(&self, kind: &str, matched: bool) {
        self.0
            .feedback
            .get_or_create(&vec![
                ("kind".into(), kind.into()),
                ("matched".into(), matched.to_string()),
            ])
            .inc();
    }

    pub fn guard_action(&self, signal: &str, action: &str) {
        self.0
            .guard_actions
            .get_or_create(&vec![
                ("signal".into(), signal.into()),
                ("action".into(), action.into()),
            ])
            .inc();
    }

    /// One message reached `outcome`; `provider` is `none` before any provider was involved.
    pub fn message(&self, tenant_id: &str, channel: &str, provider: &str, outcome: &str) {
        self.messages_n(tenant_id, channel, provider, outcome, 1);
    }

    /// [`Metrics::message`] for `n` messages at once.
    pub fn messages_n(
        &self,
        tenant_id: &str,
        channel: &str,
        provider: &str,
        outcome: &str,
        n: u64,
    ) {
        self.0
            .messages
            .get_or_create(&vec![
                ("tenant_id".into(), tenant_id.into()),
                ("channel".into(), channel.into()),
                ("provider".into(), provider.into()),
                ("outcome".into(), outcome.into()),
            ])
            .inc_by(n);
    }

    /// After an attempt: its duration, the outcome, and for a delivery the time since accept.
    pub fn attempt(
        &self,
        tenant_id: &str,
        provider: Option<&str>,
        status: &str,
        took: Duration,
        since_accept_ms: i64,
    ) {
        self.0.attempt_seconds.observe(took.as_secs_f64());
        let provider = provider.filter(|p| !p.is_empty()).unwrap_or("none");
        self.message(tenant_id, "email", provider, status);
        if status == "delivered" {
            self.0
                .delivery_seconds
                .get_or_create(&vec![("provider".into(), provider.into())])
                .observe(since_accept_ms.max(0) as f64 / 1000.0);
        }
    }

    /// Tenant names by id (read at each scrape).
    pub fn set_tenants(&self, tenants: &[(String, String)]) {
        for (id, name) in tenants {
            self.0
                .tenants
                .get_or_create(&vec![
                    ("tenant_id".into(), id.clone()),
                    ("tenant".into(), name.clone()),
                ])
                .set(1);
        }
    }

    /// Active pauses per scope kind (read at each scrape); kinds without one read 0.
    pub fn set_pauses(&self, kinds: &[&str]) {
        for k in ["all", "tenant", "key", "provider", "channel"] {
            let n = kinds.iter().filter(|x| **x == k).count();
            self.0
                .pauses
                .get_or_create(&vec![("scope".into(), k.into())])
                .set(n as i64);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.0.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Logs to stderr; level from `POSTERN_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("POSTERN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
