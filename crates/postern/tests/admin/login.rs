//! Logging in: the TOTP login flow and enrolment, recovery codes, logout, lockout per account
//! and per address, session expiry, and TOTP secrets sealed with the KEK.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{App, Backend, run_blocking};
use crate::{NEW_PASSWORD, audited, call, enrol, get, now_secs, post, spawn, totp};

/// A code no step near now produces: certainly wrong.
fn wrong_code(secret: &str) -> String {
    let t = totp(secret);
    let now = now_secs();
    let near: Vec<String> = (0..5).map(|i| t.generate(now + i * 30 - 60)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

async fn login_flow(backend: Backend) {
    // The owner `postern init` created, on the one-time password it printed.
    let app = App::spawn(backend, &[]);
    let otp = app.admin_password.clone();
    let list: Value = serde_json::from_str(&app.cli(&["--json", "admin", "list"])).unwrap();
    assert_eq!(list[0]["username"], "admin", "{list}");
    assert_eq!(
        (list[0]["role"].as_str(), list[0]["pending"].as_bool()),
        (Some("owner"), Some(true))
    );
    // Before enrolment: no session, whatever is sent.
    let (s, v) = get(&app, "/admin/v1/me", "").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("not_logged_in"))
    );

    // Enrolment refuses a wrong code and a short password, and changes nothing.
    let (s, v) = post(
        &app,
        "/admin/v1/login",
        "",
        json!({"user": "admin", "password": otp}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let secret = v["enrolment"]["secret"].as_str().unwrap().to_owned();
    let (s, v) = post(
        &app,
        "/admin/v1/enrol",
        "",
        json!({"user": "admin", "password": otp, "totp": wrong_code(&secret), "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("invalid_credentials")),
        "{v}"
    );
    let (s, v) = post(
        &app,
        "/admin/v1/enrol",
        "",
        json!({"user": "admin", "password": otp, "totp": totp(&secret).generate(now_secs()), "new_password": "short"}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at least 12"),
        "{v}"
    );

    // A fresh enrolment (a new login replaces the unfinished one), then activation.
    let (secret, codes, cookie) = enrol(&app, "admin", &otp).await;
    let (s, v) = get(&app, "/admin/v1/me", &cookie).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["actor"].as_str(), v["role"].as_str()),
        (Some("admin:admin"), Some("owner"))
    );

    // The one-time password is gone; the new one needs a second factor.
    let (s, _) = post(
        &app,
        "/admin/v1/login",
        "",
        json!({"user": "admin", "password": otp}),
    )
    .await;
    assert_eq!(s, 401);
    let (s, v) = post(
        &app,
        "/admin/v1/login",
        "",
        json!({"user": "admin", "password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("totp_required")),
        "{v}"
    );
    let (s, v) = post(
        &app,
        "/admin/v1/login",
        "",
        json!({"user": "admin", "password": NEW_PASSWORD, "totp": wrong_code(&secret)}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("invalid_credentials")),
        "{v}"
    );
    // The next step's code is within the allowed drift; it works once.
    let next = totp(&secret).generate(now_secs() + 30);
    let body = json!({"user": "admin", "password": NEW_PASSWORD, "totp": next});
    let (s, v, c2) = call(&app, "POST", "/admin/v1/login", "", Some(body.clone())).await;
    assert_eq!(s, 200, "{v}");
    let c2 = c2.unwrap();
    let (s, _) = post(&app, "/admin/v1/login", "", body).await;
    assert_eq!(s, 401, "a TOTP code was accepted twice");

    // A recovery code works once.
    let rc = json!({"user": "admin", "password": NEW_PASSWORD, "recovery_code": codes[3].to_uppercase()});
    let (s, v) = post(&app, "/admin/v1/login", "", rc.clone()).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = post(&app, "/admin/v1/login", "", rc).await;
    assert_eq!(s, 401, "a recovery code was accepted twice");

    // The cookie is HttpOnly and SameSite=Strict; logout ends the session.
    let resp = reqwest::Client::new()
        .post(app.url("/admin/v1/login"))
        .json(&json!({"user": "admin", "password": NEW_PASSWORD, "recovery_code": codes[4]}))
        .send()
        .await
        .unwrap();
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age="),
        "{set}"
    );
    let (s, _, _) = call(&app, "POST", "/admin/v1/logout", &c2, None).await;
    assert_eq!(s, 200);
    let (s, v) = get(&app, "/admin/v1/me", &c2).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("invalid_session"))
    );
    let (s, _) = get(&app, "/admin/v1/me", &cookie).await;
    assert_eq!(s, 200, "logging out one session ended another");

    // Unknown fields and malformed JSON are refused.
    let (s, v) = post(
        &app,
        "/admin/v1/login",
        "",
        json!({"user": "admin", "pasword": "x"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("invalid_request")),
        "{v}"
    );
}

#[test]
fn totp_login_enrolment_recovery_codes_and_logout() {
    for backend in Backend::all() {
        run_blocking(login_flow(backend));
    }
}

async fn lockout(backend: Backend) {
    let (app, otp) = spawn(
        backend,
        &[
            ("POSTERN_ADMIN_MAX_FAILURES", "3"),
            ("POSTERN_ADMIN_LOCKOUT", "5s"),
            ("POSTERN_ADMIN_IP_MAX_FAILURES", "6"),
        ],
    );
    let (_, codes, _) = enrol(&app, "root", &otp).await;
    let wrong = json!({"user": "root", "password": "not the password", "recovery_code": codes[0]});
    for _ in 0..2 {
        let (s, _) = post(&app, "/admin/v1/login", "", wrong.clone()).await;
        assert_eq!(s, 401);
    }
    let (s, v) = post(&app, "/admin/v1/login", "", wrong).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (429, Some("account_locked")),
        "{v}"
    );
    // Locked: even the right password and code are refused, and the code is not spent.
    let right = json!({"user": "root", "password": NEW_PASSWORD, "recovery_code": codes[0]});
    let (s, v) = post(&app, "/admin/v1/login", "", right.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (429, Some("account_locked")),
        "{v}"
    );
    let list: Value = serde_json::from_str(&app.cli(&["--json", "admin", "list"])).unwrap();
    let root = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == "root")
        .unwrap();
    assert!(root["locked_until"].is_i64(), "{root}");

    let locked = audited(&app, "admin.login");
    assert!(
        locked
            .iter()
            .any(|e| e["detail"]["outcome"] == "locked" && e["actor"] == "admin:root"),
        "{locked:?}"
    );

    // After the lockout it works again.
    tokio::time::sleep(Duration::from_millis(5_300)).await;
    let (s, v) = post(&app, "/admin/v1/login", "", right).await;
    assert_eq!(s, 200, "{v}");

    // Per source address: six failures (any account, known or not) and it is refused.
    for i in 0..6 {
        let (s, v) = post(
            &app,
            "/admin/v1/login",
            "",
            json!({"user": format!("ghost{i}"), "password": "x", "totp": "123456"}),
        )
        .await;
        assert_eq!(s, 401, "{v}");
    }
    let ok = json!({"user": "root", "password": NEW_PASSWORD, "recovery_code": codes[1]});
    let (s, v) = post(&app, "/admin/v1/login", "", ok.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (429, Some("too_many_failures")),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(5_300)).await;
    let (s, v) = post(&app, "/admin/v1/login", "", ok).await;
    assert_eq!(s, 200, "{v}");
}

#[test]
fn failed_logins_lock_the_account_and_the_address_for_a_while() {
    for backend in Backend::all() {
        run_blocking(lockout(backend));
    }
}

#[test]
fn sessions_expire_after_their_lifetime_and_when_idle() {
    run_blocking(async {
        let (app, otp) = spawn(
            Backend::Sqlite,
            &[
                ("POSTERN_ADMIN_SESSION_TTL", "5s"),
                ("POSTERN_ADMIN_SESSION_IDLE", "3s"),
            ],
        );
        let (_, codes, cookie) = enrol(&app, "root", &otp).await;
        // In use every 0.7 s: alive past the idle timeout, until its lifetime ends.
        let started = Instant::now();
        let mut alive_past_idle = false;
        loop {
            let (s, v) = get(&app, "/admin/v1/me", &cookie).await;
            if s == 401 {
                assert_eq!(v["error"]["code"], "session_expired", "{v}");
                break;
            }
            assert_eq!(s, 200, "{v}");
            alive_past_idle |= started.elapsed() > Duration::from_millis(3_300);
            assert!(started.elapsed() < Duration::from_secs(30), "never expired");
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        assert!(
            alive_past_idle,
            "use did not keep the session from idling out"
        );
        // Unused: it ends after the idle timeout.
        let (s, _, c) = call(
            &app,
            "POST",
            "/admin/v1/login",
            "",
            Some(json!({"user": "root", "password": NEW_PASSWORD, "recovery_code": codes[0]})),
        )
        .await;
        assert_eq!(s, 200);
        let c = c.unwrap();
        let (s, _) = get(&app, "/admin/v1/me", &c).await;
        assert_eq!(s, 200);
        tokio::time::sleep(Duration::from_millis(3_300)).await;
        let (s, v) = get(&app, "/admin/v1/me", &c).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (401, Some("session_expired")),
            "{v}"
        );
    });
}

/// `(admins.totp_secret of root, every sealed secret row as text)` straight from the database.
async fn stored_totp(app: &App) -> (String, String) {
    use sqlx::{Connection, Row};
    let q_admin = "SELECT totp_secret FROM admins WHERE username = 'root'";
    let q_rows = "SELECT name, wrapped_key, ciphertext FROM secrets";
    let row_text = |name: String, w: String, c: String| format!("{name} {w} {c}\n");
    match &app.backend {
        Backend::Sqlite => {
            let path = app.dir.path().join("postern-data/postern.db");
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let col: String = sqlx::query(q_admin).fetch_one(&mut c).await.unwrap().get(0);
            let mut rows = String::new();
            for r in sqlx::query(q_rows).fetch_all(&mut c).await.unwrap() {
                rows += &row_text(r.get(0), r.get(1), r.get(2));
            }
            (col, rows)
        }
        Backend::Postgres(db) => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let col: String = sqlx::query(q_admin).fetch_one(&mut c).await.unwrap().get(0);
            let mut rows = String::new();
            for r in sqlx::query(q_rows).fetch_all(&mut c).await.unwrap() {
                rows += &row_text(r.get(0), r.get(1), r.get(2));
            }
            (col, rows)
        }
    }
}

async fn sealed_totp(backend: Backend) {
    use base64::Engine;
    let keys = tempfile::tempdir().unwrap();
    let kek = keys.path().join("kek");
    let mut k = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
    std::fs::write(&kek, base64::engine::general_purpose::STANDARD.encode(k)).unwrap();
    let (app, otp) = spawn(
        backend,
        &[("POSTERN_SECRETS_KEK_FILE", kek.to_str().unwrap())],
    );
    let (secret, _, _) = enrol(&app, "root", &otp).await;
    let next = totp(&secret).generate(now_secs() + 30);
    let login = json!({"user": "root", "password": NEW_PASSWORD, "totp": next});
    let (s, v) = post(&app, "/admin/v1/login", "", login).await;
    assert_eq!(s, 200, "{v}");
    // The account holds a reference; the sealed row does not hold the secret.
    let (col, rows) = stored_totp(&app).await;
    assert!(col.starts_with("secret:admin-totp."), "{col}");
    assert!(rows.contains(col.trim_start_matches("secret:")), "{rows}");
    assert!(
        !col.contains(&secret) && !rows.contains(&secret),
        "TOTP secret stored readable"
    );
    if let Backend::Sqlite = app.backend {
        let dir = app.dir.path().join("postern-data");
        for f in ["postern.db", "postern.db-wal"] {
            let bytes = std::fs::read(dir.join(f)).unwrap_or_default();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(!hay.contains(&secret), "{f} holds the TOTP secret");
        }
    }
}

#[test]
fn totp_secrets_are_sealed_with_the_kek_when_one_is_configured() {
    for backend in Backend::all() {
        run_blocking(sealed_totp(backend));
    }
}
