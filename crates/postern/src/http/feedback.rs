//! `POST /v1/feedback/raw`: one bounce, complaint or auto-reply message (`message/rfc822`),
//! from a tenant that receives its own bounces. Only that tenant's messages are matched.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::messages::principal;
use super::{ApiError, AppState};
use crate::feedback::ingest::{IngestError, Origin, ingest};

pub(super) async fn raw(
    State(st): State<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let peer = peer.map(|Extension(ConnectInfo(a))| a.ip());
    let who = principal(&st, &headers, "send", peer).await?;
    let ctype = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("message/rfc822") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the message as Content-Type: message/rfc822 (got {ctype:?})"),
        ));
    }
    let origin = Origin {
        source: "http",
        tenant_id: Some(&who.tenant_id),
        verp_message_id: None,
        guard: st.guard.as_ref(),
        metrics: Some(&st.metrics),
    };
    let applied = ingest(
        &st.store,
        &body,
        &origin,
        &st.suppression,
        st.clock.now_ms(),
    )
    .await
    .map_err(|e| match e {
        IngestError::Classify(c) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_feedback",
            format!("not a bounce, complaint or auto-reply: {c}"),
        ),
        IngestError::Store(s) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("feedback not recorded: {s}"),
        ),
    })?;
    let matched = applied
        .iter()
        .filter(|a| a.record.message_id.is_some())
        .count();
    Ok((
        StatusCode::OK,
        Json(json!({"readings": applied, "matched": matched, "orphans": applied.len() - matched})),
    ))
}
