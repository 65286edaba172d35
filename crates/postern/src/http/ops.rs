//! Health, readiness and metrics.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use postern_api::HealthResponse;

use super::AppState;

pub(super) async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        checks: BTreeMap::new(),
    })
}

/// Ready when the store answers (an accept-only node is ready too).
pub(super) async fn readyz(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let mut checks = BTreeMap::new();
    let store_ok = match st.store.ping().await {
        Ok(()) => true,
        Err(e) => {
            checks.insert("store".into(), e.to_string());
            false
        }
    };
    if store_ok {
        checks.insert("store".into(), "ok".into());
    }
    checks.insert(
        "delivery".into(),
        if st.delivering { "on" } else { "off" }.into(),
    );
    let ok = store_ok;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(HealthResponse {
            status: if ok { "ready" } else { "not_ready" }.into(),
            checks,
        }),
    )
}

pub(super) async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    if let Ok(counts) = st.store.count_by_status().await {
        st.metrics.set_queue_depth(&counts);
    }
    if let Ok(ts) = st.store.list_tenants().await {
        let pairs: Vec<(String, String)> = ts.into_iter().map(|t| (t.id, t.name)).collect();
        st.metrics.set_tenants(&pairs);
    }
    if let Ok(ps) = st.store.pauses().await {
        let kinds: Vec<&str> = ps.iter().map(|p| p.scope.kind()).collect();
        st.metrics.set_pauses(&kinds);
    }
    st.metrics.rates().publish(st.clock.now_ms());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(),
    )
}
