//! The admin API, black-box against the spawned server on SQLite and PostgreSQL: the TOTP
//! login flow (codes computed with totp-rs from the enrolment secret), recovery codes,
//! lockout, session expiry, roles and admin tokens, and the operations (route move, pause and
//! resume, held messages, suppressions) with bad input refused and nothing changed.
//!
//! One test binary: the helpers every area shares are here (spawning the server with a second
//! owner, calling the API, enrolment, admin tokens, reading the audit log); the tests are in
//! `login` (login flow, lockout, sessions, sealed TOTP secrets), `roles` (roles and admin
//! tokens) and `ops` (operations through the API).
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod login;
mod ops;
mod roles;

use common::{App, Backend};
use serde_json::{Value, json};
use totp_rs::{Algorithm, Secret, TOTP};

fn spawn(backend: Backend, env: &[(&str, &str)]) -> (App, String) {
    let app = App::spawn(backend, env);
    // A second owner, added the way an operator would (`postern init`'s own is tested in
    // the login flow).
    let v: Value =
        serde_json::from_str(&app.cli(&["--json", "admin", "add", "root", "--role", "owner"]))
            .unwrap();
    let otp = v["one_time_password"].as_str().unwrap().to_owned();
    (app, otp)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn totp(secret_b32: &str) -> TOTP {
    let raw = Secret::Encoded(secret_b32.to_owned()).to_bytes().unwrap();
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, raw)
}

/// `(status, body, session cookie if one was set)`.
async fn call(
    app: &App,
    method: &str,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let c = reqwest::Client::new();
    let mut r = c.request(method.parse().unwrap(), app.url(path));
    if auth.starts_with("pst_") {
        r = r.bearer_auth(auth);
    } else if !auth.is_empty() {
        r = r.header("cookie", format!("postern_admin={auth}"));
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned())
        .and_then(|c| {
            let v = c
                .strip_prefix("postern_admin=")?
                .split(';')
                .next()?
                .to_owned();
            (!v.is_empty()).then_some(v)
        });
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        cookie,
    )
}

async fn post(app: &App, path: &str, auth: &str, body: Value) -> (u16, Value) {
    let (s, v, _) = call(app, "POST", path, auth, Some(body)).await;
    (s, v)
}

async fn get(app: &App, path: &str, auth: &str) -> (u16, Value) {
    let (s, v, _) = call(app, "GET", path, auth, None).await;
    (s, v)
}

/// The audit log, one JSON object per entry.
fn audit_log(app: &App) -> Vec<Value> {
    app.cli(&["audit", "export"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Entries for an action, as (actor, target, outcome or reason).
fn audited(app: &App, action: &str) -> Vec<Value> {
    audit_log(app)
        .into_iter()
        .filter(|e| e["action"] == action)
        .collect()
}

const NEW_PASSWORD: &str = "correct horse battery staple";

/// First login and enrolment; returns (TOTP secret, recovery codes, session cookie).
async fn enrol(app: &App, user: &str, otp: &str) -> (String, Vec<String>, String) {
    let (s, v) = post(
        app,
        "/admin/v1/login",
        "",
        json!({"user": user, "password": otp}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "enrolment_required", "{v}");
    let secret = v["enrolment"]["secret"].as_str().unwrap().to_owned();
    let uri = v["enrolment"]["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with(&format!("otpauth://totp/Postern:{user}?secret={secret}&")),
        "{uri}"
    );
    let codes: Vec<String> =
        serde_json::from_value(v["enrolment"]["recovery_codes"].clone()).unwrap();
    assert_eq!(codes.len(), 10);
    let code = totp(&secret).generate(now_secs());
    let (s, v, cookie) = call(
        app,
        "POST",
        "/admin/v1/enrol",
        "",
        Some(json!({"user": user, "password": otp, "totp": code, "new_password": NEW_PASSWORD})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "active");
    (secret, codes, cookie.expect("a session cookie"))
}

fn token(app: &App, args: &[&str]) -> String {
    let mut all = vec!["--json", "admin", "token", "create"];
    all.extend_from_slice(args);
    let v: Value = serde_json::from_str(&app.cli(&all)).unwrap();
    let t = v["token"].as_str().unwrap().to_owned();
    assert!(t.starts_with("pst_admin_"), "{t}");
    t
}
