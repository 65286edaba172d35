//! Login, enrolment, logout; admin accounts and admin tokens (owner only).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use postern_api::admin::{AddAdminRequest, CreateTokenRequest, EnrolRequest, LoginRequest};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{Admin, COOKIE, SourceIp, audit_login, body, session_cookie};
use crate::admin::login::{Factor, LoginError, LoginOutcome, NewSession};
use crate::clock::rfc3339;
use crate::http::{ApiError, AppState};

fn cookie(st: &AppState, value: &str, max_age_secs: i64) -> Result<HeaderValue, ApiError> {
    let secure = if st.admin.logins.config().secure_cookie {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/admin/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "bad cookie"))
}

fn who_json(a: &crate::admin::AdminPrincipal) -> Value {
    json!({"actor": a.actor, "role": a.role, "tenant": a.tenant.as_ref().map(|(_, n)| n)})
}

/// A session's answer: the cookie, and who is logged in until when.
fn session_response(st: &AppState, s: &NewSession) -> Result<Response, ApiError> {
    let now = st.clock.now_ms();
    let c = cookie(st, s.token.expose_secret(), (s.expires_at - now) / 1000)?;
    let mut body = who_json(&s.principal);
    body["status"] = "active".into();
    body["expires_at"] = rfc3339(s.expires_at).into();
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, c);
    Ok(resp)
}

pub(super) async fn login(
    State(st): State<Arc<AppState>>,
    SourceIp(ip): SourceIp,
    req: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    let factor = match (&req.totp, &req.recovery_code) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "send totp or recovery_code, not both",
            ));
        }
        (Some(t), None) => Factor::Totp(t),
        (None, Some(r)) => Factor::Recovery(r),
        (None, None) => Factor::None,
    };
    let result = st
        .admin
        .logins
        .login(&req.user, &req.password, factor, ip)
        .await;
    match result {
        Ok(LoginOutcome::Session(s)) => {
            tracing::info!(admin = %req.user, ip = ?ip, "admin login");
            audit_login(&st, &req.user, ip, "success", None).await?;
            session_response(&st, &s)
        }
        Ok(LoginOutcome::Enrol(e)) => {
            tracing::info!(admin = %req.user, ip = ?ip, "admin enrolment started");
            audit_login(&st, &req.user, ip, "enrolment_started", None).await?;
            Ok(Json(json!({
                "status": "enrolment_required",
                "enrolment": {
                    "secret": e.secret.expose_secret(),
                    "otpauth_uri": e.uri.expose_secret(),
                    "recovery_codes": e.recovery_codes,
                },
                "next": "POST /admin/v1/enrol with user, password, a TOTP code and new_password",
            }))
            .into_response())
        }
        Err(e) => {
            tracing::warn!(admin = %req.user, ip = ?ip, error = %e, "admin login refused");
            refused(&st, &req.user, ip, e).await
        }
    }
}

/// A refused login or enrolment: recorded (a lockout as such), then answered.
async fn refused(
    st: &AppState,
    user: &str,
    ip: Option<std::net::IpAddr>,
    e: LoginError,
) -> Result<Response, ApiError> {
    let outcome = match &e {
        LoginError::Locked(_) => "locked",
        LoginError::AddressLimited(_) => "address_limited",
        LoginError::Store(_) | LoginError::Sealed(_) => return Err(e.into()),
        _ => "failure",
    };
    let e = ApiError::from(e);
    audit_login(st, user, ip, outcome, Some(e.code)).await?;
    Err(e)
}

pub(super) async fn enrol(
    State(st): State<Arc<AppState>>,
    SourceIp(ip): SourceIp,
    req: Result<Json<EnrolRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    let result = st
        .admin
        .logins
        .enrol(&req.user, &req.password, &req.totp, &req.new_password, ip)
        .await;
    match result {
        Ok(s) => {
            tracing::info!(admin = %req.user, ip = ?ip, "admin enrolled TOTP; account active");
            audit_login(&st, &req.user, ip, "enrolled", None).await?;
            session_response(&st, &s)
        }
        Err(e) => {
            tracing::warn!(admin = %req.user, ip = ?ip, error = %e, "admin enrolment refused");
            refused(&st, &req.user, ip, e).await
        }
    }
}

pub(super) async fn logout(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(c) = session_cookie(&headers) {
        st.admin.logins.logout(&c).await?;
    }
    let mut resp = (StatusCode::OK, Json(json!({"logged_out": true}))).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&st, "", 0)?);
    Ok(resp)
}

pub(super) async fn me(admin: Admin) -> Json<Value> {
    Json(who_json(&admin.who))
}

pub(super) async fn list(
    State(st): State<Arc<AppState>>,
    admin: Admin,
) -> Result<Json<Value>, ApiError> {
    admin.owner_only()?;
    Ok(Json(json!(st.store.list_admins().await?)))
}

pub(super) async fn add(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    req: Result<Json<AddAdminRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.owner_only()?;
    let req = body(req)?;
    let now = st.clock.now_ms();
    let password =
        crate::admin::add_admin(&st.store, &req.name, &req.role, req.tenant.as_deref(), now)
            .await?;
    let detail = json!({"role": req.role, "tenant": req.tenant});
    admin
        .audit(
            &st,
            "admin.add",
            &format!("admin:{}", req.name),
            None,
            detail,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"name": req.name, "role": req.role, "tenant": req.tenant, "one_time_password": password}),
        ),
    ))
}

pub(super) async fn disable(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.owner_only()?;
    crate::admin::disable_admin(&st.store, &name, st.clock.now_ms()).await?;
    admin
        .audit(
            &st,
            "admin.disable",
            &format!("admin:{name}"),
            None,
            json!({}),
        )
        .await?;
    Ok(Json(json!({"name": name, "disabled": true})))
}

pub(super) async fn tokens(
    State(st): State<Arc<AppState>>,
    admin: Admin,
) -> Result<Json<Value>, ApiError> {
    admin.owner_only()?;
    Ok(Json(json!(st.store.list_admin_tokens().await?)))
}

pub(super) async fn create_token(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    req: Result<Json<CreateTokenRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.owner_only()?;
    let req = body(req)?;
    let (rec, secret) = crate::admin::create_token(
        &st.store,
        &req.name,
        &req.role,
        req.tenant.as_deref(),
        req.expires.as_deref(),
        &admin.who.actor,
        st.clock.now_ms(),
    )
    .await?;
    let detail = json!({"name": rec.name, "role": rec.role, "tenant": rec.tenant, "expires_at": rec.expires_at});
    admin
        .audit(
            &st,
            "token.create",
            &format!("token:{}", rec.id),
            None,
            detail,
        )
        .await?;
    let mut v = json!(rec);
    v["token"] = secret.expose().into();
    Ok((StatusCode::CREATED, Json(v)))
}

pub(super) async fn revoke_token(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.owner_only()?;
    crate::admin::revoke_token(&st.store, &id, st.clock.now_ms()).await?;
    admin
        .audit(&st, "token.revoke", &format!("token:{id}"), None, json!({}))
        .await?;
    Ok(Json(json!({"id": id, "revoked": true})))
}
