//! Containment: acts on each of the detector's decisions and records it as an alert with its
//! evidence. A hold is a pause by the guard (the scope's mail is accepted as `held` and kept,
//! queued mail is held before its call: never dropped); a provider out of rotation is a
//! provider pause (its traffic goes to the next provider of each route); a revocation also
//! holds what the key already queued. A throttle already took effect in the detector.

use tokio::sync::mpsc;

use super::detect::Trip;
use super::policy::Action;
use super::{Pause, PauseScope, Pauses};
use crate::clock::SharedClock;
use crate::store::{Alert, Store};
use crate::telemetry::Metrics;

/// Contains each trip and records its alert. Runs until the detector is dropped.
pub async fn contain(
    mut trips: mpsc::UnboundedReceiver<Trip>,
    store: Store,
    pauses: Pauses,
    clock: SharedClock,
    metrics: Metrics,
) {
    while let Some(t) = trips.recv().await {
        let now = clock.now_ms();
        let action = t.action.as_str();
        tracing::error!(scope = t.scope.kind(), target = t.scope.target(), signal = t.signal, evidence = %t.evidence, action, "guard tripped");
        metrics.guard_action(t.signal, action);
        if let (Action::Revoke, PauseScope::Key(k)) = (t.action, &t.scope)
            && let Err(e) = store.revoke_key(k, now).await
        {
            tracing::error!(error = %e, key = %k, "revoking the key failed; its mail is held");
        }
        if t.hold {
            let p = Pause {
                scope: t.scope.clone(),
                reason: format!("guard: {} ({})", t.signal, t.evidence),
                actor: "guard".into(),
                created_at: now,
            };
            // In memory at once (this node stops sending now), then persisted for the others.
            pauses.add_local(p.clone());
            if let Err(e) = store.pause(&p).await {
                tracing::error!(error = %e, "persisting the guard's pause failed; it holds on this node only");
            }
        }
        let target = format!("{}:{}", t.scope.kind(), t.scope.target());
        let ev = crate::audit::AuditEvent {
            actor: "guard",
            source_ip: None,
            action: if t.hold { "guard.hold" } else { "guard.alert" },
            target: target.trim_end_matches(':'),
            reason: Some(t.signal),
            detail: t.evidence.clone(),
        };
        if let Err(e) = crate::audit::record(&store, now, ev).await {
            tracing::error!(error = %e, "recording the guard's action in the audit log failed");
        }
        let alert = Alert {
            id: uuid::Uuid::now_v7().to_string(),
            at: now,
            scope: t.scope.kind().into(),
            target: t.scope.target().into(),
            signal: t.signal.into(),
            evidence: t.evidence,
            action: action.into(),
        };
        if let Err(e) = store.record_alert(&alert).await {
            tracing::error!(error = %e, "recording a guard alert failed");
        }
    }
}
