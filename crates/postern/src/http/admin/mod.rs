//! The admin API, `/admin/v1/...`: what the command line does, behind an admin session
//! (password + TOTP, `POST /admin/v1/login`) or an admin token (`Authorization: Bearer
//! pst_admin_…`). Roles: an owner does everything, an operator everything but admin accounts
//! and tokens, an auditor only reads (every change is 403 `read_only`), and a tenant-admin
//! reads and acts on its own tenant only (403 `tenant_forbidden` otherwise).

mod accounts;
pub(super) mod lists;
pub(super) mod ops;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Json, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post, put};

use super::{ApiError, AppState};
use crate::admin::login::{AccessError, LoginError};
use crate::admin::{AdminPrincipal, Logins, OpError, Role};
use crate::config::Config;
use crate::providers::health::Health;

/// The session cookie.
pub const COOKIE: &str = "postern_admin";

/// What the admin API needs besides the rest of [`AppState`].
pub struct AdminContext {
    pub logins: Logins,
    /// The configuration the server runs with (providers, default route).
    pub config: Arc<Config>,
    /// Provider health as this node sees it.
    pub health: Health,
}

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/login", post(accounts::login))
        .route("/admin/v1/enrol", post(accounts::enrol))
        .route("/admin/v1/logout", post(accounts::logout))
        .route("/admin/v1/me", get(accounts::me))
        .route("/admin/v1/admins", get(accounts::list).post(accounts::add))
        .route("/admin/v1/admins/{name}/disable", post(accounts::disable))
        .route(
            "/admin/v1/tokens",
            get(accounts::tokens).post(accounts::create_token),
        )
        .route("/admin/v1/tokens/{id}/revoke", post(accounts::revoke_token))
        .route("/admin/v1/tenants", get(ops::tenants).post(ops::add_tenant))
        .route("/admin/v1/keys", get(ops::keys).post(ops::create_key))
        .route("/admin/v1/keys/{id}/revoke", post(ops::revoke_key))
        .route("/admin/v1/keys/{id}/rotate", post(ops::rotate_key))
        .route("/admin/v1/routes", get(ops::routes))
        .route(
            "/admin/v1/routes/{tenant}",
            put(ops::set_route).delete(ops::clear_route),
        )
        .route("/admin/v1/routes/move", post(ops::move_route))
        .route("/admin/v1/providers", get(ops::providers))
        .route("/admin/v1/pauses", get(ops::pauses))
        .route("/admin/v1/pause", post(ops::pause))
        .route("/admin/v1/resume", post(ops::resume))
        .route("/admin/v1/held", get(ops::held))
        .route("/admin/v1/held/release", post(ops::release))
        .route("/admin/v1/held/purge", post(ops::purge))
        .route(
            "/admin/v1/suppressions",
            get(lists::suppressions).post(lists::suppress),
        )
        .route("/admin/v1/suppressions/remove", post(lists::unsuppress))
        .route("/admin/v1/suppressions/import", post(lists::import))
        .route("/admin/v1/suppressions/export", get(lists::export))
        .route("/admin/v1/alerts", get(lists::alerts))
}

// ---- errors -----------------------------------------------------------------------------

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let (status, code) = match &e {
            OpError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            OpError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            OpError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            OpError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        OpError::Store(e).into()
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        let (status, code) = match &e {
            LoginError::Invalid => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            LoginError::TotpRequired => (StatusCode::UNAUTHORIZED, "totp_required"),
            LoginError::Locked(_) => (StatusCode::TOO_MANY_REQUESTS, "account_locked"),
            LoginError::AddressLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_failures"),
            LoginError::Disabled => (StatusCode::FORBIDDEN, "account_disabled"),
            LoginError::Enrolled => (StatusCode::CONFLICT, "already_enrolled"),
            LoginError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            LoginError::Sealed(_) => (StatusCode::SERVICE_UNAVAILABLE, "secret_unavailable"),
            LoginError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        let (status, code) = match &e {
            AccessError::Missing => (StatusCode::UNAUTHORIZED, "not_logged_in"),
            AccessError::Session => (StatusCode::UNAUTHORIZED, "invalid_session"),
            AccessError::Expired => (StatusCode::UNAUTHORIZED, "session_expired"),
            AccessError::Token => (StatusCode::UNAUTHORIZED, "invalid_admin_token"),
            AccessError::Disabled => (StatusCode::FORBIDDEN, "account_disabled"),
            AccessError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        };
        Self::new(status, code, e.to_string())
    }
}

/// A JSON body, or the request's error.
fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    Ok(b?.0)
}

/// Query parameters, or a 422 naming what is wrong.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            e.body_text(),
        )
    })
}

// ---- who is asking ----------------------------------------------------------------------

fn source_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The value of the session cookie, if the request has one.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, COOKIE)
}

/// The value of cookie `name`, if the request has a non-empty one.
pub(super) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// An authenticated admin request: who, and from where.
pub(super) struct Admin {
    pub who: AdminPrincipal,
    pub ip: Option<IpAddr>,
}

/// The source address of any request (logins have no admin yet).
pub(super) struct SourceIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for SourceIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(source_ip(parts)))
    }
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let ip = source_ip(parts);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map(|(_, token)| token.trim());
        let logins = &st.admin.logins;
        let who = match (bearer, session_cookie(&parts.headers)) {
            (Some(token), _) => logins.token(token).await?,
            (None, Some(cookie)) => logins.session(&cookie).await?,
            (None, None) => return Err(AccessError::Missing.into()),
        };
        Ok(Self { who, ip })
    }
}

fn forbidden(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, msg)
}

impl Admin {
    /// Changes need a role that may change things.
    pub fn may_change(&self) -> Result<(), ApiError> {
        if self.who.role == Role::Auditor {
            return Err(forbidden(
                "read_only",
                format!("{} is an auditor: read-only", self.who.actor),
            ));
        }
        Ok(())
    }

    pub fn owner_only(&self) -> Result<(), ApiError> {
        if self.who.role != Role::Owner {
            return Err(forbidden(
                "owner_only",
                "only an owner manages admin accounts and tokens",
            ));
        }
        Ok(())
    }

    /// Things that are not one tenant's: refused to a tenant-admin.
    pub fn not_confined(&self) -> Result<(), ApiError> {
        if let Some((_, name)) = &self.who.tenant {
            return Err(forbidden(
                "tenant_forbidden",
                format!("a tenant-admin acts on its tenant ({name}) only"),
            ));
        }
        Ok(())
    }

    /// The tenant an operation names: a tenant-admin's own when it names none, refused when
    /// it names another.
    pub fn tenant<'a>(&'a self, named: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
        match (&self.who.tenant, named) {
            (None, n) => Ok(n),
            (Some((_, own)), None) => Ok(Some(own)),
            (Some((_, own)), Some(n)) if n == own => Ok(Some(own)),
            (Some((_, own)), Some(n)) => Err(forbidden(
                "tenant_forbidden",
                format!("a tenant-admin of {own} may not act on tenant {n:?}"),
            )),
        }
    }

    /// Whether a tenant (by id) is visible to this admin.
    pub fn sees_tenant_id(&self, tenant_id: &str) -> bool {
        self.who
            .tenant
            .as_ref()
            .is_none_or(|(id, _)| id == tenant_id)
    }

    /// Refuses a tenant (by id) this admin may not act on.
    pub fn tenant_id(&self, tenant_id: &str) -> Result<(), ApiError> {
        if self.sees_tenant_id(tenant_id) {
            Ok(())
        } else {
            Err(forbidden(
                "tenant_forbidden",
                "a tenant-admin acts on its own tenant only",
            ))
        }
    }

    /// Records a change in the audit log, as `admin:<name>` or `token:<id>` from the request's
    /// address. Every mutation of the admin API goes through here.
    pub async fn audit(
        &self,
        st: &AppState,
        action: &str,
        target: &str,
        reason: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        let ip = self.ip.map(|i| i.to_string());
        let ev = crate::audit::AuditEvent {
            actor: &self.who.actor,
            source_ip: ip.as_deref(),
            action,
            target,
            reason,
            detail,
        };
        crate::audit::record(&st.store, st.clock.now_ms(), ev).await?;
        Ok(())
    }
}

/// Records a login attempt (success, failure, lockout, enrolment) in the audit log.
pub(super) async fn audit_login(
    st: &AppState,
    user: &str,
    ip: Option<IpAddr>,
    outcome: &str,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    // The name as typed, bounded: a failed login may name anything.
    let name: String = user.chars().take(64).collect();
    let actor = format!("admin:{name}");
    let ip = ip.map(|i| i.to_string());
    let ev = crate::audit::AuditEvent {
        actor: &actor,
        source_ip: ip.as_deref(),
        action: "admin.login",
        target: &actor,
        reason,
        detail: serde_json::json!({"outcome": outcome}),
    };
    crate::audit::record(&st.store, st.clock.now_ms(), ev).await?;
    Ok(())
}
