//! `postern serve`: wires the store, acceptor, workers, HTTP and SMTP together, and shuts them
//! down in order so that nothing accepted is left unanswered or unwritten.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::auth::KeyAuthenticator;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::guard::{Guard, Pauses};
use crate::http::{AppState, router};
use crate::providers::Providers;
use crate::queue::{Acceptor, DeliveryPolicy, Dispatch, Worker};
use crate::smtp::SessionContext;
use crate::store::{Checkpointed, Store};
use crate::telemetry::Metrics;
use crate::tls::CertResolver;

/// How often SQLite's write-ahead log is copied into the database ([`Store::checkpoint`]).
/// Each checkpoint ends with a flush of the database file, and the accepts' flushes of the
/// log wait behind it on the same disk, while its copying takes a core from them: the less
/// each one has to copy and flush, the less an accept waits behind it. A checkpoint every
/// 500 ms at 12,000 accepts/s had about 10 MB to flush and held answers up by ~10 ms each
/// time (p99 17-19 ms in the open loop of `bench/accept.sh`); every 100 ms, a fifth of that
/// (p99 6.4-8.6 ms at 13,800/s, one run 113 ms); every 25 ms, with the restart below only
/// every 20th, p99 4.2-5.3 ms at 13,800/s. The ticks are an interval: the work of one does
/// not push the next back.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(25);
/// While the log is idle (nothing written since the last checkpoint, which copied every
/// frame), only every this many ticks (200 ms) checks it again; the first tick after a write
/// of this process brings back the 25 ms cadence. An idle checkpoint copies nothing, but its
/// round trips to the pool's connection thread and the flush of the database file still cost
/// ~0.3-0.5 ms of CPU: an idle accept-only node spent 22-23.5 ms of CPU a second on 40 of
/// them, and 9.5-12 ms with the back-off.
const IDLE_CHECKPOINT_EVERY_TICKS: u64 = 8;
/// The checkpoint restarts the log (its last round holds the write lock, 1-2.5 ms here, during
/// which no accept commits) every this many ticks (500 ms); the ticks between copy and flush
/// without the lock. With a restart at every 100 ms tick, that stall fell on 1-2% of the
/// accepts, where the p99 is read. Between two restarts the log grows by what was committed
/// meanwhile (under 100 MB at full load here) and is then reused from its start.
const RESTART_EVERY_TICKS: u64 = 20;
/// How often API key use (`last_used_at`) is written, from the same loop.
const KEY_USAGE_EVERY: Duration = Duration::from_secs(2);

/// Whether the write-ahead log has been idle, for the maintenance loop's back-off
/// ([`IDLE_CHECKPOINT_EVERY_TICKS`]).
#[derive(Debug, Default)]
struct LogWatch {
    /// The last checkpoint's finding, and [`Store::writes`] just before it began.
    last: Option<(Checkpointed, u64)>,
    idle: bool,
}

impl LogWatch {
    /// Whether tick number `tick` should checkpoint, with `writes` the store's count now: any
    /// write of this process since the last checkpoint ends the back-off at once.
    fn due(&self, tick: u64, writes: u64) -> bool {
        !self.idle
            || tick.is_multiple_of(IDLE_CHECKPOINT_EVERY_TICKS)
            || self.last.is_none_or(|(_, w)| w != writes)
    }

    /// Records a checkpoint's finding (None: it failed), with `writes` read before it began.
    /// Idle means: no writer of this process took the write lock since the checkpoint before,
    /// and the log holds as many frames as then, every one copied. The frame count is what
    /// catches another process writing (a CLI command); that one's commits can go unseen
    /// only if the log restarted and got exactly as many frames as it held, and then the
    /// checkpoint comes at most 175 ms late.
    fn saw(&mut self, found: Option<Checkpointed>, writes: u64) {
        self.idle = match (self.last, found) {
            (Some((before, written)), Some(now)) => {
                written == writes && now.left == 0 && now.frames == before.frames
            }
            _ => false,
        };
        self.last = found.map(|f| (f, writes));
    }
}

pub struct Running {
    pub http_addr: SocketAddr,
    pub smtp_addr: Option<SocketAddr>,
    /// The bounce listener (`[feedback] listen`), when configured.
    pub bounce_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    http: JoinHandle<()>,
    smtp: Option<JoinHandle<()>>,
    bounces: Option<JoinHandle<()>>,
    worker: JoinHandle<()>,
    writer: JoinHandle<()>,
    maintenance: JoinHandle<()>,
    supervisors: Vec<JoinHandle<()>>,
    store: Store,
}

/// The id this node claims messages under; kept in `data_dir` so that after a restart the
/// node takes back its own unfinished claims at once.
fn node_id(cfg: &Config) -> anyhow::Result<String> {
    let path = cfg.data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => {
            std::fs::create_dir_all(&cfg.data_dir)?;
            let id = format!("node-{}", uuid::Uuid::new_v4().simple());
            std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
            Ok(id)
        }
    }
}

pub async fn start(cfg: &Config, clock: SharedClock) -> anyhow::Result<Running> {
    cfg.check_http_exposure()?;
    let url = cfg.database_url();
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening the database ({})", redact_url(&url)))?;
    // Provider settings written as "secret:NAME" come from the encrypted secret store.
    let cfg = &crate::secrets::resolve_config(cfg, &store).await?;
    let node = node_id(cfg)?;
    let recovered = store
        .recover_claims(&node, clock.now_ms(), store.backend() == "sqlite")
        .await?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "took back claims left by an earlier run; they will be retried (in doubt)"
        );
    }
    let providers = Providers::from_config(cfg)?;
    let pauses = Pauses::default();
    pauses.reload(&store).await.context("reading pauses")?;
    for p in pauses.list().iter() {
        tracing::warn!(scope = p.scope.kind(), target = p.scope.target(), by = %p.actor, reason = %p.reason, "paused (postern resume lifts it)");
    }
    let (guard, trips) = Guard::new(cfg.guard.clone(), clock.clone());
    let guard = cfg.guard.enabled.then_some(guard);
    if let Some(g) = &guard {
        crate::guard::detect::rebuild_memory(g, &store, clock.now_ms()).await;
    }
    let dispatch = Dispatch::from_config(
        cfg,
        providers,
        pauses.clone(),
        guard.clone(),
        clock.now_ms(),
    );
    dispatch
        .routes
        .reload(&store)
        .await
        .context("reading tenant routes")?;
    warn_about_unknown_providers(&dispatch);
    for m in &dispatch.routes.table().moves {
        store
            .pull_forward(&m.from, m.tenant_id.as_deref(), clock.now_ms())
            .await?;
    }
    let metrics = Metrics::new();
    let wake = Arc::new(Notify::new());
    store.set_flush_pacing(Duration::from_micros(cfg.queue.flush_pacing_us));
    let (acceptor, writer) = Acceptor::start(
        store.clone(),
        wake.clone(),
        cfg.queue.commit_batch,
        metrics.clone(),
        pauses.clone(),
        guard.clone(),
    )
    .context("starting the group-commit writer")?;
    let keys = KeyAuthenticator::new(store.clone(), clock.clone()).with_guard(guard.clone());
    let usage_keys = keys.clone();
    let retry_window_ms = (cfg.queue.retry_window_secs * 1000) as i64;
    let (stop, stop_rx) = watch::channel(false);
    let drain = Duration::from_secs(cfg.queue.drain_secs);

    let state = Arc::new(AppState {
        store: store.clone(),
        acceptor: acceptor.clone(),
        keys: keys.clone(),
        clock: clock.clone(),
        metrics: metrics.clone(),
        hostname: cfg.smtp.hostname.clone(),
        max_recipients: cfg.smtp.max_recipients,
        retry_window_ms,
        delivering: cfg.queue.deliver,
        suppression: cfg.suppression.clone(),
        guard: guard.clone(),
        sns: crate::feedback::sns::SnsVerifier::new(cfg.feedback.ses.clone())?,
        leaks: crate::leaks::LeakVerifier::from_config(&cfg.leaks)?,
        admin: crate::http::admin::AdminContext {
            logins: crate::admin::Logins::new(
                store.clone(),
                clock.clone(),
                cfg.admin.clone(),
                crate::admin::login::keyring(&cfg.secrets)
                    .context("loading the KEK that seals admin TOTP secrets")?,
            ),
            config: Arc::new(cfg.clone()),
            health: dispatch.health.clone(),
        },
    });
    let mut certs = Vec::new();
    let https = match (&cfg.http.tls_cert, &cfg.http.tls_key) {
        (Some(cert), Some(key)) => {
            let r = CertResolver::load(cert, key).context("[http] tls_cert / tls_key")?;
            certs.push(r.clone());
            Some(tokio_rustls::TlsAcceptor::from(
                r.server_config(&[b"http/1.1"])?,
            ))
        }
        _ => None,
    };
    let http_listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("binding the HTTP listener to {}", cfg.http.listen))?;
    let http_addr = http_listener.local_addr()?;
    let app =
        router(state, cfg.http.max_body_bytes).into_make_service_with_connect_info::<SocketAddr>();
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(async move {
        let shutdown = async move {
            let _ = http_stop.changed().await;
        };
        let served = match https {
            Some(acceptor) => {
                use axum::serve::ListenerExt;
                match crate::http::tls::TlsListener::new(http_listener, acceptor) {
                    Ok(l) => {
                        axum::serve(l.tap_io(|_| ()), app)
                            .with_graceful_shutdown(shutdown)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            None => {
                axum::serve(http_listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    let (smtp, smtp_addr) = if cfg.smtp.enabled {
        let (cert, key) = cfg.tls_paths();
        let tls = if cert.exists() && key.exists() {
            let r = CertResolver::load(&cert, &key).context("[smtp] tls_cert / tls_key")?;
            certs.push(r.clone());
            Some(tokio_rustls::TlsAcceptor::from(r.server_config(&[])?))
        } else {
            tracing::warn!(cert = %cert.display(), "no TLS certificate; SMTP submission runs without STARTTLS (run `postern init`)");
            None
        };
        let ctx = Arc::new(SessionContext {
            acceptor: acceptor.clone(),
            keys: keys.clone(),
            clock: clock.clone(),
            hostname: cfg.smtp.hostname.clone(),
            max_message_bytes: cfg.smtp.max_message_bytes,
            max_recipients: cfg.smtp.max_recipients,
            retry_window_ms,
            allow_plaintext_auth: cfg.smtp.allow_plaintext_auth,
            tls,
            inbound: None,
        });
        let l = tokio::net::TcpListener::bind(cfg.smtp.listen)
            .await
            .with_context(|| format!("binding the SMTP listener to {}", cfg.smtp.listen))?;
        let addr = l.local_addr()?;
        (
            Some(tokio::spawn(crate::smtp::serve(
                l,
                ctx,
                stop_rx.clone(),
                drain,
            ))),
            Some(addr),
        )
    } else {
        (None, None)
    };
    let (bounces, bounce_addr) = match (&cfg.feedback.listen, &cfg.feedback.bounce_domain) {
        (Some(listen), Some(domain)) => {
            let ctx = Arc::new(SessionContext {
                acceptor: acceptor.clone(),
                keys: keys.clone(),
                clock: clock.clone(),
                hostname: cfg.smtp.hostname.clone(),
                max_message_bytes: cfg.smtp.max_message_bytes,
                max_recipients: cfg.smtp.max_recipients,
                retry_window_ms,
                allow_plaintext_auth: false,
                tls: None,
                inbound: Some(crate::smtp::Inbound {
                    bounce_domain: domain.clone(),
                    store: store.clone(),
                    suppression: cfg.suppression.clone(),
                    metrics: metrics.clone(),
                    guard: guard.clone(),
                }),
            });
            let l = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding the bounce listener to {listen}"))?;
            let addr = l.local_addr()?;
            (
                Some(tokio::spawn(crate::smtp::serve(
                    l,
                    ctx,
                    stop_rx.clone(),
                    drain,
                ))),
                Some(addr),
            )
        }
        _ => (None, None),
    };
    drop(acceptor);

    let mut supervisors = vec![
        spawn_cert_reloader(certs, stop_rx.clone()),
        spawn_pause_watcher(
            pauses.clone(),
            guard.clone(),
            store.clone(),
            clock.clone(),
            stop_rx.clone(),
        ),
        crate::audit::spawn_head_writer(
            store.clone(),
            cfg.audit.head_path(&cfg.data_dir),
            Duration::from_secs(cfg.audit.head_interval_secs.max(1)),
            clock.clone(),
            stop_rx.clone(),
        ),
        tokio::spawn(crate::guard::detect::contain(
            trips,
            store.clone(),
            pauses,
            clock.clone(),
            metrics.clone(),
        )),
    ];
    if !cfg.alerts.channels.is_empty() {
        // Operators hear of guard trips on paths that avoid the provider under suspicion.
        let notifier = crate::alerts::Notifier::new(
            cfg.alerts.clone(),
            store.clone(),
            dispatch.providers.clone(),
            Some(dispatch.health.clone()),
            Some(dispatch.routes.clone()),
            clock.clone(),
        )?;
        supervisors.push(tokio::spawn(crate::alerts::run(notifier, stop_rx.clone())));
    } else if cfg.guard.enabled {
        tracing::warn!(
            "no [[alerts.channels]] configured: the guard's actions are recorded (`postern guard alerts`, the audit log) but no operator is told of them"
        );
    }
    if cfg.queue.deliver {
        supervisors.extend([
            spawn_route_reloader(
                dispatch.clone(),
                store.clone(),
                clock.clone(),
                stop_rx.clone(),
            ),
            spawn_health_watcher(
                dispatch.clone(),
                store.clone(),
                clock.clone(),
                metrics.clone(),
                stop_rx.clone(),
                Arc::new(cfg.clone()),
            ),
            spawn_prober(
                dispatch.clone(),
                store.clone(),
                clock.clone(),
                Duration::from_secs(cfg.queue.probe_interval_secs.max(1)),
                stop_rx.clone(),
            ),
        ]);
    }
    let worker = Worker {
        store: store.clone(),
        dispatch,
        policy: DeliveryPolicy::from_config(cfg),
        clock,
        node,
        concurrency: cfg.queue.concurrency,
        lease_ms: (cfg.queue.lease_secs * 1000) as i64,
        wake,
        metrics,
    };
    let maintenance = {
        let (store, mut stop) = (store.clone(), stop_rx.clone());
        let keys = usage_keys;
        tokio::spawn(async move {
            let mut ticks = 0_u64;
            let mut every = tokio::time::interval(CHECKPOINT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut usage_written = tokio::time::Instant::now();
            let mut log = LogWatch::default();
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stop.changed() => break,
                }
                let writes = store.writes();
                if log.due(ticks, writes) {
                    let found = store
                        .checkpoint(ticks.is_multiple_of(RESTART_EVERY_TICKS))
                        .await;
                    if let Err(e) = &found {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                    log.saw(found.ok(), writes);
                }
                ticks += 1;
                if usage_written.elapsed() >= KEY_USAGE_EVERY {
                    usage_written = tokio::time::Instant::now();
                    if let Err(e) = keys.flush_usage().await {
                        tracing::warn!(error = %e, "recording API key use failed");
                    }
                }
            }
        })
    };
    let worker = if cfg.queue.deliver {
        tokio::spawn(worker.run(stop_rx, drain))
    } else {
        tracing::info!("delivery is off on this node ([queue] deliver = false); accepting only");
        tokio::spawn(async {})
    };
    Ok(Running {
        http_addr,
        smtp_addr,
        bounce_addr,
        stop,
        http,
        smtp,
        bounces,
        worker,
        writer,
        maintenance,
        supervisors,
        store,
    })
}

/// Reads the TLS certificates again on SIGHUP (HTTPS and STARTTLS), without a restart; a
/// pair that does not load leaves the one in use.
fn spawn_cert_reloader(
    certs: Vec<Arc<CertResolver>>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    // Installed before serving starts, so an early SIGHUP reloads rather than kills.
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let Ok(mut hup) = hup else {
                tracing::warn!("cannot listen for SIGHUP; certificates reload only on restart");
                return;
            };
            loop {
                tokio::select! {
                    _ = hup.recv() => {}
                    _ = stop.changed() => return,
                }
                for c in &certs {
                    match c.reload() {
                        Ok(()) => {
                            tracing::info!(cert = %c.cert_path().display(), "TLS certificate reloaded")
                        }
                        Err(e) => {
                            tracing::error!(cert = %c.cert_path().display(), error = format!("{e:#}"), "TLS certificate not reloaded; the previous one stays in use")
                        }
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (certs, stop.changed().await);
        }
    })
}

/// Keeps this node's pauses current: every 50 ms from the store and, on PostgreSQL, at once
/// when another process announces a change. A slow or failing store leaves the last known
/// pauses in force.
fn spawn_pause_watcher(
    pauses: Pauses,
    guard: Option<Guard>,
    store: Store,
    clock: SharedClock,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut listener = match &store {
            Store::Postgres(pool) => match sqlx::postgres::PgListener::connect_with(pool).await {
                Ok(mut l) => match l.listen(crate::guard::pause::CHANNEL).await {
                    Ok(()) => Some(l),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN for pauses failed; polling only");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN for pauses failed; polling only");
                    None
                }
            },
            Store::Sqlite(_) => None,
        };
        let mut ticks = 0_u64;
        loop {
            let notified = async {
                match listener.as_mut() {
                    Some(l) => {
                        let _ = l.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(crate::guard::pause::RELOAD_EVERY) => {}
                _ = notified => {}
                _ = stop.changed() => break,
            }
            ticks += 1;
            if ticks.is_multiple_of(20) {
                match store.release_orphaned_holds(clock.now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        released = n,
                        "released messages held by a pause that was lifted"
                    ),
                    Err(e) => tracing::warn!(error = %e, "sweeping lifted holds failed"),
                }
            }
            let before = pauses.list();
            match pauses.reload(&store).await {
                Ok(true) => {
                    // A lifted guard pause lets its scope trip again.
                    let after = pauses.list();
                    if let Some(g) = &guard {
                        for p in before
                            .iter()
                            .filter(|p| !after.iter().any(|q| q.scope == p.scope))
                        {
                            g.reset(&p.scope);
                        }
                    }
                    let now: Vec<String> = pauses.list().iter().map(|p| p.scope.tag()).collect();
                    tracing::warn!(pauses = ?now, "pauses changed");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading pauses failed; keeping the last ones")
                }
            }
        }
    })
}

/// Routes stored by an earlier configuration may name providers that are gone.
fn warn_about_unknown_providers(dispatch: &Dispatch) {
    let table = dispatch.routes.table();
    let names = table
        .tenants
        .values()
        .flatten()
        .chain(table.moves.iter().map(|m| &m.to));
    for n in names {
        if dispatch.providers.get(n).is_none() {
            tracing::warn!(provider = %n, "a stored route or move names a provider that is not configured; it is skipped");
        }
    }
}

/// Picks up `route set` / `route move` made from the CLI (or another node) every second, and
/// pulls forward the deferred messages of a provider traffic was just moved away from.
fn spawn_route_reloader(
    dispatch: Dispatch,
    store: Store,
    clock: SharedClock,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => break,
            }
            match dispatch.routes.reload(&store).await {
                Ok(moves) => {
                    for m in moves {
                        tracing::info!(from = %m.from, to = %m.to, tenant = ?m.tenant_id, "route move in force");
                        let now = clock.now_ms();
                        if let Err(e) = store
                            .pull_forward(&m.from, m.tenant_id.as_deref(), now)
                            .await
                        {
                            tracing::warn!(error = %e, "pulling deferred messages forward failed");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reloading routes failed; keeping the last ones")
                }
            }
        }
    })
}

/// Acts on provider health changes: metrics, and when a provider closes, its deferred
/// messages become due at once so they go to the next provider of their route.
fn spawn_health_watcher(
    dispatch: Dispatch,
    store: Store,
    clock: SharedClock,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
    cfg: Arc<Config>,
) -> JoinHandle<()> {
    use crate::providers::health::HealthState;
    let views = dispatch.health.views();
    for v in &views {
        metrics.set_provider_health(&v.provider, v.state);
    }
    let mut changes = dispatch.health.subscribe();
    tokio::spawn(async move {
        // The status page and `broadcast` read health from the store.
        if let Err(e) = crate::status::record_all_health(&store, &cfg, &views, clock.now_ms()).await
        {
            tracing::warn!(error = %e, "recording provider health failed");
        }
        loop {
            let t = tokio::select! {
                t = changes.recv() => t,
                _ = stop.changed() => break,
            };
            let t = match t {
                Ok(t) => t,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            metrics.set_provider_health(&t.provider, t.to);
            metrics.provider_state_changed(&t.provider, t.to);
            if let Err(e) = crate::status::record_health(
                &store,
                &cfg,
                &t.provider,
                t.to,
                t.at,
                &t.reason,
                clock.now_ms(),
            )
            .await
            {
                tracing::warn!(error = %e, "recording provider health failed");
            }
            if matches!(t.to, HealthState::Down | HealthState::Suspended)
                && let Err(e) = store.pull_forward(&t.provider, None, clock.now_ms()).await
            {
                tracing::warn!(error = %e, "pulling deferred messages forward failed");
            }
        }
    })
}

/// Probes every provider and asks for its account status, at start and then every
/// `interval`. A suspended provider recovers only through this path.
fn spawn_prober(
    dispatch: Dispatch,
    store: Store,
    clock: SharedClock,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for name in dispatch.providers.names() {
                let Some(p) = dispatch.providers.get(&name) else {
                    continue;
                };
                match p.account_status().await {
                    Some(Ok(status)) => {
                        dispatch.health.account(&name, clock.now_ms(), &status);
                        if let (Some(g), Some(theirs)) = (&dispatch.guard, status.sent_last_24h) {
                            crate::guard::detect::check_ledger(
                                g,
                                &store,
                                &name,
                                theirs,
                                clock.now_ms(),
                            )
                            .await;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(provider = %name, error = %e, "reading the account status failed")
                    }
                    None => {}
                }
                match p.probe().await {
                    Ok(()) => dispatch.health.probe(&name, clock.now_ms(), true),
                    Err(e) => {
                        tracing::warn!(provider = %name, error = %e, "provider probe failed");
                        dispatch.health.probe(&name, clock.now_ms(), false);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => break,
            }
        }
    })
}

impl Running {
    /// Stops listening, answers what is in flight, finishes deliveries under way and writes
    /// their outcomes.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.http.await;
        if let Some(s) = self.smtp {
            let _ = s.await;
        }
        if let Some(b) = self.bounces {
            let _ = b.await;
        }
        // Every acceptor handle is gone with the listeners: the writer commits what it holds
        // and ends.
        let _ = self.writer.await;
        let _ = self.worker.await;
        let _ = self.maintenance.await;
        for s in self.supervisors {
            // A probe may be waiting on a slow provider; it has nothing to finish.
            s.abort();
            let _ = s.await;
        }
        let _ = self.store.checkpoint(true).await;
        self.store.close().await;
    }
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Waits for SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    /// The back-off follows the real log: a checkpoint after a write keeps the 25 ms cadence,
    /// the next one with nothing written backs off, and a write brings it back at the next
    /// tick.
    #[tokio::test]
    async fn checkpoints_back_off_while_nothing_is_written() {
        use super::{IDLE_CHECKPOINT_EVERY_TICKS, LogWatch};
        use crate::store::Checkpointed;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = crate::store::Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let mut log = LogWatch::default();
        let skipped = |log: &LogWatch, writes: u64| {
            (1..IDLE_CHECKPOINT_EVERY_TICKS).all(|t| !log.due(t, writes))
        };
        store.create_tenant("acme", 1).await.unwrap();
        for _ in 0..2 {
            let w = store.writes();
            log.saw(store.checkpoint(false).await.ok(), w);
        }
        assert!(log.idle, "nothing was written between the two checkpoints");
        let w = store.writes();
        assert!(log.due(0, w) && log.due(IDLE_CHECKPOINT_EVERY_TICKS, w));
        assert!(skipped(&log, w));

        // A write of this process ends the back-off at the next tick.
        store.create_tenant("globex", 2).await.unwrap();
        assert!(store.writes() > w);
        assert!((1..IDLE_CHECKPOINT_EVERY_TICKS).all(|t| log.due(t, store.writes())));
        let w = store.writes();
        log.saw(store.checkpoint(false).await.ok(), w);
        assert!(!log.idle, "the new tenant was written since");
        assert!((0..IDLE_CHECKPOINT_EVERY_TICKS).all(|t| log.due(t, w)));

        // The restart's own hold of the write lock is no write: idle again after it.
        log.saw(store.checkpoint(true).await.ok(), w);
        log.saw(store.checkpoint(false).await.ok(), store.writes());
        assert!(log.idle);

        // Another process writing the same file: only the log's frames tell.
        let frames_before = log.last.unwrap().0.frames;
        let other = crate::store::Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        // Two commits: after a restart, one commit of the same pages as the log held before
        // would leave the count where it was (the case `saw` documents).
        other.create_tenant("initech", 3).await.unwrap();
        other.create_tenant("umbrella", 4).await.unwrap();
        let w = store.writes();
        let found = store.checkpoint(false).await.unwrap();
        assert_ne!(
            found.frames, frames_before,
            "the other process added frames"
        );
        log.saw(Some(found), w);
        assert!(!log.idle, "the other process's write was seen in the log");

        // Frames a reader held back, another checkpointer, a failed checkpoint: never idle.
        let (copied, _) = log.last.unwrap();
        for held in [
            Checkpointed { left: 3, ..copied },
            Checkpointed { left: -1, ..copied },
        ] {
            log.saw(Some(copied), w);
            log.saw(Some(copied), w);
            assert!(log.idle);
            log.saw(Some(held), w);
            assert!(!log.idle, "{held:?}");
        }
        log.saw(None, w);
        assert!(!log.idle);
        other.close().await;
    }
}
