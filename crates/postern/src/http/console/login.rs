//! Login (password, then a TOTP or recovery code), first-login enrolment (the TOTP secret and
//! `otpauth://` URI shown once, then a code and a new password), logout. The checks are the
//! admin login's ([`crate::admin::Logins`]); only the forms are the console's. Before a
//! session exists, forms are protected by a double-submit token: a random value in a
//! SameSite=Strict cookie that the form must repeat.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::html::{Notice, bare_page, esc};
use super::{COOKIE, Fields, Posted, cookie_value, session_cookie};
use crate::admin::login::{Factor, LoginError, LoginOutcome, NewSession};
use crate::http::admin::{SourceIp, audit_login};
use crate::http::{ApiError, AppState};

/// The pre-login double-submit cookie.
const LOGIN_COOKIE: &str = "postern_console_login";

fn new_login_token() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// The login form. A fresh double-submit token goes into the form and a cookie.
pub(super) fn login_page(
    status: StatusCode,
    notice: Option<Notice>,
    user: &str,
    focus_code: &str,
) -> Response {
    let token = new_login_token();
    let code_hint = if focus_code.is_empty() {
        ""
    } else {
        " autofocus"
    };
    let user_focus = if focus_code.is_empty() {
        " autofocus"
    } else {
        ""
    };
    let body = format!(
        "<section><form method=\"post\" action=\"/console/login\" id=\"login\">\
         <input type=\"hidden\" name=\"login_csrf\" value=\"{token}\">\
         <label for=\"f-user\">User name</label><input type=\"text\" id=\"f-user\" name=\"user\" value=\"{}\" autocomplete=\"username\" autocapitalize=\"none\"{user_focus}>\
         <label for=\"f-password\">Password</label><input type=\"password\" id=\"f-password\" name=\"password\" autocomplete=\"current-password\">\
         <label for=\"f-code\">Code from your authenticator app, or a recovery code</label>\
         <input type=\"text\" id=\"f-code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\"{code_hint}>\
         <p class=\"muted\">First login with a one-time password: leave the code empty to enrol an authenticator.</p>\
         <button type=\"submit\">Log in</button></form></section>",
        esc(user)
    );
    let mut resp = bare_page(status, "Log in", notice, &body);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=3600"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub(super) async fn page() -> Response {
    login_page(StatusCode::OK, None, "", "")
}

/// Whether the form repeats the pre-login cookie.
fn login_token_ok(headers: &HeaderMap, form: &Fields) -> bool {
    match (cookie_value(headers, LOGIN_COOKIE), form.get("login_csrf")) {
        (Some(c), Some(f)) => bool::from(c.as_bytes().ct_eq(f.as_bytes())),
        _ => false,
    }
}

fn stale_form() -> Response {
    login_page(
        StatusCode::FORBIDDEN,
        Some(Notice::err(
            "this login form is stale or did not come from the console; try again",
        )),
        "",
        "",
    )
}

/// Logged in: the session cookie, and on to the overview.
fn logged_in(st: &AppState, s: &NewSession) -> Response {
    let max_age = (s.expires_at - st.clock.now_ms()) / 1000;
    let mut resp = Redirect::to("/console/overview").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(st, s.token.expose_secret(), max_age),
    );
    resp
}

/// A refused login or enrolment, recorded in the audit log as the admin API records it;
/// the refusal as the admin API answers it, and whether a second factor was missing.
async fn record_refusal(
    st: &AppState,
    user: &str,
    ip: Option<IpAddr>,
    e: LoginError,
) -> Result<(ApiError, bool), Response> {
    let outcome = match &e {
        LoginError::Locked(_) => Some("locked"),
        LoginError::AddressLimited(_) => Some("address_limited"),
        LoginError::Store(_) => None,
        _ => Some("failure"),
    };
    let wants_code = matches!(e, LoginError::TotpRequired);
    let e = ApiError::from(e);
    if let Some(outcome) = outcome
        && let Err(a) = audit_login(st, user, ip, outcome, Some(e.code)).await
    {
        return Err(login_page(a.status, Some(Notice::err(a.message)), user, ""));
    }
    Ok((e, wants_code))
}

/// A refused login: recorded, then the login form again with the reason.
async fn refused(st: &AppState, user: &str, ip: Option<IpAddr>, e: LoginError) -> Response {
    let (e, wants_code) = match record_refusal(st, user, ip, e).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (msg, focus) = if wants_code {
        (
            "enter your password again with the 6-digit code from your authenticator app (or a recovery code)".to_owned(),
            "code",
        )
    } else {
        (e.message, "")
    };
    login_page(e.status, Some(Notice::err(msg)), user, focus)
}

/// A login step that worked, recorded in the audit log; a failure to record refuses it.
async fn recorded(
    st: &AppState,
    user: &str,
    ip: Option<IpAddr>,
    outcome: &str,
) -> Result<(), Response> {
    audit_login(st, user, ip, outcome, None)
        .await
        .map_err(|a| login_page(a.status, Some(Notice::err(a.message)), user, ""))
}

pub(super) async fn submit(
    State(st): State<Arc<AppState>>,
    SourceIp(ip): SourceIp,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return stale_form();
    };
    let f = Fields(f);
    if !login_token_ok(&headers, &f) {
        return stale_form();
    }
    let user = f.get("user").unwrap_or("");
    let password =
        f.0.iter()
            .find(|(k, _)| k == "password")
            .map_or("", |(_, v)| v.as_str());
    if user.is_empty() || password.is_empty() {
        return login_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(Notice::err("enter your user name and password")),
            user,
            "",
        );
    }
    let factor = match f.get("code") {
        None => Factor::None,
        Some(c) if c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()) => Factor::Totp(c),
        Some(c) => Factor::Recovery(c),
    };
    match st.admin.logins.login(user, password, factor, ip).await {
        Ok(LoginOutcome::Session(s)) => {
            tracing::info!(admin = %user, ip = ?ip, "console login");
            if let Err(r) = recorded(&st, user, ip, "success").await {
                return r;
            }
            logged_in(&st, &s)
        }
        Ok(LoginOutcome::Enrol(e)) => {
            tracing::info!(admin = %user, ip = ?ip, "console enrolment started");
            if let Err(r) = recorded(&st, user, ip, "enrolment_started").await {
                return r;
            }
            let codes: String = e
                .recovery_codes
                .iter()
                .map(|c| format!("<li><code>{}</code></li>", esc(c)))
                .collect();
            let token = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
            let body = format!(
                "<section><h2>1. Add Postern to your authenticator app</h2>\
                 <p>Scan or paste this URI, or type the secret:</p>\
                 <p>URI: <code class=\"secret\" id=\"otpauth\">{}</code></p>\
                 <p>Secret: <code class=\"secret\" id=\"totp-secret\">{}</code></p>\
                 <h2>2. Keep these recovery codes somewhere safe</h2><p>Each works once, instead of a code. They are not shown again.</p>\
                 <ul id=\"recovery\">{codes}</ul></section>\
                 <section><h2>3. Confirm</h2><form method=\"post\" action=\"/console/enrol\" id=\"enrol\">\
                 <input type=\"hidden\" name=\"login_csrf\" value=\"{}\">\
                 <input type=\"hidden\" name=\"user\" value=\"{}\">\
                 <label for=\"f-password\">One-time password (again)</label><input type=\"password\" id=\"f-password\" name=\"password\" autocomplete=\"current-password\">\
                 <label for=\"f-code\">Code from the app</label><input type=\"text\" id=\"f-code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\">\
                 <label for=\"f-new\">New password (at least {} characters)</label><input type=\"password\" id=\"f-new\" name=\"new_password\" autocomplete=\"new-password\">\
                 <button type=\"submit\">Activate and log in</button></form></section>",
                esc(e.uri.expose_secret()),
                esc(e.secret.expose_secret()),
                esc(&token),
                esc(user),
                crate::admin::MIN_PASSWORD_LEN
            );
            bare_page(StatusCode::OK, "Enrol an authenticator", None, &body)
        }
        Err(e) => {
            tracing::warn!(admin = %user, ip = ?ip, error = %e, "console login refused");
            refused(&st, user, ip, e).await
        }
    }
}

pub(super) async fn enrol(
    State(st): State<Arc<AppState>>,
    SourceIp(ip): SourceIp,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return stale_form();
    };
    let f = Fields(f);
    if !login_token_ok(&headers, &f) {
        return stale_form();
    }
    let raw = |name: &str| {
        f.0.iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let user = f.get("user").unwrap_or("");
    let result = st
        .admin
        .logins
        .enrol(
            user,
            raw("password"),
            f.get("code").unwrap_or(""),
            raw("new_password"),
            ip,
        )
        .await;
    match result {
        Ok(s) => {
            tracing::info!(admin = %user, ip = ?ip, "console enrolment done; account active");
            if let Err(r) = recorded(&st, user, ip, "enrolled").await {
                return r;
            }
            logged_in(&st, &s)
        }
        Err(e) => {
            tracing::warn!(admin = %user, ip = ?ip, error = %e, "console enrolment refused");
            let (e, _) = match record_refusal(&st, user, ip, e).await {
                Ok(r) => r,
                Err(r) => return r,
            };
            // The secret was shown once; a failed confirmation starts the login again,
            // which shows a fresh enrolment.
            let msg = format!(
                "{}. Log in with the one-time password again to get a new secret.",
                e.message
            );
            login_page(e.status, Some(Notice::err(msg)), user, "")
        }
    }
}

pub(super) async fn logout(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    _p: LogoutForm,
) -> Response {
    if let Some(c) = cookie_value(&headers, COOKIE) {
        let _ = st.admin.logins.logout(&c).await;
    }
    let mut resp = Redirect::to("/console/login").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, session_cookie(&st, "", 0));
    resp
}

/// Logout needs the CSRF token but not a role that may change things (an auditor logs out
/// too), so it checks the token itself.
pub(super) struct LogoutForm;

impl axum::extract::FromRequest<Arc<AppState>> for LogoutForm {
    type Rejection = Response;

    async fn from_request(
        req: axum::extract::Request,
        st: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match Posted::checked(req, st, false).await {
            Ok(_) => Ok(Self),
            Err(r) => Err(r),
        }
    }
}
