//! The simulation loop: virtual time in steps; senders accept through the acceptor's logic
//! (pause check, then the detector), the real `deliver_one` hands messages to simulated
//! providers, feedback comes back through the detector's entry points, and trips go through the
//! real containment task.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use crate::clock::{ManualClock, SharedClock};
use crate::guard::{Guard, Pause, PauseScope, Pauses};
use crate::providers::health::Health;
use crate::providers::limits::Limits;
use crate::providers::{Channel, Provider, Providers};
use crate::queue::deliver::{DeliveryPolicy, Dispatch};
use crate::queue::routing::Routes;
use crate::store::{NewMessage, Store};

use super::provider::{Behaviour, Recipients, SimProvider};
use super::scenario::{EventKind, Scenario};
use super::summary::{AlertSeen, Tally};

mod deliver;

/// After the traffic ends, the run goes on until the queue and the feedback drain, at most this long.
const DRAIN_MS: i64 = 10 * 60_000;
/// How often the account status of each provider is polled, as `serve` does.
const ACCOUNT_POLL_MS: i64 = 60_000;

/// One message as the simulator follows it. The stream is the simulator's own bookkeeping:
/// nothing of it reaches the detector.
struct Msg {
    stream: usize,
    tenant: usize,
    n: u64,
    recipients: Vec<String>,
    accepted_at: i64,
    attempts: i64,
    /// The provider of the last attempt (what the store's row says), for feedback about it.
    provider: Option<String>,
}

pub(super) struct Run<'a> {
    sc: &'a Scenario,
    clock: Arc<ManualClock>,
    shared: SharedClock,
    start: i64,
    rng: StdRng,
    guard: Guard,
    trips: mpsc::UnboundedReceiver<crate::guard::detect::Trip>,
    to_contain: mpsc::UnboundedSender<crate::guard::detect::Trip>,
    pauses: Pauses,
    dispatch: Dispatch,
    policy: DeliveryPolicy,
    sims: Vec<Arc<SimProvider>>,
    tenant_ids: Vec<String>,
    key_tenant: BTreeMap<String, usize>,
    msgs: Vec<Msg>,
    ready: VecDeque<usize>,
    /// Deferred: (due, accept order) → message.
    later: BTreeMap<(i64, usize), usize>,
    /// Held, by the tag of what holds them, in accept order.
    held: BTreeMap<String, Vec<usize>>,
    /// The admit path's rate state per key (`auth.rs`): when the next message may come, ms.
    next_ms: BTreeMap<String, f64>,
    /// Recipients Postern handed to each provider: the ledger the provider's count is
    /// compared with.
    ledger: BTreeMap<String, u64>,
    pub(super) tally: Tally,
}

impl<'a> Run<'a> {
    pub(super) async fn new(sc: &'a Scenario, seed: u64, store: Store) -> anyhow::Result<Self> {
        let start = sc.scenario.start_ms;
        let clock = ManualClock::new(start);
        let shared: SharedClock = clock.clone();
        let mut recipients = Recipients {
            seed,
            ..Default::default()
        };
        for s in &sc.streams {
            recipients
                .pools
                .entry(s.recipients.pool.clone())
                .or_insert(Behaviour {
                    bounce: s.bounce_rate,
                    complaint: s.complaint_rate,
                    autoreply: s.autoreply_rate,
                });
        }
        let recipients = Arc::new(recipients);
        let sims: Vec<Arc<SimProvider>> = sc
            .providers
            .iter()
            .map(|p| Arc::new(SimProvider::new(p, shared.clone(), recipients.clone())))
            .collect();
        for e in sc
            .events
            .iter()
            .filter(|e| *e.kind.get_ref() == EventKind::ProviderOutage)
        {
            let name = e.provider.as_ref().map(|p| p.get_ref().as_str());
            if let Some(p) = sims.iter().find(|p| Some(p.name()) == name) {
                let mut st = p.state.lock().unwrap_or_else(|e| e.into_inner());
                st.outages
                    .push((start + e.at.0, start + e.until.map_or(e.at.0, |u| u.0)));
            }
        }
        let providers =
            Providers::from_adapters(sims.iter().map(|p| p.clone() as Arc<dyn Provider>));
        let mut tenant_ids = Vec::new();
        for t in &sc.tenants {
            let rec = store.create_tenant(t.name.get_ref(), start).await?;
            if let Some(route) = &t.route {
                let names: Vec<String> = route.iter().map(|p| p.get_ref().clone()).collect();
                store.set_route(&rec.id, &names, start).await?;
            }
            tenant_ids.push(rec.id);
        }
        let routes = Routes::new(
            sc.providers
                .iter()
                .map(|p| p.name.get_ref().clone())
                .collect(),
        );
        routes.reload(&store).await?;
        let key_tenant = sc
            .keys
            .iter()
            .map(|k| {
                let t = sc
                    .tenants
                    .iter()
                    .position(|t| t.name.get_ref() == k.tenant.get_ref())
                    .unwrap_or(0);
                (k.id.get_ref().clone(), t)
            })
            .collect();
        let (guard, trips) = Guard::new(sc.guard.clone().unwrap_or_default(), shared.clone());
        let pauses = Pauses::default();
        let (to_contain, contain_rx) = mpsc::unbounded_channel();
        tokio::spawn(crate::guard::detect::contain(
            contain_rx,
            store,
            pauses.clone(),
            shared.clone(),
            crate::telemetry::Metrics::new(),
        ));
        let dispatch = Dispatch {
            health: Health::new(providers.names(), start),
            providers,
            pauses: pauses.clone(),
            guard: Some(guard.clone()),
            routes,
            limits: Limits::default(),
        };
        let policy = DeliveryPolicy {
            backoff_base_ms: 30_000,
            backoff_max_ms: 3_600_000,
            suppress_hard_bounces: false,
            bounce_domain: None,
        };
        Ok(Self {
            sc,
            tally: Tally::new(sc),
            clock,
            shared,
            start,
            rng: StdRng::seed_from_u64(seed),
            guard,
            trips,
            to_contain,
            pauses,
            dispatch,
            policy,
            sims,
            tenant_ids,
            key_tenant,
            msgs: Vec::new(),
            ready: VecDeque::new(),
            later: BTreeMap::new(),
            held: BTreeMap::new(),
            next_ms: BTreeMap::new(),
            ledger: BTreeMap::new(),
        })
    }

    fn now(&self) -> i64 {
        use crate::clock::Clock;
        self.clock.now_ms()
    }

    pub(super) async fn run(&mut self) -> anyhow::Result<()> {
        let step = self.sc.scenario.step.0;
        let duration = self.sc.scenario.duration.0;
        let mut carry = vec![0.0_f64; self.sc.streams.len()];
        let mut deliver_carry = 0.0_f64;
        let mut fired = vec![false; self.sc.events.len()];
        let mut t = 0;
        loop {
            let traffic = t < duration;
            if !traffic && (t >= duration + DRAIN_MS || self.idle()) {
                break;
            }
            self.events(t, &mut fired).await;
            if traffic {
                self.arrivals(t, step, &mut carry).await?;
            }
            deliver_carry += self.sc.queue.deliver_per_second * step as f64 / 1000.0;
            let budget = deliver_carry.floor();
            deliver_carry -= budget;
            self.deliver(budget as u64).await?;
            self.feedback().await?;
            if t % ACCOUNT_POLL_MS == 0 {
                for p in &self.sims {
                    if let Some(Ok(status)) = p.account_status().await {
                        self.dispatch.health.account(p.name(), self.now(), &status);
                        if let Some(theirs) = status.sent_last_24h {
                            let ours = self.ledger.get(p.name()).copied().unwrap_or(0);
                            self.guard.provider_counter(p.name(), theirs, ours);
                        }
                    }
                }
                self.contain().await?;
            }
            self.clock.advance_ms(step);
            t += step;
        }
        self.finish();
        Ok(())
    }

    fn idle(&self) -> bool {
        self.ready.is_empty()
            && self.later.is_empty()
            && self.sims.iter().all(|p| {
                p.state
                    .lock()
                    .map(|s| s.feedback.is_empty())
                    .unwrap_or(true)
            })
    }

    async fn events(&mut self, t: i64, fired: &mut [bool]) {
        for (i, e) in self.sc.events.iter().enumerate() {
            if fired[i] {
                continue;
            }
            if e.at.0 > t {
                continue;
            }
            fired[i] = true;
            let provider = e.provider.as_ref().map(|p| p.get_ref().as_str());
            let scope = e.scope.as_ref().map(|s| self.scope(s.get_ref()));
            match (e.kind.get_ref(), scope) {
                (EventKind::ProviderSuspend, _) => {
                    if let Some(p) = self.sims.iter().find(|p| Some(p.name()) == provider) {
                        p.suspend();
                    }
                }
                (EventKind::Pause, Some(scope)) => {
                    self.pauses.add_local(Pause {
                        scope,
                        reason: "operator (scenario event)".into(),
                        actor: "operator".into(),
                        created_at: self.now(),
                    });
                }
                (EventKind::Resume, Some(scope)) => {
                    let rest: Vec<Pause> = self
                        .pauses
                        .list()
                        .iter()
                        .filter(|p| p.scope != scope)
                        .cloned()
                        .collect();
                    self.pauses.replace(rest);
                    self.guard.reset(&scope);
                    let now = self.now();
                    for idx in self.held.remove(&scope.tag()).unwrap_or_default() {
                        self.tally
                            .released(self.msgs[idx].stream, now - self.msgs[idx].accepted_at);
                        self.ready.push_back(idx);
                    }
                }
                _ => {}
            }
        }
    }

    fn scope(&self, s: &str) -> PauseScope {
        match s.split_once(':') {
            Some(("tenant", name)) => {
                let i = self
                    .sc
                    .tenants
                    .iter()
                    .position(|t| t.name.get_ref() == name)
                    .unwrap_or(0);
                PauseScope::Tenant(self.tenant_ids[i].clone())
            }
            Some(("key", k)) => PauseScope::Key(k.to_owned()),
            _ => PauseScope::All,
        }
    }

    async fn arrivals(&mut self, t: i64, step: i64, carry: &mut [f64]) -> anyhow::Result<()> {
        // How many each stream sends this step; then interleaved, so no stream always goes first.
        let mut counts = Vec::with_capacity(self.sc.streams.len());
        for (i, s) in self.sc.streams.iter().enumerate() {
            let end = s.end.map_or(self.sc.scenario.duration.0, |e| e.0);
            if t < s.start.0 || t >= end {
                counts.push(0);
                continue;
            }
            carry[i] += s.rate.at(t - s.start.0, end - s.start.0) * step as f64 / 1000.0;
            let n = carry[i].floor();
            carry[i] -= n;
            counts.push(n as u64);
        }
        let total: u64 = counts.iter().sum();
        let mut left = counts.clone();
        for _ in 0..total {
            let mut pick = self.rng.gen_range(0..left.iter().sum::<u64>());
            let i = left.iter().position(|&c| {
                if pick < c {
                    true
                } else {
                    pick -= c;
                    false
                }
            });
            let Some(i) = i else { break };
            left[i] -= 1;
            self.send(i).await?;
        }
        Ok(())
    }

    /// One message of stream `i`: accepted as the acceptor does (held if a pause covers it,
    /// then observed by the detector), or sent around Postern for a stream outside it.
    async fn send(&mut self, i: usize) -> anyhow::Result<()> {
        let s = &self.sc.streams[i];
        let n = self.tally.next_n(i);
        let rcpts: Vec<String> = (0..s.recipients.per_message)
            .map(|_| {
                let u = self.rng.gen_range(0..s.recipients.size);
                format!(
                    "u{u}@d{}.{}.test",
                    u % s.recipients.domains,
                    s.recipients.pool
                )
            })
            .collect();
        let now = self.now();
        self.tally.attack_started(s.kind, now - self.start);
        if s.key.get_ref() == "none" {
            let name = s
                .provider
                .as_ref()
                .map(|p| p.get_ref().as_str())
                .unwrap_or_default();
            if let Some(p) = self.sims.iter().find(|p| p.name() == name) {
                p.send_outside(&rcpts);
            }
            self.tally.outside(i);
            return Ok(());
        }
        let key = s.key.get_ref().clone();
        // The key's check, as `KeyAuthenticator::authenticate_from` makes it.
        let ip = s.source_ip.parse::<std::net::IpAddr>().ok();
        self.guard.key_used(&key, ip, None);
        self.contain().await?;
        if !self.admit(&key, ip, now) {
            self.tally.throttled(i);
            return Ok(());
        }
        let tenant = self.key_tenant.get(&key).copied().unwrap_or(0);
        let tenant_id = self.tenant_ids[tenant].clone();
        let idx = self.msgs.len();
        self.msgs.push(Msg {
            stream: i,
            tenant,
            n,
            recipients: rcpts,
            accepted_at: now,
            attempts: 0,
            provider: None,
        });
        self.tally.accepted(i);
        match self.pauses.holding(&tenant_id, Some(&key), Channel::Email) {
            Some(p) => self.hold(idx, p.scope.tag(), now),
            None => self.ready.push_back(idx),
        }
        let (subject, raw, message_id_header) = self.render(idx);
        let m = &self.msgs[idx];
        let msg = NewMessage {
            id: format!("m{idx}"),
            tenant_id,
            key_id: Some(key),
            source: "api",
            mail_from: s.content.from.clone(),
            recipients: m.recipients.clone(),
            subject: Some(subject),
            message_id_header,
            raw,
            created_at: now,
            expires_at: now + self.sc.queue.expiry.0,
            idempotency: None,
            held: None,
            tags: Vec::new(),
        };
        self.guard.accepted_message(&msg);
        self.contain().await
    }

    /// The rate the admit path enforces on a key: only the guard's throttle here (scenario
    /// keys carry no rate or daily limit), with the same interval and burst as `auth.rs`.
    /// `false` is the 429 the API answers.
    fn admit(&mut self, key: &str, ip: Option<std::net::IpAddr>, now: i64) -> bool {
        let Some(rate) = self.guard.throttle_of(key, ip) else {
            return true;
        };
        let interval = 1000.0 / rate;
        let burst = interval * (rate.max(1.0) - 1.0);
        let now_f = now as f64;
        let next = self.next_ms.entry(key.to_owned()).or_insert(0.0);
        let start = next.max(now_f - burst);
        if start > now_f {
            return false;
        }
        *next = start + interval;
        true
    }

    /// The message as its stream's content template makes it: subject, RFC 5322 text and
    /// Message-ID.
    fn render(&self, idx: usize) -> (String, Vec<u8>, String) {
        let m = &self.msgs[idx];
        let s = &self.sc.streams[m.stream];
        let first = m.recipients.first().cloned().unwrap_or_default();
        let fill = |t: &str| t.replace("{n}", &m.n.to_string()).replace("{rcpt}", &first);
        let subject = fill(&s.content.subject);
        let id = format!("<m{idx}@sim.test>");
        let raw = format!(
            "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nMessage-ID: {id}\r\n\r\n{}\r\n",
            s.content.from,
            m.recipients.join(", "),
            fill(&s.content.body)
        );
        (subject, raw.into_bytes(), id)
    }

    fn hold(&mut self, idx: usize, tag: String, now: i64) {
        let m = &self.msgs[idx];
        self.tally.held(m.stream, now - self.start, &tag);
        self.held.entry(tag).or_default().push(idx);
    }

    /// Hands each trip to the real containment task and waits (in scheduler turns, not time)
    /// until its pause is in force.
    async fn contain(&mut self) -> anyhow::Result<()> {
        while let Ok(trip) = self.trips.try_recv() {
            let at = self.now() - self.start;
            let target = self.name_of(&trip.scope);
            self.tally.alert(AlertSeen {
                at_secs: at as f64 / 1000.0,
                signal: trip.signal.to_owned(),
                scope: trip.scope.kind().to_owned(),
                target,
                action: if trip.hold { "hold" } else { "alert" }.to_owned(),
                evidence: trip.evidence.clone(),
            });
            let (hold, scope) = (trip.hold, trip.scope.clone());
            if self.to_contain.send(trip).is_err() {
                continue;
            }
            // The task runs elsewhere and writes each pause to the store before taking the
            // next trip, so this waits (in real time, never in virtual time) as long as needed.
            let mut turns = 0u32;
            while hold && !self.pauses.list().iter().any(|p| p.scope == scope) {
                turns += 1;
                if turns > 30_000 {
                    anyhow::bail!("the containment task did not apply a trip within 30 s");
                }
                if turns < 100 {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        }
        Ok(())
    }

    fn name_of(&self, scope: &PauseScope) -> String {
        match scope {
            PauseScope::Tenant(id) => self
                .tenant_ids
                .iter()
                .position(|t| t == id)
                .map_or_else(|| id.clone(), |i| self.sc.tenants[i].name.get_ref().clone()),
            s => s.target().to_owned(),
        }
    }

    fn finish(&mut self) {
        let now = self.now();
        for (tag, list) in std::mem::take(&mut self.held) {
            for idx in list {
                let m = &self.msgs[idx];
                self.tally.still_held(m.stream, now - m.accepted_at, &tag);
            }
        }
        let queued: Vec<usize> = self
            .ready
            .iter()
            .copied()
            .chain(self.later.values().copied())
            .collect();
        for idx in queued {
            self.tally.still_queued(self.msgs[idx].stream);
        }
        for p in &self.sims {
            let st = p.state.lock().unwrap_or_else(|e| e.into_inner());
            self.tally.provider(
                p.name(),
                st.sent_total,
                st.calls,
                st.peak_bounce_rate,
                st.peak_complaint_rate,
                st.suspended_at.map(|s| s - self.start),
            );
        }
    }
}
