//! Wire types of the Postern HTTP API, version 1.
//!
//! Requests reject unknown fields so a misspelt field is an error, never silently ignored.
//! These types are the stable contract with outside clients: extend them, do not rename.

use std::collections::BTreeMap;

pub mod admin;

use serde::{Deserialize, Serialize};

/// Body of `POST /v1/messages`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    pub from: String,
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    #[serde(default)]
    pub bcc: Vec<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    pub subject: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// What happened to a message at acceptance.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AcceptStatus {
    Queued,
    Held,
    Suppressed,
}

/// Answer of `POST /v1/messages` (202).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct SendMessageResponse {
    pub id: String,
    pub status: AcceptStatus,
}

/// One entry of a message's history.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct MessageEvent {
    /// RFC 3339 timestamp.
    pub at: String,
    /// queued, attempted, delivered, deferred, bounced, expired, recovered, ...
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Per-recipient state of a message.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RecipientStatus {
    pub address: String,
    /// pending, delivered, bounced, expired
    pub status: String,
}

/// Answer of `GET /v1/messages/{id}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct MessageView {
    pub id: String,
    /// queued, sending, deferred, delivered, bounced, expired, held, suppressed, purged
    pub status: String,
    pub tenant: String,
    pub from: String,
    pub message_id: String,
    pub subject: Option<String>,
    pub attempts: i64,
    pub created_at: String,
    /// The tags the send request carried.
    #[serde(default)]
    pub tags: Vec<String>,
    pub recipients: Vec<RecipientStatus>,
    pub events: Vec<MessageEvent>,
}

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// Answer of `/healthz` and `/readyz`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct HealthResponse {
    pub status: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_request_fields_are_rejected() {
        let body = r#"{"from":"a@b.c","to":["d@e.f"],"subject":"s","sbject":"typo"}"#;
        let err = serde_json::from_str::<SendMessageRequest>(body).expect_err("must be refused");
        assert!(err.to_string().contains("unknown field `sbject`"), "{err}");
    }

    #[test]
    fn accept_status_is_snake_case() {
        let r = SendMessageResponse {
            id: "m".into(),
            status: AcceptStatus::Queued,
        };
        assert_eq!(
            serde_json::to_string(&r).expect("serializes"),
            r#"{"id":"m","status":"queued"}"#
        );
    }
}
