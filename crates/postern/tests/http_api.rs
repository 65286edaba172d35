//! The HTTP API, driven over the wire against the real binary, on both backends.
#![allow(clippy::unwrap_used)]

mod common;

use common::{App, Backend, files_in, simple_message};
use serde_json::json;

async fn send_and_deliver(backend: Backend) {
    let app = App::spawn(backend, &[]);
    let (code, body) = app.send(&app.key, simple_message("bob@example.org")).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["status"], "queued");
    let id = body["id"].as_str().expect("id").to_owned();
    let m = app.wait_status(&id, "delivered", 10).await;
    let kinds: Vec<&str> = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["queued", "attempted", "delivered"], "{m:#}");
    assert_eq!(m["recipients"][0]["status"], "delivered");
    let eml =
        std::fs::read_to_string(app.outbox().join(format!("{id}.eml"))).expect("delivered file");
    assert!(eml.contains("Subject: Hello"), "{eml}");
    assert!(eml.contains(m["message_id"].as_str().unwrap()), "{eml}");
}

#[tokio::test]
async fn send_and_deliver_sqlite() {
    send_and_deliver(Backend::Sqlite).await;
}

#[tokio::test]
async fn send_and_deliver_postgres() {
    send_and_deliver(Backend::Postgres(common::PgDb::create())).await;
}

async fn idempotency(backend: Backend) {
    let app = App::spawn(backend, &[]);
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value, key: Option<&str>| {
        let mut r = client
            .post(app.url("/v1/messages"))
            .bearer_auth(&app.key)
            .json(&body);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r.send()
    };
    let first = post(simple_message("a@example.org"), Some("order-1"))
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let first: serde_json::Value = first.json().await.unwrap();
    // Concurrent repeats (header and body forms) all get the first answer.
    let mut body_form = simple_message("a@example.org");
    body_form["idempotency_key"] = json!("order-1");
    let repeats = futures_join(vec![
        post(simple_message("a@example.org"), Some("order-1")),
        post(body_form.clone(), None),
        post(simple_message("a@example.org"), Some("order-1")),
    ])
    .await;
    for r in repeats {
        let r = r.unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap(), first);
    }
    // The same key with another request is refused, not silently replayed.
    let other = post(simple_message("someone-else@example.org"), Some("order-1"))
        .await
        .unwrap();
    assert_eq!(other.status(), 422);
    assert_eq!(
        other.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "idempotency_key_reused"
    );
    let id = first["id"].as_str().unwrap();
    app.wait_status(id, "delivered", 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(files_in(&app.outbox(), "eml").len(), 1, "sent exactly once");
}

async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    let handles: Vec<_> = fs.into_iter().map(Box::pin).collect();
    for h in handles {
        out.push(h.await);
    }
    out
}

#[tokio::test]
async fn idempotency_sqlite() {
    idempotency(Backend::Sqlite).await;
}

#[tokio::test]
async fn idempotency_postgres() {
    idempotency(Backend::Postgres(common::PgDb::create())).await;
}

async fn expect_error(resp: reqwest::Response, status: u16, code: &str) {
    let got = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn bad_input_gets_precise_errors_and_writes_nothing() {
    let app = App::spawn(Backend::Sqlite, &[("POSTERN_HTTP_MAX_BODY_BYTES", "4096")]);
    let c = reqwest::Client::new();
    let url = app.url("/v1/messages");
    let raw = |body: &str| {
        c.post(&url)
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body.to_owned())
    };

    expect_error(
        raw("{\"from\": ").send().await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    expect_error(raw("[1,2]").send().await.unwrap(), 422, "invalid_request").await;
    let mut unknown = simple_message("a@example.org");
    unknown["sbject"] = json!("typo");
    expect_error(
        c.post(&url)
            .bearer_auth(&app.key)
            .json(&unknown)
            .send()
            .await
            .unwrap(),
        422,
        "invalid_request",
    )
    .await;
    expect_error(
        c.post(&url)
            .bearer_auth(&app.key)
            .body(simple_message("a@example.org").to_string())
            .send()
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    for (field, value, code) in [
        ("to", json!(["not an address"]), "invalid_address"),
        (
            "to",
            json!(["a@example.org\r\nBcc: x@evil.test"]),
            "header_injection",
        ),
        ("from", json!("nobody"), "invalid_address"),
        (
            "subject",
            json!("Hi\r\nBcc: victim@example.com"),
            "header_injection",
        ),
        (
            "headers",
            json!({"X-Tag": "v\r\nBcc: victim@example.com"}),
            "header_injection",
        ),
        (
            "headers",
            json!({"From": "spoof@example.com"}),
            "reserved_header",
        ),
        ("headers", json!({"Bad Header": "x"}), "invalid_header_name"),
        (
            "headers",
            json!({"X-Ref": "1", "x-ref": "2"}),
            "duplicate_header",
        ),
        // One word longer than a line may be (998): nowhere to fold it.
        ("subject", json!("s".repeat(1000)), "header_too_long"),
        (
            "headers",
            json!({"X-Ref": "r".repeat(1000)}),
            "header_too_long",
        ),
        ("to", json!([]), "no_recipients"),
        // Distinct addresses (the default limit is 100).
        (
            "to",
            json!(
                (0..101)
                    .map(|i| format!("r{i}@example.org"))
                    .collect::<Vec<_>>()
            ),
            "too_many_recipients",
        ),
    ] {
        let mut m = simple_message("a@example.org");
        m[field] = value;
        expect_error(
            c.post(&url)
                .bearer_auth(&app.key)
                .json(&m)
                .send()
                .await
                .unwrap(),
            422,
            code,
        )
        .await;
    }
    let mut no_body = simple_message("a@example.org");
    no_body.as_object_mut().unwrap().remove("text");
    expect_error(
        c.post(&url)
            .bearer_auth(&app.key)
            .json(&no_body)
            .send()
            .await
            .unwrap(),
        422,
        "missing_body",
    )
    .await;
    let mut big = simple_message("a@example.org");
    big["text"] = json!("x".repeat(10_000));
    expect_error(
        c.post(&url)
            .bearer_auth(&app.key)
            .json(&big)
            .send()
            .await
            .unwrap(),
        413,
        "payload_too_large",
    )
    .await;

    // Keys: missing, malformed, well-formed but unknown, revoked.
    let other = app.new_key("acme");
    let id = other.split('_').nth(2).unwrap();
    app.cli(&["keys", "revoke", id]);
    let unknown = postern::domain::ApiKeySecret::generate(postern::domain::KeyMode::Live);
    let last = if app.key.ends_with('x') { 'y' } else { 'x' };
    let mistyped = format!("{}{last}", &app.key[..app.key.len() - 1]);
    for (key, code) in [
        (None, "missing_api_key"),
        (Some("nope"), "invalid_api_key"),
        (Some(mistyped.as_str()), "invalid_api_key"),
        (Some(unknown.expose()), "invalid_api_key"),
        (Some(other.as_str()), "revoked_api_key"),
    ] {
        let mut req = c.post(&url).json(&simple_message("a@example.org"));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        expect_error(req.send().await.unwrap(), 401, code).await;
    }

    // Unknown routes and methods answer in the same error shape.
    expect_error(
        c.get(app.url("/v1/nothing")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        c.delete(&url).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;

    // None of it was stored: the metrics count no message at all.
    let metrics = app.metrics().await;
    assert_eq!(common::stored_messages(&metrics), 0, "{metrics}");
    assert!(files_in(&app.outbox(), "eml").is_empty());

    // The scheme name is case-insensitive (RFC 9110 11.1).
    let r = c
        .post(&url)
        .header("authorization", format!("BEARER {}", app.key))
        .json(&simple_message("a@example.org"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn tenants_only_see_their_own_messages() {
    let app = App::spawn(Backend::Sqlite, &[]);
    let (_, body) = app.send(&app.key, simple_message("a@example.org")).await;
    let id = body["id"].as_str().unwrap();
    let other = app.new_key("other-tenant");
    let r = reqwest::Client::new()
        .get(app.url(&format!("/v1/messages/{id}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found").await;
    let r = reqwest::Client::new()
        .get(app.url("/v1/messages/not-a-uuid"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found").await;
}

#[tokio::test]
async fn health_readiness_metrics() {
    let app = App::spawn(Backend::Sqlite, &[]);
    let c = reqwest::Client::new();
    let h: serde_json::Value = c
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    let r = c.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r: serde_json::Value = r.json().await.unwrap();
    assert_eq!(r["checks"]["store"], "ok");
    let (_, body) = app.send(&app.key, simple_message("a@example.org")).await;
    app.wait_status(body["id"].as_str().unwrap(), "delivered", 10)
        .await;
    let m = app.metrics().await;
    assert!(
        m.contains("postern_messages_accepted_total{source=\"http\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("postern_queue_messages{status=\"delivered\"} 1")
            && m.contains("postern_queue_messages{status=\"sending\"} 0"),
        "{m}"
    );
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let mut app = App::spawn(Backend::Sqlite, &[]);
    let mut ids = Vec::new();
    for i in 0..50 {
        let (code, body) = app
            .send(&app.key, simple_message(&format!("u{i}@example.org")))
            .await;
        assert_eq!(code, 202);
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let status = app.terminate();
    assert!(status.success(), "exit status {status}");
    // Everything accepted is still there after a restart, and gets delivered.
    app.start();
    for id in &ids {
        app.wait_status(id, "delivered", 20).await;
    }
    assert_eq!(files_in(&app.outbox(), "eml").len(), 50);
}

/// `init` over a database that already has an owner (its config file lost) refuses and writes
/// nothing, rather than resetting the owner's password and TOTP; `--force` does reset it.
#[test]
fn init_over_a_database_already_set_up_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let init = |extra: &[&str]| {
        std::process::Command::new(common::BIN)
            .args(["init", "--json", "--dir"])
            .arg(dir.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let config = dir.path().join("postern.toml");
    assert!(init(&[]).status.success());
    let cert = std::fs::read(dir.path().join("postern-data/tls/cert.pem")).unwrap();
    std::fs::remove_file(&config).unwrap();
    let again = init(&[]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{err}");
    assert!(err.contains("already set up"), "{err}");
    assert!(!config.exists(), "no config written");
    assert!(dir.path().join("postern.kek").exists(), "the KEK kept");
    assert_eq!(
        std::fs::read(dir.path().join("postern-data/tls/cert.pem")).unwrap(),
        cert,
        "the certificate kept"
    );
    let forced = init(&["--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&forced.stdout).unwrap();
    assert!(v["admin_password"].as_str().is_some_and(|p| !p.is_empty()));
}

/// Tags given with a message are stored with it and shown with its status.
#[tokio::test]
async fn tags_are_kept_and_shown() {
    for backend in Backend::all() {
        let app = App::spawn(backend, &[]);
        let mut m = simple_message("a@example.org");
        m["tags"] = json!(["welcome", "campaign:é-2026"]);
        let (code, body) = app.send(&app.key, m).await;
        assert_eq!(code, 202, "{body}");
        let v = app.message(body["id"].as_str().unwrap()).await;
        assert_eq!(v["tags"], json!(["welcome", "campaign:é-2026"]), "{v}");
        let (_, body) = app.send(&app.key, simple_message("b@example.org")).await;
        let v = app.message(body["id"].as_str().unwrap()).await;
        assert_eq!(v["tags"], json!([]), "{v}");
    }
}
