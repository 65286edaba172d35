//! `POST /v1/feedback/ses`: Amazon SNS messages carrying SES Bounce, Complaint and Delivery
//! notifications, authenticated by the SNS signature (no API key: SNS cannot send one).
//! A `SubscriptionConfirmation` is confirmed by visiting its `SubscribeURL`. Notifications are
//! applied like `POST /v1/feedback/raw`, matched across tenants.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::feedback::ingest::{Origin, apply};
use crate::feedback::ses::classify_notification;
use crate::feedback::sns::SnsError;

pub(super) async fn ses(
    State(st): State<Arc<AppState>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let msg = st
        .sns
        .verify(&body, st.clock.now_ms())
        .await
        .map_err(refused)?;
    if st.sns.seen(&msg.message_id) {
        return Ok((
            StatusCode::OK,
            Json(json!({"type": msg.kind, "duplicate": true})),
        ));
    }
    match msg.kind.as_str() {
        "SubscriptionConfirmation" => {
            st.sns.confirm(&msg).await.map_err(refused)?;
            tracing::info!(topic = %msg.topic_arn, "confirmed the SNS subscription");
            st.sns.mark_seen(&msg.message_id);
            return Ok((
                StatusCode::OK,
                Json(json!({"type": msg.kind, "confirmed": true})),
            ));
        }
        "UnsubscribeConfirmation" => {
            tracing::warn!(topic = %msg.topic_arn, "SNS says this endpoint was unsubscribed");
            return Ok((StatusCode::OK, Json(json!({"type": msg.kind}))));
        }
        _ => {}
    }
    let doc: Value = serde_json::from_str(&msg.message).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_feedback",
            format!("the SNS Message is not an SES notification (JSON): {e}"),
        )
    })?;
    let readings = classify_notification(&doc).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_feedback",
            format!("not an SES Bounce, Complaint or Delivery notification: {e}"),
        )
    })?;
    let origin = Origin {
        source: "ses",
        tenant_id: None,
        verp_message_id: None,
        guard: st.guard.as_ref(),
        metrics: Some(&st.metrics),
    };
    let applied = apply(
        &st.store,
        readings,
        &origin,
        &st.suppression,
        st.clock.now_ms(),
    )
    .await
    .map_err(|s| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("feedback not recorded: {s}"),
        )
    })?;
    st.sns.mark_seen(&msg.message_id);
    let matched = applied
        .iter()
        .filter(|a| a.record.message_id.is_some())
        .count();
    Ok((
        StatusCode::OK,
        Json(
            json!({"type": msg.kind, "readings": applied, "matched": matched, "orphans": applied.len() - matched}),
        ),
    ))
}

/// An SNS message that cannot be trusted or used: 4xx with what was wrong (a certificate
/// that cannot be fetched is 502, so SNS retries).
fn refused(e: SnsError) -> ApiError {
    let (status, code) = match &e {
        SnsError::Malformed(_) | SnsError::UnsupportedType(_) | SnsError::UnsupportedVersion(_) => {
            (StatusCode::BAD_REQUEST, "invalid_sns_message")
        }
        SnsError::UrlNotAllowed(_) => (StatusCode::FORBIDDEN, "sns_url_not_allowed"),
        SnsError::TopicNotAllowed(_) => (StatusCode::FORBIDDEN, "sns_topic_not_allowed"),
        SnsError::Stale(_) => (StatusCode::BAD_REQUEST, "sns_message_too_old"),
        SnsError::BadSignature => (StatusCode::FORBIDDEN, "invalid_sns_signature"),
        SnsError::CertUnavailable(_) => (StatusCode::BAD_GATEWAY, "sns_cert_unavailable"),
        SnsError::ConfirmFailed(_) => (StatusCode::BAD_GATEWAY, "sns_confirm_failed"),
    };
    ApiError::new(status, code, e.to_string())
}
