//! `POST /v1/keys/leaked`: GitHub secret-scanning partner reports. The signature is checked
//! over the raw body before anything is parsed; each token that is a key of this Postern is
//! revoked before the answer goes out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};

use super::{ApiError, AppState};
use crate::leaks::{
    Finding, KEY_ID_HEADER, MAX_TOKENS, Outcome, ReportedToken, SIGNATURE_HEADER, TokenVerdict,
};

pub(super) async fn leaked(
    State(st): State<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<TokenVerdict>>, ApiError> {
    let result = leaked_inner(&st, peer, &headers, &body).await;
    let code = result
        .as_ref()
        .map_or_else(|e| e.status, |_| StatusCode::OK);
    st.metrics.http_response("keys_leaked", code.as_u16());
    result
}

async fn leaked_inner(
    st: &AppState,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<Vec<TokenVerdict>>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    st.leaks
        .verify(header(KEY_ID_HEADER), header(SIGNATURE_HEADER), body)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string()))?;
    let tokens: Vec<ReportedToken> = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("expected a JSON array of {{\"token\",\"type\",\"url\",\"source\"}}: {e}"),
        )
    })?;
    if tokens.len() > MAX_TOKENS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_tokens",
            format!("at most {MAX_TOKENS} tokens per report"),
        ));
    }
    let ip = peer.map(|Extension(ConnectInfo(a))| a.ip().to_string());
    let mut out = Vec::with_capacity(tokens.len());
    for t in &tokens {
        let found = Finding {
            kind: t.kind.as_deref(),
            url: t.url.as_deref(),
            source: t.source.as_deref(),
        };
        let now = st.clock.now_ms();
        let outcome = crate::leaks::report(
            &st.store,
            &t.token,
            &found,
            "leak-report:github",
            ip.as_deref(),
            now,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "applying a leak report failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the report could not be applied; send it again",
            )
        })?;
        let label = match outcome {
            Outcome::Leaked { key_id, .. } => {
                // This node refuses the key from the next request on; others within the
                // authenticator's cache lifetime.
                st.keys.forget(&key_id);
                "true_positive"
            }
            Outcome::NotOurs => "false_positive",
        };
        out.push(TokenVerdict {
            token_raw: t.token.clone(),
            token_type: t.kind.clone().unwrap_or_default(),
            label,
        });
    }
    Ok(Json(out))
}
