//! The web console, `/console/...`: server-rendered HTML pages over the admin accounts,
//! sessions and operations of the admin API (`super::admin`). No script; every form posts,
//! and every post carries the session's CSRF token (checked before anything else) and is
//! refused to an auditor. A tenant-admin sees and acts on its own tenant only, through the
//! same checks as the admin API.

mod actions;
mod broadcast;
mod held;
mod html;
mod login;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::admin::{Admin, SourceIp, cookie_value};
use super::{ApiError, AppState};
use html::{Notice, esc};

/// The console's session cookie (a session of the admin login, scoped to `/console`).
pub const COOKIE: &str = "postern_console";

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/overview") }),
        )
        .route("/console/login", get(login::page).post(login::submit))
        .route("/console/enrol", post(login::enrol))
        .route("/console/logout", post(login::logout))
        .route("/console/overview", get(pages::overview))
        .route(
            "/console/providers",
            get(pages::providers).post(pages::move_traffic),
        )
        .route("/console/guard", get(pages::guard))
        .route("/console/audit", get(pages::audit))
        .route("/console/held", get(held::held))
        .route("/console/held/release", post(held::release))
        .route("/console/held/purge", post(held::purge))
        .route("/console/held/{id}", get(held::preview))
        .route(
            "/console/keys",
            get(actions::keys).post(actions::create_key),
        )
        .route("/console/keys/{id}/rotate", post(actions::rotate_key))
        .route("/console/keys/{id}/revoke", post(actions::revoke_key))
        .route("/console/kill", get(actions::kill).post(actions::kill_act))
        .route(
            "/console/broadcast",
            get(broadcast::page_get).post(broadcast::submit),
        )
}

/// The CSRF token of a session: derived from the session cookie, so it needs no storage and
/// changes with every login; a page from another site cannot read it.
fn csrf_token(cookie: &str) -> String {
    hex::encode(Sha256::digest(
        format!("postern-console-csrf\0{cookie}").as_bytes(),
    ))
}

/// A logged-in console request: the admin (with the admin API's role checks) and the
/// session's CSRF token, which every form carries.
pub(super) struct Session {
    pub admin: Admin,
    pub csrf: String,
}

impl FromRequestParts<Arc<AppState>> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Ok(SourceIp(ip)) = SourceIp::from_request_parts(parts, st).await;
        let Some(cookie) = cookie_value(&parts.headers, COOKIE) else {
            return Err(Redirect::to("/console/login").into_response());
        };
        match st.admin.logins.session(&cookie).await {
            Ok(who) => Ok(Self {
                admin: Admin { who, ip },
                csrf: csrf_token(&cookie),
            }),
            Err(e) => Err(login::login_page(
                StatusCode::UNAUTHORIZED,
                Some(Notice::err(e.to_string())),
                "",
                "",
            )),
        }
    }
}

/// Form fields, trimmed; an empty field counts as absent.
pub(super) struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every non-empty value of a repeated field (a group of checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// A form posted by a logged-in admin who may change things, with a valid CSRF token.
/// A bad or missing token is 403 and nothing runs; so is any post by an auditor.
pub(super) struct Posted {
    pub sess: Session,
    pub form: Fields,
}

impl FromRequest<Arc<AppState>> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, st: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        Self::checked(req, st, true).await
    }
}

impl Posted {
    /// The session, the form, the CSRF token checked; and, when `change`, the role too.
    async fn checked(req: Request, st: &Arc<AppState>, change: bool) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let sess = Session::from_request_parts(&mut parts, st).await?;
        let req = Request::from_parts(parts, body);
        let form = match Form::<Vec<(String, String)>>::from_request(req, st).await {
            Ok(Form(f)) => Fields(f),
            Err(e) => {
                let e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_form", e.body_text());
                return Err(html::error_page(&sess, e));
            }
        };
        let sent = form.get("csrf").unwrap_or("");
        if !bool::from(sent.as_bytes().ct_eq(sess.csrf.as_bytes())) {
            let e = ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "this form is stale or did not come from the console (CSRF token missing or wrong); reload the page and try again",
            );
            return Err(html::error_page(&sess, e));
        }
        if change && let Err(e) = sess.admin.may_change() {
            return Err(html::error_page(&sess, e));
        }
        Ok(Self { sess, form })
    }
}

/// The session cookie: HttpOnly, SameSite=Strict, for `/console` only.
fn session_cookie(st: &AppState, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if st.admin.logins.config().secure_cookie {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("postern_console=; Path=/console; Max-Age=0"))
}

/// Headers every console page carries: no caching, no framing, no script at all.
fn harden(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A short label for a time in milliseconds.
fn when(ms: i64) -> String {
    esc(&crate::clock::rfc3339(ms))
}

/// Records a change made from the console in the audit log, through the admin API's own
/// recorder (actor, source address), marked as coming from the console.
async fn record(
    st: &AppState,
    admin: &Admin,
    action: &str,
    target: &str,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    record_with(st, admin, action, target, reason, serde_json::json!({})).await
}

/// [`record`] with the detail the same act records from the CLI (an object), plus `via`.
async fn record_with(
    st: &AppState,
    admin: &Admin,
    action: &str,
    target: &str,
    reason: Option<&str>,
    mut detail: serde_json::Value,
) -> Result<(), ApiError> {
    if let Some(o) = detail.as_object_mut() {
        o.insert("via".into(), "console".into());
    }
    admin.audit(st, action, target, reason, detail).await
}
