//! Requests of the admin API (`/admin/v1/...`). Like every request type, they reject unknown
//! fields. Tenants are named by name, keys and admin tokens by id, providers by name.

use serde::{Deserialize, Serialize};

/// `POST /admin/v1/login`. An active account needs `totp` or `recovery_code`; an account on
/// its one-time password gets a TOTP enrolment instead of a session.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub user: String,
    pub password: String,
    #[serde(default)]
    pub totp: Option<String>,
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// `POST /admin/v1/enrol`: the one-time password, a code from the enrolled TOTP secret, and
/// the account's new password.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub user: String,
    pub password: String,
    pub totp: String,
    pub new_password: String,
}

/// `POST /admin/v1/tenants`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddTenantRequest {
    pub name: String,
}

fn default_scopes() -> Vec<String> {
    vec!["send".into(), "read".into()]
}

/// `POST /admin/v1/keys`: as `postern keys create`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub tenant: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub test: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub from_domains: Vec<String>,
    #[serde(default)]
    pub rcpt_domains: Vec<String>,
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    #[serde(default)]
    pub daily_limit: Option<u64>,
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// A duration from now (`90d`, `12h`) or an RFC 3339 time.
    #[serde(default)]
    pub expires: Option<String>,
}

/// `POST /admin/v1/keys/{id}/rotate`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// How long the old key keeps working (default `24h`).
    #[serde(default)]
    pub grace: Option<String>,
}

/// `PUT /admin/v1/routes/{tenant}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetRouteRequest {
    pub providers: Vec<String>,
}

/// `POST /admin/v1/routes/move`: moving back (`from` and `to` swapped) undoes a move.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MoveRouteRequest {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub tenant: Option<String>,
}

/// `POST /admin/v1/pause` and `/admin/v1/resume`. `scope` is `all`, `tenant` (target: its
/// name), `key` (id), `provider` (name) or `channel` (`email`, `sms`, `social`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    pub scope: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /admin/v1/held/release` and `/admin/v1/held/purge` (a purge needs `reason`).
/// Without `tenant` or `key`, `all: true` is required.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeldActionRequest {
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /admin/v1/suppressions` (add) and `/admin/v1/suppressions/remove`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SuppressionsRequest {
    pub tenant: String,
    pub addresses: Vec<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /admin/v1/admins` (owner only): the one-time password is in the answer, once.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddAdminRequest {
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub tenant: Option<String>,
}

/// `POST /admin/v1/tokens` (owner only): the token is in the answer, once.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub tenant: Option<String>,
    /// A duration from now (`90d`, `12h`).
    #[serde(default)]
    pub expires: Option<String>,
}
