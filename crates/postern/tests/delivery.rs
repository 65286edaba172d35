//! End-to-end delivery through a real third-party SMTP server (aiosmtpd): success, retry after
//! a temporary failure, bounces, expiry.
#![allow(clippy::unwrap_used)]

mod common;

use common::{App, Backend, Sink, simple_message};
use serde_json::json;

fn relay_env(sink: &Sink, extra: &[(&'static str, &'static str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("POSTERN_PROVIDERS_RELAY_TYPE".to_owned(), "smtp".to_owned()),
        (
            "POSTERN_PROVIDERS_RELAY_HOST".to_owned(),
            "127.0.0.1".to_owned(),
        ),
        (
            "POSTERN_PROVIDERS_RELAY_PORT".to_owned(),
            sink.port.to_string(),
        ),
        (
            "POSTERN_ROUTES_DEFAULT".to_owned(),
            r#"["relay"]"#.to_owned(),
        ),
        ("POSTERN_QUEUE_BACKOFF_BASE_SECS".to_owned(), "1".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn spawn(backend: Backend, env: &[(String, String)]) -> App {
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    App::spawn(backend, &refs)
}

/// Each recipient's address and status, in order.
fn recipient_states(m: &serde_json::Value) -> Vec<(&str, &str)> {
    m["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect()
}

fn kinds(m: &serde_json::Value) -> Vec<String> {
    m["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn relays_to_a_real_smtp_server(backend: Backend) {
    let sink = Sink::start(&[]);
    let app = spawn(backend, &relay_env(&sink, &[]));
    let mut ids = Vec::new();
    for i in 0..20 {
        let mut m = simple_message(&format!("user{i}@example.org"));
        m["cc"] = json!(["copy@example.net"]);
        m["bcc"] = json!(["audit@example.com"]);
        let (code, body) = app.send(&app.key, m).await;
        assert_eq!(code, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let m = app.wait_status(id, "delivered", 15).await;
        assert_eq!(m["recipients"].as_array().unwrap().len(), 3);
        assert!(
            m["recipients"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == "delivered"),
            "{m:#}"
        );
    }
    let got = sink.messages();
    assert_eq!(got.len(), 20);
    for (i, id) in ids.iter().enumerate() {
        let mid = app.message(id).await["message_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let copies: Vec<&String> = got.iter().filter(|m| m.contains(&mid)).collect();
        assert_eq!(copies.len(), 1, "exactly one copy of {mid}");
        let eml = copies[0];
        assert!(eml.contains(&format!("user{i}@example.org")), "{eml}");
        assert!(
            eml.contains("X-Sink-Rcpt-To: user") && eml.contains("audit@example.com"),
            "bcc in the envelope: {eml}"
        );
        let headers = eml.split("\r\n\r\n").next().unwrap();
        assert!(
            !headers.lines().any(|l| l.starts_with("Bcc:")),
            "no Bcc header: {eml}"
        );
    }
}

#[tokio::test]
async fn relays_to_a_real_smtp_server_sqlite() {
    relays_to_a_real_smtp_server(Backend::Sqlite).await;
}

#[tokio::test]
async fn relays_to_a_real_smtp_server_postgres() {
    relays_to_a_real_smtp_server(Backend::Postgres(common::PgDb::create())).await;
}

#[tokio::test]
async fn temporary_failure_is_retried_with_backoff() {
    let sink = Sink::start(&["--tempfail-first", "1"]);
    let app = spawn(Backend::Sqlite, &relay_env(&sink, &[]));
    let (_, body) = app.send(&app.key, simple_message("a@example.org")).await;
    let id = body["id"].as_str().unwrap();
    let m = app.wait_status(id, "delivered", 15).await;
    assert_eq!(m["attempts"], 2, "{m:#}");
    let k = kinds(&m);
    assert_eq!(k.first().map(String::as_str), Some("queued"));
    let deferred = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "deferred")
        .expect("a deferred event");
    assert!(
        deferred["detail"].as_str().unwrap().contains("451"),
        "{deferred}"
    );
    assert_eq!(k.last().map(String::as_str), Some("delivered"), "{k:?}");
    assert_eq!(sink.messages().len(), 1);
}

/// A 4xx to one RCPT (greylisting), or 552 ("too many recipients", RFC 5321 4.5.3.1.10),
/// defers that recipient only: the others are delivered in the same transaction.
#[tokio::test]
async fn a_recipient_deferred_at_rcpt_does_not_hold_back_the_others() {
    let sink = Sink::start(&[
        "--greylist-domain",
        "grey.example",
        "--too-many-domain",
        "full.example",
    ]);
    let app = spawn(Backend::Sqlite, &relay_env(&sink, &[]));
    let mut m = simple_message("ok@example.org");
    m["to"] = json!(["ok@example.org", "a@grey.example", "b@full.example"]);
    let (_, body) = app.send(&app.key, m).await;
    let id = body["id"].as_str().unwrap();
    let m = app.wait_status(id, "deferred", 15).await;
    let states = recipient_states(&m);
    assert_eq!(
        states,
        [
            ("ok@example.org", "delivered"),
            ("a@grey.example", "pending"),
            ("b@full.example", "pending")
        ],
        "{m}"
    );
    assert_eq!(m["attempts"], 1);
    let deferred: Vec<&str> = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "deferred")
        .filter_map(|e| e["recipient"].as_str())
        .collect();
    assert_eq!(deferred, ["a@grey.example", "b@full.example"], "{m}");
    assert_eq!(
        sink.messages().len(),
        1,
        "delivered once, to the accepted one"
    );
}

#[tokio::test]
async fn refused_recipient_bounces_and_the_others_are_delivered() {
    let sink = Sink::start(&["--reject-domain", "nowhere.example"]);
    let app = spawn(Backend::Sqlite, &relay_env(&sink, &[]));
    let mut m = simple_message("ok@example.org");
    m["to"] = json!(["ok@example.org", "ghost@nowhere.example"]);
    let (_, body) = app.send(&app.key, m).await;
    let id = body["id"].as_str().unwrap();
    let m = app.wait_status(id, "delivered", 15).await;
    let bounced = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "bounced")
        .expect("bounce event");
    assert_eq!(bounced["recipient"], "ghost@nowhere.example");
    assert!(
        bounced["detail"].as_str().unwrap().contains("550"),
        "{bounced}"
    );
    let states = recipient_states(&m);
    assert_eq!(
        states,
        [
            ("ok@example.org", "delivered"),
            ("ghost@nowhere.example", "bounced")
        ]
    );
    assert_eq!(m["attempts"], 1, "a permanent refusal is not retried");

    // Every recipient refused: the message bounces. (Another address: the first one is on
    // the suppression list now.)
    let (_, body) = app
        .send(&app.key, simple_message("ghost2@nowhere.example"))
        .await;
    let m = app
        .wait_status(body["id"].as_str().unwrap(), "bounced", 15)
        .await;
    assert_eq!(kinds(&m).last().map(String::as_str), Some("bounced"));
}

#[tokio::test]
async fn rejected_content_bounces_every_recipient() {
    let sink = Sink::start(&["--permfail-data"]);
    let app = spawn(Backend::Sqlite, &relay_env(&sink, &[]));
    let (_, body) = app.send(&app.key, simple_message("a@example.org")).await;
    let m = app
        .wait_status(body["id"].as_str().unwrap(), "bounced", 15)
        .await;
    let b = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "bounced")
        .unwrap();
    assert!(b["detail"].as_str().unwrap().contains("554"), "{b}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn message_expires_after_the_retry_window_with_a_reason() {
    let sink = Sink::start(&["--tempfail-first", "1000"]);
    let app = spawn(
        Backend::Sqlite,
        &relay_env(&sink, &[("POSTERN_QUEUE_RETRY_WINDOW_SECS", "3")]),
    );
    let (_, body) = app.send(&app.key, simple_message("a@example.org")).await;
    let m = app
        .wait_status(body["id"].as_str().unwrap(), "expired", 20)
        .await;
    assert!(m["attempts"].as_i64().unwrap() >= 2, "{m:#}");
    let e = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "expired")
        .unwrap();
    let why = e["detail"].as_str().unwrap();
    assert!(why.contains("retry window") && why.contains("451"), "{why}");
    assert_eq!(m["recipients"][0]["status"], "expired");
}

#[tokio::test]
async fn relay_down_then_up_delivers_everything_once() {
    let mut sink = Sink::start(&[]);
    let port = sink.port;
    sink.stop();
    let mut env = relay_env(&sink, &[]);
    env.retain(|(k, _)| k != "POSTERN_PROVIDERS_RELAY_PORT");
    env.push(("POSTERN_PROVIDERS_RELAY_PORT".into(), port.to_string()));
    let app = spawn(Backend::Sqlite, &env);
    let (_, body) = app.send(&app.key, simple_message("a@example.org")).await;
    let id = body["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let m = app.message(&id).await;
        if m["status"] == "deferred" {
            let d = m["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["kind"] == "deferred")
                .unwrap();
            assert!(d["detail"].as_str().unwrap().contains("connect"), "{d}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not deferred: {m:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The relay comes back on the same port: the retry reaches it, once.
    let back = Sink::start(&["--port", &port.to_string()]);
    app.wait_status(&id, "delivered", 15).await;
    assert_eq!(back.messages().len(), 1);
}

#[tokio::test]
async fn relay_over_starttls_with_auth_and_no_password_in_errors() {
    // A certificate from `postern init` serves as the relay's own.
    let certs = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["init", "--json", "--dir"])
        .arg(certs.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let tls = certs.path().join("postern-data/tls");
    let (cert, key) = (tls.join("cert.pem"), tls.join("key.pem"));
    let sink = Sink::start(&[
        "--tls",
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        "--auth",
        "relayuser:s3cret-pass",
    ]);
    let secure = [
        ("POSTERN_PROVIDERS_RELAY_TLS", "starttls"),
        (
            "POSTERN_PROVIDERS_RELAY_DANGER_ACCEPT_INVALID_CERTS",
            "true",
        ),
        ("POSTERN_PROVIDERS_RELAY_USERNAME", "relayuser"),
    ];
    let mut env = relay_env(&sink, &secure);
    env.push((
        "POSTERN_PROVIDERS_RELAY_PASSWORD".into(),
        "s3cret-pass".into(),
    ));
    let app = spawn(Backend::Sqlite, &env);
    let (_, body) = app.send(&app.key, simple_message("a@example.org")).await;
    app.wait_status(body["id"].as_str().unwrap(), "delivered", 15)
        .await;
    assert_eq!(sink.messages().len(), 1);

    // Wrong password: deferred with the server's refusal, and the password is nowhere in it.
    let mut env = relay_env(&sink, &secure);
    env.push((
        "POSTERN_PROVIDERS_RELAY_PASSWORD".into(),
        "wrong-pass-123".into(),
    ));
    let app = spawn(Backend::Sqlite, &env);
    let (_, body) = app.send(&app.key, simple_message("a@example.org")).await;
    let m = app
        .wait_status(body["id"].as_str().unwrap(), "deferred", 15)
        .await;
    let text = m.to_string();
    assert!(
        text.contains("AUTH refused") && text.contains("535"),
        "{m:#}"
    );
    assert!(!text.contains("wrong-pass-123"), "password leaked: {m:#}");
    let (ok, listed, _) = app.cli_raw(&["providers", "list"]);
    assert!(
        ok && listed.contains("relay") && !listed.contains("wrong-pass-123"),
        "{listed}"
    );
    let (ok, _, err) = app.cli_raw(&["providers", "test", "relay"]);
    assert!(
        !ok && err.contains("AUTH refused") && !err.contains("wrong-pass-123"),
        "{err}"
    );
}

/// SIGTERM waits for attempts in flight for `queue.drain_secs`, then stops them and exits:
/// a relay that never answers does not hold the process for the provider's whole timeout.
/// The claim is taken back, in doubt, at the next start.
#[tokio::test]
async fn sigterm_stops_an_attempt_that_outlasts_the_drain() {
    let sink = Sink::start(&["--hang-data"]);
    let mut app = spawn(
        Backend::Sqlite,
        &relay_env(
            &sink,
            &[
                ("POSTERN_PROVIDERS_RELAY_TIMEOUT_SECS", "120"),
                ("POSTERN_QUEUE_DRAIN_SECS", "1"),
            ],
        ),
    );
    let (_, body) = app.send(&app.key, simple_message("a@example.org")).await;
    let id = body["id"].as_str().unwrap().to_owned();
    app.wait_status(&id, "sending", 10).await;
    let started = std::time::Instant::now();
    let status = app.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "stopped {:?} after SIGTERM",
        started.elapsed()
    );
    app.start();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // Taken back, then claimed again at once (and left hanging again by this relay).
        let m = app.message(&id).await;
        if kinds(&m).contains(&"recovered".to_owned()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not recovered: {m}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
