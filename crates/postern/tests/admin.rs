//! The admin API, black-box against the spawned server on SQLite and PostgreSQL: the TOTP
//! login flow (codes computed with totp-rs from the enrolment secret), recovery codes,
//! lockout, session expiry, roles and admin tokens, and the operations (route move, pause and
//! resume, held messages, suppressions) with bad input refused and nothing changed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{App, Backend, Sink, run_blocking, simple_message};
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

fn token(app: &App, args: &[&str]) -> String {
    let mut all = vec!["--json", "admin", "token", "create"];
    all.extend_from_slice(args);
    let v: Value = serde_json::from_str(&app.cli(&all)).unwrap();
    let t = v["token"].as_str().unwrap().to_owned();
    assert!(t.starts_with("pst_admin_"), "{t}");
    t
}

async fn roles(backend: Backend) {
    let (app, otp) = spawn(backend, &[]);
    let (_, _, owner) = enrol(&app, "root", &otp).await;
    app.cli(&["tenants", "add", "acme"]);
    app.cli(&["tenants", "add", "globex"]);
    let auditor = token(&app, &["--name", "audit", "--role", "auditor"]);
    let acme = token(
        &app,
        &[
            "--name",
            "acme-admin",
            "--role",
            "tenant-admin",
            "--tenant",
            "acme",
        ],
    );
    // An operator token made through the API by the owner.
    let (s, v) = post(
        &app,
        "/admin/v1/tokens",
        &owner,
        json!({"name": "ops", "role": "operator"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let operator = v["token"].as_str().unwrap().to_owned();

    // The auditor reads everything and changes nothing.
    let (s, v) = get(&app, "/admin/v1/tenants", &auditor).await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");
    for (path, body) in [
        ("/admin/v1/tenants", json!({"name": "initech"})),
        ("/admin/v1/pause", json!({"scope": "all"})),
        ("/admin/v1/keys", json!({"tenant": "acme"})),
        (
            "/admin/v1/suppressions",
            json!({"tenant": "acme", "addresses": ["a@b.example"]}),
        ),
        ("/admin/v1/held/purge", json!({"all": true, "reason": "x"})),
        (
            "/admin/v1/routes/move",
            json!({"from": "local", "to": "local"}),
        ),
    ] {
        let (s, v) = post(&app, path, &auditor, body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some("read_only")),
            "{path}: {v}"
        );
    }
    let (_, v) = get(&app, "/admin/v1/tenants", &owner).await;
    assert_eq!(
        v.as_array().unwrap().len(),
        3,
        "an auditor changed something: {v}"
    );

    // Only an owner manages admins and tokens.
    let (s, v) = post(
        &app,
        "/admin/v1/tokens",
        &operator,
        json!({"name": "x", "role": "owner"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("owner_only")),
        "{v}"
    );
    let (s, v) = post(
        &app,
        "/admin/v1/admins",
        &owner,
        json!({"name": "carol", "role": "auditor"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["one_time_password"].as_str().unwrap().len() >= 16);

    // The tenant-admin sees and acts on its tenant only.
    let (s, v) = get(&app, "/admin/v1/tenants", &acme).await;
    assert_eq!(s, 200);
    assert_eq!(v, json!([v[0].clone()]));
    assert_eq!(v[0]["name"], "acme");
    let (s, v) = post(
        &app,
        "/admin/v1/keys",
        &acme,
        json!({"tenant": "acme", "scopes": ["send"]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["secret"].as_str().unwrap().starts_with("pst_live_"));
    let globex_key = app.new_key("globex");
    let globex_id = globex_key.split('_').nth(2).unwrap();
    for (method, path, body) in [
        ("GET", "/admin/v1/keys?tenant=globex".to_owned(), None),
        (
            "POST",
            "/admin/v1/keys".to_owned(),
            Some(json!({"tenant": "globex"})),
        ),
        (
            "POST",
            format!("/admin/v1/keys/{globex_id}/revoke"),
            Some(json!({})),
        ),
        (
            "POST",
            "/admin/v1/suppressions".to_owned(),
            Some(json!({"tenant": "globex", "addresses": ["a@b.example"]})),
        ),
        (
            "POST",
            "/admin/v1/pause".to_owned(),
            Some(json!({"scope": "all"})),
        ),
        (
            "POST",
            "/admin/v1/pause".to_owned(),
            Some(json!({"scope": "tenant", "target": "globex"})),
        ),
        (
            "POST",
            "/admin/v1/pause".to_owned(),
            Some(json!({"scope": "key", "target": globex_id})),
        ),
        (
            "POST",
            "/admin/v1/tenants".to_owned(),
            Some(json!({"name": "initech"})),
        ),
        (
            "PUT",
            "/admin/v1/routes/globex".to_owned(),
            Some(json!({"providers": ["local"]})),
        ),
    ] {
        let (s, v, _) = call(&app, method, &path, &acme, body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some("tenant_forbidden")),
            "{method} {path}: {v}"
        );
    }
    let (code, _) = app
        .send(&globex_key, simple_message("bob@example.org"))
        .await;
    assert_eq!(code, 202, "the tenant-admin revoked another tenant's key");
    // Its own tenant: pause (named or implied) and resume.
    let (s, v) = post(
        &app,
        "/admin/v1/pause",
        &acme,
        json!({"scope": "tenant", "reason": "check"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["paused"]["actor"].as_str().unwrap(),
        format!("token:{}", acme.split('_').nth(2).unwrap())
    );
    let (_, v) = get(&app, "/admin/v1/pauses", &auditor).await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let (s, _) = post(
        &app,
        "/admin/v1/resume",
        &acme,
        json!({"scope": "tenant", "target": "acme"}),
    )
    .await;
    assert_eq!(s, 200);

    // Changes are recorded under the token or account that made them; refused ones are not.
    let pauses = audited(&app, "pause");
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    assert_eq!(
        pauses[0]["actor"].as_str().unwrap(),
        format!("token:{}", acme.split('_').nth(2).unwrap())
    );
    assert_eq!(pauses[0]["source_ip"], "127.0.0.1");
    assert_eq!(pauses[0]["reason"], "check");
    let tokens = audited(&app, "token.create");
    assert!(
        tokens.iter().any(|e| e["actor"] == "admin:root"),
        "{tokens:?}"
    );
    assert!(
        audited(&app, "tenant.add")
            .iter()
            .all(|e| !e["target"].as_str().unwrap().contains("initech"))
    );

    // Revoked and malformed tokens are refused.
    let acme_id = acme.split('_').nth(2).unwrap().to_owned();
    app.cli(&["admin", "token", "revoke", &acme_id]);
    let (s, v) = get(&app, "/admin/v1/tenants", &acme).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("invalid_admin_token")),
        "{v}"
    );
    let (s, _) = get(&app, "/admin/v1/tenants", &app.key).await;
    assert_eq!(s, 401, "an API key opened the admin API");
    let (s, _) = app.send(&operator, simple_message("bob@example.org")).await;
    assert_eq!(s, 401, "an admin token sent mail");
}

#[test]
fn roles_and_admin_tokens_confine_what_each_admin_may_do() {
    for backend in Backend::all() {
        run_blocking(roles(backend));
    }
}

async fn wait_status(app: &App, key: &str, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = reqwest::Client::new()
            .get(app.url(&format!("/v1/messages/{id}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        if v["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never {status}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn operations(backend: Backend) {
    let (app, _) = spawn(backend, &[]);
    let op = token(&app, &["--name", "ops", "--role", "operator"]);
    let key = app.new_key("acme");

    // Pause a tenant through the API: its sends are held; resume releases them.
    let (s, v) = post(
        &app,
        "/admin/v1/pause",
        &op,
        json!({"scope": "tenant", "target": "acme", "reason": "review"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, v) = app.send(&key, simple_message("bob@example.org")).await;
    assert_eq!((code, v["status"].as_str()), (202, Some("held")), "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, v) = get(&app, "/admin/v1/held?tenant=acme", &op).await;
    assert_eq!((s, v["total"].as_i64()), (200, Some(1)), "{v}");
    // A purge without a reason, or release without a scope: refused, nothing changed.
    let (s, v) = post(&app, "/admin/v1/held/purge", &op, json!({"tenant": "acme"})).await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("reason"),
        "{v}"
    );
    let (s, _) = post(&app, "/admin/v1/held/release", &op, json!({})).await;
    assert_eq!(s, 422);
    let (_, v) = get(&app, "/admin/v1/held", &op).await;
    assert_eq!(v["total"], 1);
    let (s, v) = post(
        &app,
        "/admin/v1/resume",
        &op,
        json!({"scope": "tenant", "target": "acme"}),
    )
    .await;
    assert_eq!((s, v["released"].as_i64()), (200, Some(1)), "{v}");
    wait_status(&app, &key, &id, "delivered").await;
    // A purge through the API names the token and the reason, on the message and in the log.
    let acme = json!({"scope": "tenant", "target": "acme"});
    let (s, _) = post(&app, "/admin/v1/pause", &op, acme.clone()).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, v) = app.send(&key, simple_message("carol@example.org")).await;
    assert_eq!(v["status"], "held", "{v}");
    let purged_id = v["id"].as_str().unwrap().to_owned();
    let purge = json!({"tenant": "acme", "reason": "spam run"});
    let (s, v) = post(&app, "/admin/v1/held/purge", &op, purge).await;
    assert_eq!((s, v["purged"].as_i64()), (200, Some(1)), "{v}");
    wait_status(&app, &key, &purged_id, "purged").await;
    let (s, _) = post(&app, "/admin/v1/resume", &op, acme).await;
    assert_eq!(s, 200);

    // Suppressions: add, list, send (suppressed), remove.
    let (s, v) = post(
        &app,
        "/admin/v1/suppressions",
        &op,
        json!({"tenant": "acme", "addresses": ["Eve@Example.org"], "reason": "asked"}),
    )
    .await;
    assert_eq!((s, v["added"].as_i64()), (200, Some(1)), "{v}");
    let (_, v) = get(&app, "/admin/v1/suppressions?tenant=acme", &op).await;
    assert_eq!(v[0]["address"], "eve@example.org", "{v}");
    let (_, v) = app.send(&key, simple_message("eve@example.org")).await;
    assert_eq!(v["status"], "suppressed");
    let (s, v) = post(
        &app,
        "/admin/v1/suppressions/remove",
        &op,
        json!({"tenant": "acme", "addresses": ["eve@example.org"]}),
    )
    .await;
    assert_eq!((s, v["removed"].as_i64()), (200, Some(1)), "{v}");
    let (_, v) = get(&app, "/admin/v1/suppressions?tenant=acme", &op).await;
    assert_eq!(v, json!([]));
    // CSV: a bad row imports nothing; a good file imports; export gives it back.
    let csv = |body: &'static str| {
        reqwest::Client::new()
            .post(app.url("/admin/v1/suppressions/import?tenant=acme"))
            .bearer_auth(&op)
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };
    let r = csv("address,reason\na@example.org,x\nnot-an-address,y\n")
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("line 3"));
    let (_, v) = get(&app, "/admin/v1/suppressions?tenant=acme", &op).await;
    assert_eq!(v, json!([]), "a bad CSV imported something");
    let r = csv("address,reason\na@example.org,x\nb@example.org,y\n")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, text) = get(&app, "/admin/v1/suppressions/export?tenant=acme", &op).await;
    assert_eq!(s, 200);
    let text = text.as_str().unwrap();
    assert!(
        text.starts_with("address,reason,source,detail,created_at"),
        "{text}"
    );
    assert!(
        text.contains("a@example.org,x,import") && text.contains("b@example.org,y,import"),
        "{text}"
    );

    // Bad input: clear 4xx, nothing changed.
    for (path, body, code) in [
        (
            "/admin/v1/suppressions",
            json!({"tenant": "acme", "addresses": ["nope"]}),
            422,
        ),
        (
            "/admin/v1/suppressions",
            json!({"tenant": "ghost", "addresses": ["a@b.example"]}),
            404,
        ),
        ("/admin/v1/pause", json!({"scope": "everything"}), 422),
        (
            "/admin/v1/pause",
            json!({"scope": "channel", "target": "pigeon"}),
            422,
        ),
        (
            "/admin/v1/pause",
            json!({"scope": "all", "why": "typo"}),
            422,
        ),
        (
            "/admin/v1/routes/move",
            json!({"from": "local", "to": "nosuch"}),
            422,
        ),
        ("/admin/v1/tenants", json!({"name": "acme"}), 409),
        (
            "/admin/v1/keys",
            json!({"tenant": "acme", "scopes": ["teleport"]}),
            422,
        ),
        (
            "/admin/v1/keys",
            json!({"tenant": "acme", "allow_ips": ["nowhere"]}),
            422,
        ),
    ] {
        let (s, v) = post(&app, path, &op, body.clone()).await;
        assert_eq!(s, code, "{path} {body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
    let (_, v) = get(&app, "/admin/v1/pauses", &op).await;
    assert_eq!(v, json!([]));
    let (_, v) = get(&app, "/admin/v1/routes", &op).await;
    assert_eq!(v["moves"], json!([]), "{v}");
    let (_, v) = get(&app, "/admin/v1/suppressions?tenant=acme", &op).await;
    assert_eq!(v.as_array().unwrap().len(), 2);
    let r = reqwest::Client::new()
        .post(app.url("/admin/v1/pause"))
        .bearer_auth(&op)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Keys through the API: create, rotate, revoke.
    let (s, v) = post(
        &app,
        "/admin/v1/keys",
        &op,
        json!({"tenant": "acme", "rate_per_sec": 5.0, "expires": "30d"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let kid = v["id"].as_str().unwrap().to_owned();
    let (s, v) = post(
        &app,
        &format!("/admin/v1/keys/{kid}/rotate"),
        &op,
        json!({"grace": "1h"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = post(
        &app,
        &format!("/admin/v1/keys/{kid}/revoke"),
        &op,
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    let (_, v) = get(&app, "/admin/v1/keys?tenant=acme", &op).await;
    let row = v
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == kid.as_str())
        .unwrap()
        .clone();
    assert!(
        row["revoked_at"].is_i64() && row["successor_id"].is_string(),
        "{row}"
    );
    let (s, v) = get(&app, "/admin/v1/providers", &op).await;
    assert_eq!(s, 200);
    assert_eq!(
        (v[0]["name"].as_str(), v[0]["health"].as_str()),
        (Some("local"), Some("healthy")),
        "{v}"
    );
    let (s, _) = get(&app, "/admin/v1/alerts", &op).await;
    assert_eq!(s, 200);

    // Every change above is in the audit log under the token, from this address.
    let op_actor = format!("token:{}", op.split('_').nth(2).unwrap());
    let log = audit_log(&app);
    for action in [
        "pause",
        "resume",
        "held.purge",
        "suppression.add",
        "suppression.remove",
        "suppression.import",
        "key.create",
        "key.rotate",
        "key.revoke",
    ] {
        // (The CLI's own acts in this test are recorded as `cli:<user>`, without an address.)
        let found = log.iter().any(|e| {
            e["action"] == action
                && e["actor"] == op_actor.as_str()
                && e["source_ip"] == "127.0.0.1"
        });
        assert!(found, "no {action} by {op_actor} in {log:?}");
    }
    let purge = log.iter().find(|e| e["action"] == "held.purge").unwrap();
    assert_eq!(
        (purge["reason"].as_str(), purge["target"].as_str()),
        (Some("spam run"), Some("tenant:acme"))
    );
    // Refused requests changed nothing and recorded nothing.
    assert!(!log.iter().any(|e| e["action"] == "route.move"), "{log:?}");
}

#[test]
fn pause_held_suppressions_and_keys_through_the_api() {
    for backend in Backend::all() {
        run_blocking(operations(backend));
    }
}

#[test]
fn route_move_through_the_api_moves_deferred_messages_and_undoes() {
    run_blocking(async {
        // The primary defers everything; its messages would wait a minute for their retry.
        let primary = Sink::start(&["--tempfail-first", "1000000"]);
        let backup = Sink::start(&[]);
        let mut env = vec![];
        for (name, sink) in [("PRIMARY", &primary), ("BACKUP", &backup)] {
            env.push((format!("POSTERN_PROVIDERS_{name}_TYPE"), "smtp".to_owned()));
            env.push((format!("POSTERN_PROVIDERS_{name}_HOST"), "127.0.0.1".into()));
            env.push((
                format!("POSTERN_PROVIDERS_{name}_PORT"),
                sink.port.to_string(),
            ));
        }
        env.push((
            "POSTERN_ROUTES_DEFAULT".into(),
            r#"["primary", "backup"]"#.into(),
        ));
        env.push(("POSTERN_QUEUE_BACKOFF_BASE_SECS".into(), "60".into()));
        let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (app, _) = spawn(Backend::Sqlite, &refs);
        let op = token(&app, &["--name", "ops", "--role", "operator"]);
        // Three, fewer than the five failures in a row that would close the primary by itself.
        let mut ids = vec![];
        for i in 0..3 {
            let (code, v) = app
                .send(&app.key, simple_message(&format!("r{i}@example.org")))
                .await;
            assert_eq!(code, 202);
            ids.push(v["id"].as_str().unwrap().to_owned());
        }
        for id in &ids {
            app.wait_status(id, "deferred", 30).await;
        }
        let (s, v) = post(
            &app,
            "/admin/v1/routes/move",
            &op,
            json!({"from": "primary", "to": "backup"}),
        )
        .await;
        assert_eq!((s, v["in_force"].as_bool()), (200, Some(true)), "{v}");
        for id in &ids {
            app.wait_status(id, "delivered", 30).await;
        }
        assert_eq!(backup.messages().len(), 3);
        assert_eq!(primary.messages().len(), 0);
        let (_, v) = get(&app, "/admin/v1/routes", &op).await;
        assert_eq!(v["moves"][0]["from"], "primary", "{v}");
        // Moving back undoes it.
        let (s, v) = post(
            &app,
            "/admin/v1/routes/move",
            &op,
            json!({"from": "backup", "to": "primary"}),
        )
        .await;
        assert_eq!((s, v["in_force"].as_bool()), (200, Some(false)), "{v}");
        let (_, v) = get(&app, "/admin/v1/routes", &op).await;
        assert_eq!(v["moves"], json!([]), "{v}");
        let moves = audited(&app, "route.move");
        assert_eq!(moves.len(), 2, "{moves:?}");
        assert_eq!(
            (
                moves[0]["target"].as_str(),
                moves[0]["detail"]["in_force"].as_bool()
            ),
            (Some("provider:primary"), Some(true))
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
