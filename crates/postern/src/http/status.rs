//! The public status page (no login): `/status` (HTML), `/status.json`, `/status/feed.atom`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::status::{StatusPage, render, status_page};

async fn page(st: &AppState) -> Result<StatusPage, ApiError> {
    status_page(&st.store, st.clock.now_ms())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "reading the status page failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the status is not available right now",
            )
        })
}

/// Pages change within seconds during an incident: short caching only.
const CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "public, max-age=10");

pub(super) async fn html(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let p = page(&st).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), CACHE],
        render::html(&p),
    )
        .into_response())
}

pub(super) async fn json(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let p = page(&st).await?;
    Ok(([CACHE], Json(p)).into_response())
}

pub(super) async fn atom(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = page(&st).await?;
    // The feed's ids are the page's address as the client reached it.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let base = format!("http://{host}/status");
    Ok((
        [
            (header::CONTENT_TYPE, "application/atom+xml; charset=utf-8"),
            CACHE,
        ],
        render::atom(&p, &base),
    )
        .into_response())
}
