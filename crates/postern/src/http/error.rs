//! One error type for the HTTP API, mapped to a response in one place.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use postern_api::{ErrorDetail, ErrorResponse};

use crate::auth::{AuthError, SendRefusal};
use crate::compose::ComposeError;
use crate::queue::AcceptError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let text = r.body_text();
        match r {
            JsonRejection::JsonDataError(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", text)
            }
            JsonRejection::JsonSyntaxError(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_json", text)
            }
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            ),
            r if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body exceeds the size limit",
            ),
            r => Self::new(r.status(), "bad_request", text),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Scope(..) => {
                Self::new(StatusCode::FORBIDDEN, "insufficient_scope", e.to_string())
            }
            AuthError::Store(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            ),
            AuthError::Missing => Self::new(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "send Authorization: Bearer <API key>",
            ),
            AuthError::Revoked(_) => {
                Self::new(StatusCode::UNAUTHORIZED, "revoked_api_key", e.to_string())
            }
            AuthError::Expired(..) => {
                Self::new(StatusCode::UNAUTHORIZED, "expired_api_key", e.to_string())
            }
            AuthError::Rotated(..) => {
                Self::new(StatusCode::UNAUTHORIZED, "rotated_api_key", e.to_string())
            }
            AuthError::Network(..) => {
                Self::new(StatusCode::FORBIDDEN, "address_not_allowed", e.to_string())
            }
            _ => Self::new(StatusCode::UNAUTHORIZED, "invalid_api_key", e.to_string()),
        }
    }
}

impl From<SendRefusal> for ApiError {
    fn from(e: SendRefusal) -> Self {
        let (status, code) = match e {
            SendRefusal::FromDomain(..) => (StatusCode::FORBIDDEN, "from_domain_not_allowed"),
            SendRefusal::RcptDomain(..) => (StatusCode::FORBIDDEN, "recipient_domain_not_allowed"),
            SendRefusal::Rate(..) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            SendRefusal::Daily(..) => (StatusCode::TOO_MANY_REQUESTS, "daily_limit_reached"),
            SendRefusal::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<ComposeError> for ApiError {
    fn from(e: ComposeError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
    }
}

impl From<AcceptError> for ApiError {
    fn from(e: AcceptError) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_accepted",
            e.to_string(),
        )
    }
}
