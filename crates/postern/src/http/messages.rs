//! `POST /v1/messages` and `GET /v1/messages/{id}`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::{Extension, Json};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use postern_api::{
    AcceptStatus, MessageEvent, MessageView, RecipientStatus, SendMessageRequest,
    SendMessageResponse,
};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::compose::compose;
use crate::store::{Inserted, NewMessage, StoreError};

const SCOPE_SEND: &str = "send";
const SCOPE_READ: &str = "read";

pub(super) async fn principal(
    st: &AppState,
    headers: &HeaderMap,
    scope: &str,
    peer: Option<std::net::IpAddr>,
) -> Result<Principal, ApiError> {
    let presented = match headers.get(axum::http::header::AUTHORIZATION) {
        None => "",
        Some(v) => {
            let v = v.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_api_key",
                    "Authorization header is not ASCII",
                )
            })?;
            // The scheme name is case-insensitive (RFC 9110 11.1).
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
                .map(|(_, key)| key)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "invalid_api_key",
                        "expected Authorization: Bearer <API key>",
                    )
                })?
        }
    };
    let agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    Ok(st
        .keys
        .authenticate_from(presented.trim(), scope, peer, agent)
        .await?)
}

fn idempotency_key(
    headers: &HeaderMap,
    req: &SendMessageRequest,
) -> Result<Option<String>, ApiError> {
    let header = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| bad_idem("Idempotency-Key header is not ASCII"))?
                .to_owned(),
        ),
    };
    let key = match (header, &req.idempotency_key) {
        (Some(h), Some(b)) if h != *b => {
            return Err(bad_idem(
                "Idempotency-Key header and idempotency_key differ",
            ));
        }
        (h, b) => h.or_else(|| b.clone()),
    };
    if let Some(k) = &key
        && (k.is_empty() || k.len() > 255 || !k.bytes().all(|c| c.is_ascii_graphic()))
    {
        return Err(bad_idem(
            "idempotency key must be 1-255 printable ASCII characters",
        ));
    }
    Ok(key)
}

fn bad_idem(msg: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_idempotency_key",
        msg,
    )
}

/// Hash of the request without its idempotency key, to tell a retry from a reuse.
fn request_hash(req: &SendMessageRequest) -> String {
    let mut r = req.clone();
    r.idempotency_key = None;
    hex::encode(Sha256::digest(serde_json::to_vec(&r).unwrap_or_default()))
}

pub(super) async fn send(
    State(st): State<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<SendMessageRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<SendMessageResponse>), ApiError> {
    let started = Instant::now();
    let peer = peer.map(|Extension(ConnectInfo(a))| a.ip());
    let result = send_inner(&st, &headers, peer, body).await;
    let code = result
        .as_ref()
        .map(|(s, _)| *s)
        .unwrap_or_else(|e| e.status);
    st.metrics.http_response("send", code.as_u16());
    st.metrics.observe_accept(started.elapsed());
    result
}

async fn send_inner(
    st: &AppState,
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    body: Result<Json<SendMessageRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<SendMessageResponse>), ApiError> {
    // Authentication first: an unauthenticated caller learns nothing about validation.
    let who = principal(st, headers, SCOPE_SEND, peer).await?;
    let Json(req) = body?;
    let idem = idempotency_key(headers, &req)?;
    let c = compose(&req, &st.hostname, st.max_recipients)?;
    let idem = idem.map(|k| (k, request_hash(&req)));
    // A retry of a request whose key is already claimed is not a new message: no limit
    // counts it. Its answer still comes from the group commit, which answers only once the
    // first message is on the disk.
    let retry = match &idem {
        Some((key, hash)) => st
            .store
            .idempotent_answer(&who.tenant_id, key, hash)
            .await?
            .is_some(),
        None => false,
    };
    if !retry {
        st.keys
            .admit_send(&who, &c.mail_from, &c.recipients)
            .await?;
    }
    let now = st.clock.now_ms();
    let msg = NewMessage {
        id: crate::domain::new_message_uuid().to_string(),
        tenant_id: who.tenant_id,
        key_id: Some(who.key_id),
        source: "http",
        mail_from: c.mail_from,
        recipients: c.recipients,
        subject: c.subject,
        message_id_header: c.message_id,
        raw: c.raw,
        created_at: now,
        expires_at: now + st.retry_window_ms,
        idempotency: idem,
        held: None,
        tags: req.tags.clone(),
    };
    respond(st.acceptor.accept(msg).await?)
}

/// The HTTP answer for a message stored, or for a repeat of one.
fn respond(inserted: Inserted) -> Result<(StatusCode, Json<SendMessageResponse>), ApiError> {
    let (id, status, code) = match inserted {
        Inserted::New { id, status } => (id, status, StatusCode::ACCEPTED),
        Inserted::Replay { id, status } => (id, status, StatusCode::ACCEPTED),
        Inserted::KeyReused { id } => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!(
                    "this idempotency key was already used for message {id} with a different request"
                ),
            ));
        }
    };
    let status = match status.as_str() {
        "held" => AcceptStatus::Held,
        "suppressed" => AcceptStatus::Suppressed,
        _ => AcceptStatus::Queued,
    };
    Ok((code, Json(SendMessageResponse { id, status })))
}

pub(super) async fn get(
    State(st): State<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, ApiError> {
    let peer = peer.map(|Extension(ConnectInfo(a))| a.ip());
    // A key that may send may also read what it sent.
    let who = match principal(&st, &headers, SCOPE_READ, peer).await {
        Ok(w) => w,
        Err(e) if e.code == "insufficient_scope" => {
            principal(&st, &headers, SCOPE_SEND, peer).await?
        }
        Err(e) => return Err(e),
    };
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::not_found("message"));
    }
    let m = match st.store.message(&who.tenant_id, &id).await {
        Ok(m) => m,
        Err(StoreError::NotFound) => return Err(ApiError::not_found("message")),
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            ));
        }
    };
    Ok(Json(MessageView {
        id: m.id,
        status: m.status,
        tenant: who.tenant,
        from: m.mail_from,
        message_id: m.message_id_header,
        subject: m.subject,
        attempts: m.attempts,
        created_at: rfc3339(m.created_at),
        tags: m.tags,
        recipients: m
            .recipients
            .into_iter()
            .map(|r| RecipientStatus {
                address: r.address,
                status: serde_json::to_value(r.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            })
            .collect(),
        events: m
            .events
            .into_iter()
            .map(|e| MessageEvent {
                at: rfc3339(e.at),
                kind: e.kind,
                recipient: e.recipient,
                provider: e.provider,
                detail: e.detail,
            })
            .collect(),
    }))
}
