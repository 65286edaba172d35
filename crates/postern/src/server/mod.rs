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
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tls::CertResolver;

mod maintenance;
mod watchers;

use watchers::{
    spawn_cert_reloader, spawn_health_watcher, spawn_pause_watcher, spawn_prober,
    spawn_route_reloader, warn_about_unknown_providers,
};

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
        .recover_claims(Some(&node), clock.now_ms(), store.backend() == "sqlite")
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

    // The SMTP sessions' context: submission and the bounce listener differ only in TLS,
    // plaintext AUTH and whether they take bounces.
    let session = |allow_plaintext_auth, tls, inbound| {
        Arc::new(SessionContext {
            acceptor: acceptor.clone(),
            keys: keys.clone(),
            clock: clock.clone(),
            hostname: cfg.smtp.hostname.clone(),
            max_message_bytes: cfg.smtp.max_message_bytes,
            max_recipients: cfg.smtp.max_recipients,
            retry_window_ms,
            allow_plaintext_auth,
            idle_timeout: Duration::from_secs(cfg.smtp.idle_timeout_secs),
            tls,
            inbound,
        })
    };
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
        let ctx = session(cfg.smtp.allow_plaintext_auth, tls, None);
        let (task, addr) = serve_smtp(cfg.smtp.listen, "SMTP", ctx, stop_rx.clone(), drain).await?;
        (Some(task), Some(addr))
    } else {
        (None, None)
    };
    let (bounces, bounce_addr) = match (&cfg.feedback.listen, &cfg.feedback.bounce_domain) {
        (Some(listen), Some(domain)) => {
            let inbound = crate::smtp::Inbound {
                bounce_domain: domain.clone(),
                store: store.clone(),
                suppression: cfg.suppression.clone(),
                metrics: metrics.clone(),
                guard: guard.clone(),
            };
            let ctx = session(false, None, Some(inbound));
            let (task, addr) = serve_smtp(*listen, "bounce", ctx, stop_rx.clone(), drain).await?;
            (Some(task), Some(addr))
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
    let maintenance = maintenance::spawn(store.clone(), stop_rx.clone(), usage_keys);
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

/// Binds an SMTP listener (submission or bounces, named by `what` in the error) and serves
/// it until `stop`; returns the task and the address it is bound to.
async fn serve_smtp(
    listen: SocketAddr,
    what: &str,
    ctx: Arc<SessionContext>,
    stop: watch::Receiver<bool>,
    drain: Duration,
) -> anyhow::Result<(JoinHandle<()>, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the {what} listener to {listen}"))?;
    let addr = l.local_addr()?;
    Ok((tokio::spawn(crate::smtp::serve(l, ctx, stop, drain)), addr))
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
}
