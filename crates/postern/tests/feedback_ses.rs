//! `POST /v1/feedback/ses`: SNS messages signed by a certificate of our own CA (SignatureVersion
//! 1 and 2), served over HTTPS from 127.0.0.1, configured as the allowed host. A valid bounce is
//! recorded and suppresses the address; a forged, tampered, old or wrongly hosted message is
//! refused with 4xx and changes nothing; a SubscriptionConfirmation visits its SubscribeURL;
//! the certificate is fetched once.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use base64::Engine;
use common::pki::{HttpsFiles, TestCa, rsa_key, rsa_sign};
use common::{App, Backend, run_blocking, simple_message};
use serde_json::{Value, json};

/// The string SNS signs, as AWS documents it.
fn canonical(m: &Value) -> String {
    let fields: &[&str] = if m["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    fields
        .iter()
        .filter_map(|f| m[*f].as_str().map(|v| format!("{f}\n{v}\n")))
        .collect()
}

struct Signer {
    key: PathBuf,
    cert_url: String,
}

impl Signer {
    fn sign(&self, mut m: Value, version: &str) -> Value {
        m["SignatureVersion"] = json!(version);
        m["SigningCertURL"] = json!(self.cert_url);
        let digest = if version == "1" { "sha1" } else { "sha256" };
        let sig = rsa_sign(&self.key, digest, canonical(&m).as_bytes());
        m["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(sig));
        m
    }
}

fn now_iso(offset_secs: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn notification(ses: Value, id: &str) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-feedback",
        "Subject": "Amazon SES Email Event Notification",
        "Message": ses.to_string(),
        "Timestamp": now_iso(0),
        "UnsubscribeURL": "https://127.0.0.1/unsubscribe",
    })
}

fn bounce(rcpt: &str, postern_id: &str) -> Value {
    json!({
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": rcpt, "action": "failed", "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": now_iso(0), "feedbackId": "fb-1"},
        "mail": {"messageId": "0100018-ses", "source": "app@example.com",
            "destination": [rcpt], "tags": {"postern_id": [postern_id]}}
    })
}

fn complaint(rcpt: &str, message_id_header: &str) -> Value {
    json!({
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": rcpt}],
            "complaintFeedbackType": "abuse", "timestamp": now_iso(0), "feedbackId": "fb-2"},
        "mail": {"messageId": "0100019-ses", "source": "app@example.com", "destination": [rcpt],
            "headers": [{"name": "Message-ID", "value": message_id_header}],
            "commonHeaders": {"messageId": message_id_header}}
    })
}

async fn post(app: &App, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(app.url("/v1/feedback/ses"))
        .header("content-type", "text/plain; charset=UTF-8")
        .header(
            "x-amz-sns-message-type",
            body["Type"].as_str().unwrap_or(""),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

fn feedback_count(app: &App) -> usize {
    let list: Vec<Value> = serde_json::from_str(&app.cli(&["--json", "feedback", "list"])).unwrap();
    list.len()
}

fn suppressed(app: &App) -> Vec<String> {
    let list: Vec<Value> =
        serde_json::from_str(&app.cli(&["--json", "suppressions", "list", "--tenant", "default"]))
            .unwrap();
    list.iter()
        .map(|s| s["address"].as_str().unwrap().to_owned())
        .collect()
}

/// The Message-ID header of a delivered message, from the file sink's `.eml`.
fn message_id_header(app: &App, id: &str) -> String {
    let eml = std::fs::read_to_string(app.outbox().join(format!("{id}.eml"))).unwrap();
    eml.lines()
        .find_map(|l| l.strip_prefix("Message-ID:").map(|v| v.trim().to_owned()))
        .unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    files: HttpsFiles,
    signer: Signer,
    app: App,
}

async fn setup(backend: Backend) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(dir.path());
    let (tls_cert, tls_key) = ca.issue(&["127.0.0.1", "localhost"], 1, None);
    let (key_path, rsa) = rsa_key(dir.path(), "sns-signing.pem");
    let (signing_cert, _) = ca.issue(&["sns.amazonaws.com"], 2, Some(rsa));
    let files = HttpsFiles::start(
        &tls_cert,
        &tls_key,
        vec![
            ("/SimpleNotificationService-test.pem".into(), signing_cert),
            ("/confirm".into(), "<ConfirmSubscriptionResponse/>".into()),
        ],
    )
    .await;
    let port = files.addr.port();
    let app = App::spawn(
        backend,
        &[
            (
                "POSTERN_FEEDBACK_SES_ALLOWED_CERT_HOSTS",
                r#"["127.0.0.1"]"#,
            ),
            ("POSTERN_FEEDBACK_SES_CA_FILE", ca_file.to_str().unwrap()),
            (
                "POSTERN_FEEDBACK_SES_TOPIC_ARNS",
                r#"["arn:aws:sns:us-east-1:123456789012:ses-feedback"]"#,
            ),
            ("POSTERN_GUARD_ENABLED", "false"),
        ],
    );
    let signer = Signer {
        key: key_path,
        cert_url: format!("https://127.0.0.1:{port}/SimpleNotificationService-test.pem"),
    };
    Setup {
        _dir: dir,
        files,
        signer,
        app,
    }
}

async fn signed_notifications_are_applied(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let (_, v) = app.send(&app.key, simple_message("bob@example.org")).await;
    let id = v["id"].as_str().unwrap().to_owned();
    app.wait_status(&id, "delivered", 15).await;

    // SignatureVersion 1 (SHA1withRSA): a hard bounce tied by the postern_id tag.
    let n = s
        .signer
        .sign(notification(bounce("bob@example.org", &id), "sns-1"), "1");
    let (code, v) = post(app, &n).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["matched"].as_i64(), v["orphans"].as_i64()),
        (Some(1), Some(0)),
        "{v}"
    );
    assert_eq!(v["readings"][0]["suppressed"], true, "{v}");
    let m = app.message(&id).await;
    assert!(
        m["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "bounced" && e["recipient"] == "bob@example.org"),
        "{m:#}"
    );
    assert!(suppressed(app).contains(&"bob@example.org".to_owned()));
    let (_, v) = app.send(&app.key, simple_message("bob@example.org")).await;
    assert_eq!(v["status"], "suppressed", "{v}");

    // The same message again (SNS delivers at least once, or someone replays it): nothing new.
    let before = feedback_count(app);
    let (code, v) = post(app, &n).await;
    assert_eq!((code, &v["duplicate"]), (200, &json!(true)), "{v}");
    assert_eq!(feedback_count(app), before);

    // SignatureVersion 2 (SHA256withRSA): a complaint tied by the Message-ID header.
    let (_, v) = app
        .send(&app.key, simple_message("carol@example.org"))
        .await;
    let id2 = v["id"].as_str().unwrap().to_owned();
    app.wait_status(&id2, "delivered", 15).await;
    let mid = message_id_header(app, &id2);
    let n = s.signer.sign(
        notification(complaint("carol@example.org", &mid), "sns-2"),
        "2",
    );
    let (code, v) = post(app, &n).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["readings"][0]["kind"], "complaint", "{v}");
    assert_eq!(v["readings"][0]["message_id"], id2.as_str(), "{v}");
    assert!(suppressed(app).contains(&"carol@example.org".to_owned()));

    // The certificate was fetched once for both.
    assert_eq!(s.files.count("/SimpleNotificationService-test.pem"), 1);
}

#[test]
fn signed_notifications_are_applied_on_every_backend() {
    for backend in Backend::all() {
        run_blocking(signed_notifications_are_applied(backend));
    }
}

#[test]
fn forged_messages_are_refused_and_change_nothing() {
    run_blocking(async {
        let s = setup(Backend::Sqlite).await;
        let app = &s.app;
        let (_, v) = app.send(&app.key, simple_message("dan@example.org")).await;
        let id = v["id"].as_str().unwrap().to_owned();
        app.wait_status(&id, "delivered", 15).await;
        let good = |mid: &str, v: &str| {
            s.signer
                .sign(notification(bounce("dan@example.org", &id), mid), v)
        };

        let expect_refused = |code: u16, v: &Value, want: &str| {
            assert_eq!(
                (code, v["error"]["code"].as_str()),
                (code, Some(want)),
                "{v}"
            );
            assert!((400..500).contains(&code), "{code} {v}");
        };
        // The body changed after signing.
        let mut tampered = good("f-1", "1");
        tampered["Message"] = json!(bounce("eve@example.org", &id).to_string());
        let (code, v) = post(app, &tampered).await;
        expect_refused(code, &v, "invalid_sns_signature");
        // Signed by another key (same certificate URL).
        let dir = tempfile::tempdir().unwrap();
        let (other_key, _) = rsa_key(dir.path(), "other.pem");
        let forger = Signer {
            key: other_key,
            cert_url: s.signer.cert_url.clone(),
        };
        let (code, v) = post(
            app,
            &forger.sign(notification(bounce("dan@example.org", &id), "f-2"), "2"),
        )
        .await;
        expect_refused(code, &v, "invalid_sns_signature");
        // A certificate on a host that is not allowed, or over plain http.
        for url in [
            s.signer.cert_url.replace("127.0.0.1", "localhost"),
            s.signer.cert_url.replace("https://", "http://"),
        ] {
            let forger = Signer {
                key: s.signer.key.clone(),
                cert_url: url,
            };
            let (code, v) = post(
                app,
                &forger.sign(notification(bounce("dan@example.org", &id), "f-3"), "1"),
            )
            .await;
            expect_refused(code, &v, "sns_url_not_allowed");
        }
        // A genuine but old message (a replay from two hours ago).
        let mut old = notification(bounce("dan@example.org", &id), "f-4");
        old["Timestamp"] = json!(now_iso(-7200));
        let (code, v) = post(app, &s.signer.sign(old, "2")).await;
        expect_refused(code, &v, "sns_message_too_old");
        // An unknown signature version, and something that is not an SNS message.
        let (code, v) = post(app, &good("f-5", "3")).await;
        expect_refused(code, &v, "invalid_sns_message");
        let (code, v) = post(app, &json!({"hello": "world"})).await;
        expect_refused(code, &v, "invalid_sns_message");

        assert_eq!(feedback_count(app), 0);
        assert!(suppressed(app).is_empty());
        let m = app.message(&id).await;
        assert!(
            !m["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "bounced"),
            "{m:#}"
        );
        // Nothing was fetched from the host that is not allowed.
        assert!(
            s.files
                .requests
                .lock()
                .unwrap()
                .iter()
                .all(|t| !t.contains("localhost"))
        );
        // The genuine message is still accepted afterwards.
        let (code, v) = post(app, &good("f-6", "1")).await;
        assert_eq!((code, v["matched"].as_i64()), (200, Some(1)), "{v}");
    });
}

#[test]
fn subscription_confirmation_visits_the_subscribe_url() {
    run_blocking(async {
        let s = setup(Backend::Sqlite).await;
        let app = &s.app;
        let port = s.files.addr.port();
        let confirm = |url: String, id: &str| {
            s.signer.sign(
                json!({
                    "Type": "SubscriptionConfirmation",
                    "MessageId": id,
                    "Token": "2336412f37fb687f5d51e6e2425",
                    "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-feedback",
                    "Message": "You have chosen to subscribe to the topic. To confirm, visit the SubscribeURL.",
                    "SubscribeURL": url,
                    "Timestamp": now_iso(0),
                }),
                "1",
            )
        };
        // A SubscribeURL on a host that is not allowed is not visited.
        let (code, v) = post(
            app,
            &confirm(format!("https://localhost:{port}/confirm?Token=x"), "c-1"),
        )
        .await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (403, Some("sns_url_not_allowed")),
            "{v}"
        );
        assert_eq!(s.files.count("/confirm"), 0);

        let url = format!(
            "https://127.0.0.1:{port}/confirm?Action=ConfirmSubscription&Token=2336412f37fb687f5d51e6e2425"
        );
        let (code, v) = post(app, &confirm(url, "c-2")).await;
        assert_eq!((code, &v["confirmed"]), (200, &json!(true)), "{v}");
        assert_eq!(s.files.count("/confirm"), 1);
        assert!(
            s.files
                .requests
                .lock()
                .unwrap()
                .iter()
                .any(|t| t.contains("Token=2336412f37fb687f5d51e6e2425")),
        );
    });
}
