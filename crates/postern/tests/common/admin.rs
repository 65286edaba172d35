//! An admin's first login and enrolment over the admin API, with TOTP codes computed by
//! totp-rs from the enrolment secret.

use serde_json::{Value, json};
use totp_rs::{Algorithm, Secret, TOTP};

use super::App;

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

pub fn totp(secret_b32: &str) -> TOTP {
    let raw = Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .expect("base32 secret");
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, raw)
}

async fn post(app: &App, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("admin API answers");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Adds `user` (owner) with the CLI, logs in with the one-time password and enrols with
/// `new_password`; returns the TOTP secret.
pub async fn add_and_enrol(app: &App, user: &str, new_password: &str) -> String {
    let v: Value =
        serde_json::from_str(&app.cli(&["--json", "admin", "add", user, "--role", "owner"]))
            .expect("admin add --json");
    let otp = v["one_time_password"].as_str().expect("one-time password");
    let (s, v) = post(
        app,
        "/admin/v1/login",
        json!({"user": user, "password": otp}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let secret = v["enrolment"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let code = totp(&secret).generate(now_secs());
    let body = json!({"user": user, "password": otp, "totp": code, "new_password": new_password});
    let (s, v) = post(app, "/admin/v1/enrol", body).await;
    assert_eq!(s, 200, "{v}");
    secret
}

/// A login with password and a current TOTP code: the HTTP status. (A code is good once per
/// 30 s step, so a second login waits for the next step.)
pub async fn login(app: &App, user: &str, password: &str, secret: &str, step_offset: u64) -> u16 {
    let code = totp(secret).generate(now_secs() + step_offset * 30);
    post(
        app,
        "/admin/v1/login",
        json!({"user": user, "password": password, "totp": code}),
    )
    .await
    .0
}
