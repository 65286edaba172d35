//! The HTTP API (axum). Handlers validate at the edge and hand messages to the acceptor; the
//! HTTP layer never talks to a provider.

pub mod admin;
mod console;
mod error;
mod feedback;
mod feedback_ses;
mod leaks;
mod messages;
pub mod openapi;
mod ops;
mod status;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::auth::KeyAuthenticator;
use crate::clock::SharedClock;
use crate::queue::Acceptor;
use crate::store::Store;
use crate::telemetry::Metrics;

/// Everything a handler needs, passed in rather than global.
pub struct AppState {
    pub store: Store,
    pub acceptor: Acceptor,
    pub keys: KeyAuthenticator,
    pub clock: SharedClock,
    pub metrics: Metrics,
    pub hostname: String,
    pub max_recipients: usize,
    pub retry_window_ms: i64,
    /// Whether this node runs delivery workers (`[queue] deliver`).
    pub delivering: bool,
    pub suppression: crate::config::SuppressionConfig,
    pub guard: Option<crate::guard::Guard>,
    /// Authenticates `POST /v1/feedback/ses` (certificate cache, seen message ids).
    pub sns: crate::feedback::sns::SnsVerifier,
    /// Public keys leak reports are signed with.
    pub leaks: crate::leaks::LeakVerifier,
    /// Admin logins, sessions and tokens, and what the admin API reads.
    pub admin: admin::AdminContext,
}

pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/messages", post(messages::send))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/v1/feedback/raw", post(feedback::raw))
        .route("/v1/feedback/ses", post(feedback_ses::ses))
        .route("/v1/keys/leaked", post(leaks::leaked))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::document))
        .merge(admin::routes())
        .route("/status", get(status::html))
        .route("/status.json", get(status::json))
        .route("/status/feed.atom", get(status::atom))
        .merge(console::routes())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
