//! Feedback ingestion, end to end: outgoing mail carries a VERP return path; a bounce sent back
//! to the bounce listener (SMTP) maps to its message and suppresses the address; a complaint
//! posted to `POST /v1/feedback/raw` maps by Message-ID; feedback about mail Postern never sent
//! is kept as an orphan; bad input gets a precise error.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{App, Backend, Sink, run_blocking, simple_message};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn spawn(backend: Backend, sink: &Sink) -> App {
    let port = sink.port.to_string();
    App::spawn(
        backend,
        &[
            ("POSTERN_PROVIDERS_RELAY_TYPE", "smtp"),
            ("POSTERN_PROVIDERS_RELAY_HOST", "127.0.0.1"),
            ("POSTERN_PROVIDERS_RELAY_PORT", &port),
            ("POSTERN_ROUTES_DEFAULT", r#"["relay"]"#),
            ("POSTERN_FEEDBACK_BOUNCE_DOMAIN", "bounces.example"),
            ("POSTERN_FEEDBACK_LISTEN", "127.0.0.1:0"),
        ],
    )
}

fn bounce_listener(app: &App) -> String {
    let info = app.dir.path().join("postern-data/serve.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(info).unwrap()).unwrap();
    v["bounces"].as_str().unwrap().to_owned()
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

/// Delivers `data` over plain SMTP, as a reporting MTA would; returns the final reply.
async fn smtp_deliver(addr: &str, from: &str, to: &str, data: &str) -> (String, String) {
    let mut s = BufReader::new(TcpStream::connect(addr).await.unwrap());
    let mut replies = vec![];
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    let mut rcpt_reply = String::new();
    for cmd in [
        "EHLO mx.example.org".to_owned(),
        format!("MAIL FROM:<{from}>"),
        format!("RCPT TO:<{to}>"),
        "DATA".to_owned(),
        format!("{data}\r\n."),
        "QUIT".to_owned(),
    ] {
        s.get_mut()
            .write_all(format!("{cmd}\r\n").as_bytes())
            .await
            .unwrap();
        loop {
            line.clear();
            s.read_line(&mut line).await.unwrap();
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        if cmd.starts_with("RCPT") {
            rcpt_reply = line.trim().to_owned();
        }
        replies.push(line.trim().to_owned());
    }
    (rcpt_reply, replies[4].clone())
}

fn dsn(to: &str, rcpt: &str, message_id: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.org\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n\r\n\
--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {message_id}\r\nFrom: app@example.com\r\nTo: {rcpt}\r\nSubject: Hello\r\n\r\n--b1--\r\n"
    )
}

fn arf(rcpt: &str, message_id: &str) -> String {
    format!(
        "From: abuse@isp.example\r\nTo: fbl@example.com\r\nSubject: complaint about a message\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b2\"\r\n\r\n\
--b2\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\
--b2\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: ISP-FBL/1.0\r\nVersion: 1\r\n\
Original-Rcpt-To: {rcpt}\r\n\r\n\
--b2\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: {message_id}\r\nFrom: app@example.com\r\nTo: {rcpt}\r\nSubject: Hello\r\n\r\nHi there\r\n--b2--\r\n"
    )
}

async fn post_raw(app: &App, key: &str, ctype: &str, body: String) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(app.url("/v1/feedback/raw"))
        .bearer_auth(key)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

fn suppressed(app: &App) -> Vec<Value> {
    serde_json::from_str(&app.cli(&["--json", "suppressions", "list", "--tenant", "default"]))
        .unwrap()
}

async fn bounces_and_complaints_map_to_their_messages(backend: Backend) {
    let sink = Sink::start(&[]);
    let app = spawn(backend, &sink);

    // Outgoing mail carries a VERP return path naming the message.
    let (_, v) = app.send(&app.key, simple_message("bob@example.org")).await;
    let id = v["id"].as_str().unwrap().to_owned();
    app.wait_status(&id, "delivered", 15).await;
    let sent = sink.messages().pop().unwrap();
    let verp = format!("bounce+{id}@bounces.example");
    assert_eq!(header(&sent, "X-Sink-Mail-From"), verp);
    let message_id = header(&sent, "Message-ID").to_owned();

    // A bounce to that address maps to the message even with a mangled Message-ID.
    let listener = bounce_listener(&app);
    let (rcpt, end) = smtp_deliver(
        &listener,
        "",
        &verp,
        &dsn(&verp, "bob@example.org", "<mangled@x>"),
    )
    .await;
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(
        end.starts_with("250 2.0.0") && end.contains("1 feedback"),
        "{end}"
    );
    let m = app.message(&id).await;
    let ev = m["events"].as_array().unwrap();
    assert!(
        ev.iter().any(|e| e["kind"] == "bounced"
            && e["recipient"] == "bob@example.org"
            && e["detail"].as_str().unwrap().contains("userunknown (hard")),
        "{m:#}"
    );
    let list = suppressed(&app);
    assert!(
        list.iter()
            .any(|s| s["address"] == "bob@example.org" && s["source"] == "feedback"),
        "{list:?}"
    );
    // The listener takes mail for the bounce domain only.
    let (rcpt, _) = smtp_deliver(&listener, "", "someone@example.org", "x").await;
    assert!(rcpt.starts_with("550 5.7.1"), "{rcpt}");

    // A complaint posted by the tenant maps by Message-ID and suppresses the complainer.
    let (_, v) = app
        .send(&app.key, simple_message("carol@example.org"))
        .await;
    let id2 = v["id"].as_str().unwrap().to_owned();
    app.wait_status(&id2, "delivered", 15).await;
    let sent2 = sink.messages().pop().unwrap();
    let mid2 = header(&sent2, "Message-ID").to_owned();
    assert_ne!(mid2, message_id);
    let (code, v) = post_raw(
        &app,
        &app.key,
        "message/rfc822",
        arf("carol@example.org", &mid2),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["matched"], 1, "{v}");
    assert_eq!(v["readings"][0]["kind"], "complaint");
    assert_eq!(v["readings"][0]["suppressed"], true);
    let m = app.message(&id2).await;
    assert!(
        m["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "complained"),
        "{m:#}"
    );
    let (_, v) = app
        .send(&app.key, simple_message("carol@example.org"))
        .await;
    assert_eq!(v["status"], "suppressed");

    // Another tenant's key cannot tie feedback to this tenant's messages.
    let other = app.new_key("other");
    let (code, v) = post_raw(
        &app,
        &other,
        "message/rfc822",
        arf("dave@example.org", &mid2),
    )
    .await;
    assert_eq!((code, v["matched"].as_i64()), (200, Some(0)), "{v}");
}

#[test]
fn bounces_and_complaints_map_to_their_messages_on_every_backend() {
    for backend in Backend::all() {
        run_blocking(bounces_and_complaints_map_to_their_messages(backend));
    }
}

#[test]
fn orphans_are_kept_and_bad_input_is_refused() {
    run_blocking(async {
        let sink = Sink::start(&[]);
        let app = spawn(Backend::Sqlite, &sink);
        // A real DSN from the corpus, about a message Postern never sent.
        let corpus = common::workspace_root().join("../shared/corpora/bounces/eml/rfc3464-01.eml");
        if corpus.exists() {
            let out = app.cli(&["--json", "feedback", "ingest", corpus.to_str().unwrap()]);
            let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
            assert_eq!(first["feedback"]["message_id"], Value::Null, "{out}");
            let list: Vec<Value> =
                serde_json::from_str(&app.cli(&["--json", "feedback", "list"])).unwrap();
            assert!(!list.is_empty() && list.iter().all(|f| f["message_id"].is_null()));
        }
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.eml");
        std::fs::write(&junk, b"\x00\x01 not a message").unwrap();
        let (ok, _, err) = app.cli_raw(&["feedback", "ingest", junk.to_str().unwrap()]);
        assert!(!ok && err.contains("junk.eml"), "{err}");

        let (code, v) = post_raw(&app, &app.key, "text/plain", "hello".into()).await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (415, Some("unsupported_media_type"))
        );
        let (code, v) = post_raw(
            &app,
            &app.key,
            "message/rfc822",
            "Subject: hi\r\n\r\nhello\r\n".into(),
        )
        .await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (422, Some("not_feedback")),
            "{v}"
        );
        let (code, _) = post_raw(
            &app,
            "",
            "message/rfc822",
            dsn("x@y.example", "a@b.example", "<m@x>"),
        )
        .await;
        assert_eq!(code, 401);
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
}

/// The value of the first metric line named `name` carrying every one of `labels`.
fn metric(page: &str, name: &str, labels: &[&str]) -> Option<f64> {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn feedback_rates_and_orphans_are_on_metrics() {
    run_blocking(async {
        let sink = Sink::start(&[]);
        let app = spawn(Backend::Sqlite, &sink);
        // Four recipients sent through the relay, then two bounces and one complaint about them.
        let mut ids = vec![];
        for to in [
            "r1@example.org",
            "r2@example.org",
            "r3@example.org",
            "r4@example.org",
        ] {
            let (_, v) = app.send(&app.key, simple_message(to)).await;
            ids.push(v["id"].as_str().unwrap().to_owned());
        }
        for id in &ids {
            app.wait_status(id, "delivered", 15).await;
        }
        let sent = sink.messages();
        let mid = |rcpt: &str| {
            let m = sent
                .iter()
                .find(|m| header(m, "To") == rcpt)
                .unwrap_or_else(|| panic!("no message to {rcpt}"));
            header(m, "Message-ID").to_owned()
        };
        for (body, matched) in [
            (
                dsn("b@example.com", "r1@example.org", &mid("r1@example.org")),
                1,
            ),
            (
                dsn("b@example.com", "r2@example.org", &mid("r2@example.org")),
                1,
            ),
            (arf("r3@example.org", &mid("r3@example.org")), 1),
            // About a message Postern never sent (From app@example.com): an orphan.
            (
                dsn("b@example.com", "x@example.net", "<never-sent@example.com>"),
                0,
            ),
        ] {
            let (code, v) = post_raw(&app, &app.key, "message/rfc822", body).await;
            assert_eq!((code, v["matched"].as_i64()), (200, Some(matched)), "{v}");
        }

        let page = app.metrics().await;
        for window in ["15m", "24h"] {
            let w = format!("window=\"{window}\"");
            for scope in [
                "scope=\"tenant\"",
                "scope=\"key\"",
                "scope=\"provider\",id=\"relay\"",
            ] {
                let rate = |kind: &str| {
                    metric(
                        &page,
                        "postern_feedback_rate",
                        &[&format!("kind=\"{kind}\""), &w, scope],
                    )
                    .unwrap_or_else(|| panic!("no {kind} rate for {scope} {window}:\n{page}"))
                };
                assert_eq!(rate("bounce"), 0.5, "{scope} {window}");
                assert_eq!(rate("complaint"), 0.25, "{scope} {window}");
                assert_eq!(rate("autoreply"), 0.0, "{scope} {window}");
                assert_eq!(
                    metric(
                        &page,
                        "postern_feedback_window",
                        &["kind=\"sent\"", &w, scope]
                    ),
                    Some(4.0)
                );
            }
        }
        assert_eq!(
            metric(
                &page,
                "postern_feedback_orphans_total",
                &["domain=\"example.com\"", "kind=\"bounce\""]
            ),
            Some(1.0),
            "{page}"
        );
    });
}
