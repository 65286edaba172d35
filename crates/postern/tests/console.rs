//! The web console, black-box against the spawned server: form-level tests over HTTP (CSRF
//! rejection, roles, bad input refused with nothing changed), and a headless Chromium run
//! through WebDriver (login with TOTP, kill switch with confirmation, held batch, release by
//! resume, delivery) that saves screenshots under `target/console-screenshots/`.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "support/console_client.rs"]
mod console_client;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::time::Duration;

use common::{App, Backend, free_port, run_blocking, simple_message, workspace_root};
use console_client::{Client, NEW_PASSWORD, add_admin, by_id, code, console_login, field};
use serde_json::Value;

fn key_ids(app: &App, tenant: &str) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&app.cli(&["--json", "keys", "list", "--tenant", tenant])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn csrf_and_bad_input(backend: Backend) {
    let app = App::spawn(backend, &[]);
    let otp = add_admin(&app, "root", "owner", None);
    // A login form without its token is refused before any password check.
    let anon = Client::new(&app);
    let (s, page) = anon
        .post("/console/login", &[("user", "root"), ("password", &otp)])
        .await;
    assert_eq!(s, 403, "{page}");
    // Without a session, pages and posts go to the login.
    assert_eq!(anon.get("/console/held").await.0, 303);
    let (s, _) = anon
        .post("/console/kill", &[("action", "pause"), ("confirm", "yes")])
        .await;
    assert_eq!(s, 303);

    // A wrong password is refused with the reason on the page.
    let token = field(&anon.get("/console/login").await.1, "login_csrf");
    let (s, page) = anon
        .post(
            "/console/login",
            &[
                ("login_csrf", &token),
                ("user", "root"),
                ("password", "wrong"),
                ("code", "123456"),
            ],
        )
        .await;
    assert_eq!(s, 401, "{page}");
    assert!(by_id(&page, "notice").contains("wrong user name"), "{page}");

    let (c, csrf) = console_login(&app, "root", &otp).await;
    let running = |page: &str| by_id(page, "kill-state").contains("running");
    // A post without the token, or with another one: 403, nothing paused.
    for token in [None, Some("0".repeat(64)), Some(csrf[..63].to_owned())] {
        let mut form = vec![("action", "pause"), ("confirm", "yes")];
        if let Some(t) = &token {
            form.push(("csrf", t));
        }
        let (s, page) = c.post("/console/kill", &form).await;
        assert_eq!(s, 403, "{page}");
        assert!(page.contains("CSRF"), "{page}");
    }
    assert!(running(&c.get("/console/kill").await.1));

    // Bad input in each form: a clear message, nothing changed.
    let (s, page) = c
        .post("/console/kill", &[("csrf", &csrf), ("action", "pause")])
        .await;
    assert_eq!(s, 422, "{page}");
    assert!(by_id(&page, "notice").contains("not confirmed"), "{page}");
    assert!(running(&page));

    let keys_before = key_ids(&app, "default");
    let (s, page) = c
        .post(
            "/console/keys",
            &[
                ("csrf", &csrf),
                ("tenant", "default"),
                ("scopes", "send,fly"),
            ],
        )
        .await;
    assert_eq!(s, 422, "{page}");
    assert!(by_id(&page, "notice").contains("unknown scope"), "{page}");
    let (s, page) = c
        .post(
            "/console/keys",
            &[("csrf", &csrf), ("tenant", "nobody"), ("scopes", "send")],
        )
        .await;
    assert_eq!(s, 404, "{page}");
    assert!(by_id(&page, "notice").contains("no tenant"), "{page}");
    let old = keys_before[0].clone();
    let (s, page) = c
        .post(
            &format!("/console/keys/{old}/rotate"),
            &[("csrf", &csrf), ("grace", "soon")],
        )
        .await;
    assert_eq!(s, 422, "{page}");
    assert!(by_id(&page, "notice").contains("grace"), "{page}");
    let (s, page) = c
        .post(&format!("/console/keys/{old}/revoke"), &[("csrf", &csrf)])
        .await;
    assert_eq!(s, 422, "{page}");
    assert_eq!(
        key_ids(&app, "default"),
        keys_before,
        "a bad form changed keys"
    );

    let (s, page) = c
        .post(
            "/console/providers",
            &[("csrf", &csrf), ("from", "nope"), ("to", "local")],
        )
        .await;
    assert_eq!(s, 422, "{page}");
    assert!(by_id(&page, "notice").contains("no provider"), "{page}");
    assert!(
        page.contains("<li class=\"muted\">none</li>"),
        "a move appeared: {page}"
    );

    let (s, page) = c
        .post("/console/held/purge", &[("csrf", &csrf), ("all", "yes")])
        .await;
    assert_eq!(s, 422, "{page}");
    assert!(by_id(&page, "notice").contains("reason"), "{page}");
    let (s, page) = c.post("/console/held/release", &[("csrf", &csrf)]).await;
    assert_eq!(s, 422, "{page}");
    assert!(by_id(&page, "notice").contains("say which"), "{page}");

    // A good form works, is audited, and a new key's secret is shown once.
    let (s, page) = c
        .post(
            "/console/keys",
            &[("csrf", &csrf), ("tenant", "default"), ("scopes", "send")],
        )
        .await;
    assert_eq!(s, 200, "{page}");
    let secret = by_id(&page, "new-secret");
    assert!(secret.starts_with("pst_live_"), "{secret}");
    let (code_, _) = app.send(&secret, simple_message("bob@example.org")).await;
    assert_eq!(code_, 202);
    assert!(!c.get("/console/keys").await.1.contains(&secret));
    let (s, page) = c
        .post(
            "/console/kill",
            &[("csrf", &csrf), ("action", "pause"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert!(
        by_id(&page, "kill-state").contains("SENDING PAUSED"),
        "{page}"
    );
    // Held messages: release and purge (with its reason) act on the filter given.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, v) = app
        .send(&app.key, simple_message("carol@example.org"))
        .await;
    assert_eq!(v["status"], "held", "{v}");
    let (s, page) = c
        .post(
            "/console/held/release",
            &[("csrf", &csrf), ("tenant", "default")],
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert!(
        by_id(&page, "notice").contains("released 1 message(s)"),
        "{page}"
    );
    let (_, v) = app.send(&app.key, simple_message("dave@example.org")).await;
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, page) = c
        .post(
            "/console/held/purge",
            &[("csrf", &csrf), ("all", "yes"), ("reason", "test traffic")],
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert!(by_id(&page, "notice").contains("purged"), "{page}");
    assert_eq!(app.message(&id).await["status"], "purged");
    let (_, page) = c.get("/console/audit").await;
    assert!(page.contains("admin:root"), "{page}");
    assert!(
        page.contains("held.purge") && page.contains("test traffic"),
        "{page}"
    );
    assert!(
        page.contains("key.create") && page.contains(">pause<"),
        "{page}"
    );
}

#[test]
fn console_forms_need_csrf_and_refuse_bad_input_sqlite() {
    run_blocking(csrf_and_bad_input(Backend::Sqlite));
}

#[test]
fn console_forms_need_csrf_and_refuse_bad_input_postgres() {
    run_blocking(csrf_and_bad_input(
        Backend::Postgres(common::PgDb::create()),
    ));
}

async fn roles() {
    let app = App::spawn(Backend::Sqlite, &[]);
    let other_key = app.new_key("other");
    let default_keys = key_ids(&app, "default");
    let other_keys = key_ids(&app, "other");

    // An auditor sees every page without a single form that changes things, and its posts
    // are refused.
    let otp = add_admin(&app, "watcher", "auditor", None);
    let (c, csrf) = console_login(&app, "watcher", &otp).await;
    for path in [
        "/console/overview",
        "/console/providers",
        "/console/guard",
        "/console/held",
        "/console/keys",
        "/console/kill",
        "/console/broadcast",
        "/console/audit",
    ] {
        let (s, page) = c.get(path).await;
        assert_eq!(s, 200, "{path}: {page}");
        // The logout form only.
        assert_eq!(page.matches("method=\"post\"").count(), 1, "{path}: {page}");
        assert!(!page.contains("kill-button"), "{path}");
    }
    for (path, form) in [
        (
            "/console/kill",
            vec![("action", "pause"), ("confirm", "yes")],
        ),
        (
            "/console/keys",
            vec![("tenant", "default"), ("scopes", "send")],
        ),
        ("/console/held/release", vec![("all", "yes")]),
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let (s, page) = c.post(path, &form).await;
        assert_eq!(s, 403, "{path}: {page}");
        assert!(page.contains("read-only"), "{page}");
    }
    assert!(by_id(&c.get("/console/kill").await.1, "kill-state").contains("running"));
    assert_eq!(key_ids(&app, "default"), default_keys);
    // Logging out ends the session.
    assert_eq!(c.post("/console/logout", &[("csrf", &csrf)]).await.0, 303);
    assert_eq!(c.get("/console/overview").await.0, 303);

    // A tenant-admin sees its tenant's keys only, cannot act on another's, and its kill
    // switch pauses its own tenant.
    let otp = add_admin(&app, "other-admin", "tenant-admin", Some("other"));
    let (c, csrf) = console_login(&app, "other-admin", &otp).await;
    let (_, page) = c.get("/console/keys").await;
    assert!(page.contains(&other_keys[0]), "{page}");
    assert!(!page.contains(&default_keys[0]), "{page}");
    let (s, page) = c
        .post(
            &format!("/console/keys/{}/rotate", default_keys[0]),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(s, 403, "{page}");
    let (s, page) = c.get("/console/audit").await;
    assert_eq!(s, 403, "{page}");
    let (s, page) = c
        .post(
            "/console/kill",
            &[("csrf", &csrf), ("action", "pause"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert!(
        by_id(&page, "kill-state").contains("tenant other"),
        "{page}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, v) = app.send(&other_key, simple_message("a@example.org")).await;
    assert_eq!(v["status"], "held", "{v}");
    let (_, v) = app.send(&app.key, simple_message("b@example.org")).await;
    assert_eq!(
        v["status"], "queued",
        "the other tenant was paused too: {v}"
    );
}

#[test]
fn console_roles_auditor_read_only_tenant_admin_confined() {
    run_blocking(roles());
}

/// Headless Chromium: log in with TOTP, press the kill switch (confirming) and see a send
/// held, see the held batch, a bad purge refused, resume and see the batch delivered.
async fn browser_flow() {
    let app = App::spawn(Backend::Sqlite, &[]);
    let otp = add_admin(&app, "ops", "operator", None);
    let shots = workspace_root().join("target/console-screenshots");
    let b = webdriver::Browser::start(free_port(), shots).await;

    b.goto(&app.url("/console/login")).await;
    b.fill("#f-user", "ops").await;
    b.fill("#f-password", &otp).await;
    b.click("#login button[type=submit]").await;
    let secret = b.text("#totp-secret").await;
    assert!(b.text("#otpauth").await.contains(&secret));
    b.screenshot("01-enrolment").await;
    b.fill("#f-password", &otp).await;
    b.fill("#f-code", &code(&secret)).await;
    b.fill("#f-new", NEW_PASSWORD).await;
    b.click("#enrol button[type=submit]").await;
    b.wait_text("h1", "Overview").await;
    b.screenshot("02-overview").await;

    // The kill switch: a big button, then a confirmation.
    b.goto(&app.url("/console/kill")).await;
    b.click("#kill-button").await;
    b.find("#kill-yes").await;
    assert!(b.text("#kill-state").await.contains("running"));
    b.screenshot("03-kill-confirm").await;
    b.fill("#f-reason", "incident drill").await;
    b.click("#kill-yes").await;
    b.wait_text("#kill-state", "SENDING PAUSED").await;
    b.screenshot("04-paused").await;

    // Sending stopped: sends are accepted and held.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ids = Vec::new();
    for to in ["a@example.org", "b@example.org", "c@example.net"] {
        let (code_, v) = app.send(&app.key, simple_message(to)).await;
        assert_eq!((code_, v["status"].as_str()), (202, Some("held")), "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }

    // The held batch: count, domains, subjects, a preview.
    b.goto(&app.url("/console/held")).await;
    b.wait_text("#held-total", "3").await;
    assert!(b.text("#held-domains").await.contains("example.org — 2"));
    assert!(b.text("#held-subjects").await.contains("Hello"));
    assert!(b.text("#held-pauses").await.contains("incident drill"));
    b.screenshot("05-held").await;
    b.click("#held a").await;
    b.wait_text("#subject", "Hello").await;
    assert!(b.text("#raw").await.contains("Hi there"));

    // Bad input: a purge without a reason is refused, nothing purged.
    b.goto(&app.url("/console/held")).await;
    b.click("#purge-all").await;
    b.click("#purge button[type=submit]").await;
    b.wait_text("#notice", "reason").await;
    assert_eq!(b.text("#held-total").await, "3");
    b.screenshot("06-bad-purge").await;

    // Resume (confirmed): the batch is released in order and delivered.
    b.goto(&app.url("/console/kill")).await;
    b.click("#kill-button").await;
    b.click("#kill-yes").await;
    b.wait_text("#notice", "3 held message(s) released").await;
    b.screenshot("07-resumed").await;
    for id in &ids {
        app.wait_status(id, "delivered", 60).await;
    }
    b.goto(&app.url("/console/overview")).await;
    b.wait_text("#depth-held", "0").await;
    b.screenshot("08-overview-after").await;
    assert!(b.url().await.ends_with("/console/overview"));
}

#[test]
fn console_in_headless_chromium() {
    run_blocking(browser_flow());
}
