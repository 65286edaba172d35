//! Background tasks of `serve` that watch something and apply it: TLS certificates on SIGHUP,
//! pauses, tenant routes, provider health, and the account probes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::guard::{Guard, Pauses};
use crate::queue::Dispatch;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tls::CertResolver;

/// Reads the TLS certificates again on SIGHUP (HTTPS and STARTTLS), without a restart; a
/// pair that does not load leaves the one in use.
pub(super) fn spawn_cert_reloader(
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
pub(super) fn spawn_pause_watcher(
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
pub(super) fn warn_about_unknown_providers(dispatch: &Dispatch) {
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
pub(super) fn spawn_route_reloader(
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
pub(super) fn spawn_health_watcher(
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
pub(super) fn spawn_prober(
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
