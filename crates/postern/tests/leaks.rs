//! Leak reports, end to end on both backends: a signed GitHub-style report revokes the key
//! before it is answered (the next send with it gets 401), holds its queued mail, raises an
//! alert and an audit entry; a bad signature changes nothing; `keys report-leak` does the same
//! from the command line.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::{App, Backend, run_blocking, simple_message};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Value, json};

fn github_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32].into()).unwrap()
}

/// `[leaks] public_keys` naming `key` as "gh1", as an environment override.
fn leak_env(key: &SigningKey) -> String {
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    format!(r#"[{{id = "gh1", pem = "{}"}}]"#, pem.replace('\n', "\\n"))
}

async fn post_report(app: &App, key: &SigningKey, key_id: &str, body: &[u8]) -> (u16, Value) {
    let sig: Signature = key.sign(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
    let r = reqwest::Client::new()
        .post(app.url("/v1/keys/leaked"))
        .header("Github-Public-Key-Identifier", key_id)
        .header("Github-Public-Key-Signature", sig)
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn key_id_of(secret: &str) -> String {
    postern::domain::ApiKeySecret::parse(secret)
        .unwrap()
        .id()
        .to_string()
}

fn held_total(app: &App, key_id: &str) -> u64 {
    let v: Value =
        serde_json::from_str(&app.cli(&["--json", "held", "list", "--key", key_id])).unwrap();
    v["total"].as_u64().unwrap()
}

#[test]
fn a_signed_report_revokes_in_that_request_and_holds_the_queue() {
    for backend in Backend::all() {
        let gh = github_key();
        let env = leak_env(&gh);
        run_blocking(async move {
            let app = App::spawn(
                backend,
                &[
                    ("POSTERN_LEAKS_PUBLIC_KEYS", &env),
                    // Accept-only: the mail stays queued.
                    ("POSTERN_QUEUE_DELIVER", "false"),
                ],
            );
            let stolen = app.new_key("acme");
            let id = key_id_of(&stolen);
            for i in 0..3 {
                let (code, v) = app
                    .send(&stolen, simple_message(&format!("r{i}@example.org")))
                    .await;
                assert_eq!((code, v["status"].as_str()), (202, Some("queued")), "{v}");
            }
            let unknown = postern::domain::ApiKeySecret::generate(postern::domain::KeyMode::Live);
            let body = serde_json::to_vec(&json!([
                {"token": stolen, "type": "postern_api_key", "url": "https://github.com/o/r/blob/abc/.env", "source": "content"},
                {"token": "pst_live_garbage", "type": "postern_api_key", "url": "u", "source": "content"},
                {"token": unknown.expose(), "type": "postern_api_key", "url": "u", "source": "content"},
            ]))
            .unwrap();

            // Signed by someone else, or by the right key under another id, or not at all:
            // 401 and nothing revoked.
            let other = SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
            let (code, v) = post_report(&app, &other, "gh1", &body).await;
            assert_eq!(code, 401, "{v}");
            assert_eq!(v["error"]["code"], "invalid_signature");
            let (code, _) = post_report(&app, &gh, "gh2", &body).await;
            assert_eq!(code, 401);
            let r = reqwest::Client::new()
                .post(app.url("/v1/keys/leaked"))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 401);
            let (code, v) = app.send(&stolen, simple_message("still@example.org")).await;
            assert_eq!(code, 202, "a refused report revoked the key: {v}");

            let (code, v) = post_report(&app, &gh, "gh1", &body).await;
            assert_eq!(code, 200, "{v}");
            let labels: Vec<&str> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["label"].as_str().unwrap())
                .collect();
            assert_eq!(
                labels,
                ["true_positive", "false_positive", "false_positive"]
            );
            assert_eq!(v[0]["token_raw"], stolen.as_str());
            assert_eq!(v[0]["token_type"], "postern_api_key");

            // Revoked within that one request.
            let (code, v) = app.send(&stolen, simple_message("after@example.org")).await;
            assert_eq!(code, 401, "{v}");
            assert_eq!(v["error"]["code"], "revoked_api_key");
            // Its queued mail is held (the 3 + the one sent after the refused reports).
            assert_eq!(held_total(&app, &id), 4);
            // Other keys are untouched.
            let (code, _) = app.send(&app.key, simple_message("ok@example.org")).await;
            assert_eq!(code, 202);

            let alerts: Value =
                serde_json::from_str(&app.cli(&["--json", "guard", "alerts"])).unwrap();
            let a = alerts
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["signal"] == "leaked_key")
                .unwrap();
            assert_eq!(a["target"], id.as_str());
            assert_eq!(a["evidence"]["url"], "https://github.com/o/r/blob/abc/.env");
            let audit = app.cli(&["audit", "export"]);
            let entry: Value = audit
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .find(|e| e["action"] == "key.leaked")
                .unwrap();
            assert_eq!(entry["actor"], "leak-report:github");
            assert_eq!(entry["target"], format!("key:{id}"));
            assert_eq!(entry["source_ip"], "127.0.0.1");
            app.cli(&["audit", "verify"]);

            // Garbage is an answer, never a 500.
            for junk in [&b"not json"[..], b"{}", br#"[{"nope":1}]"#] {
                let (code, _) = post_report(&app, &gh, "gh1", junk).await;
                assert_eq!(code, 400);
            }
            let (code, v) = post_report(&app, &gh, "gh1", b"[]").await;
            assert_eq!((code, v), (200, json!([])));
        });
    }
}

#[test]
fn report_leak_from_the_command_line() {
    run_blocking(async {
        let app = App::spawn(Backend::Sqlite, &[("POSTERN_QUEUE_DELIVER", "false")]);
        let stolen = app.new_key("acme");
        let id = key_id_of(&stolen);
        let (code, _) = app.send(&stolen, simple_message("a@example.org")).await;
        assert_eq!(code, 202);
        let out: Value = serde_json::from_str(&app.cli(&[
            "--json",
            "keys",
            "report-leak",
            &stolen,
            "--url",
            "https://pastebin.example/x",
        ]))
        .unwrap();
        assert_eq!(out, json!({"id": id, "revoked": true, "held": 1}));
        // The running server refuses it once its key cache (2 s) has expired; until then
        // the key's pause holds what it accepts.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut accepted = 0;
        // Servers reload pauses every 50 ms.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        loop {
            let (code, v) = app.send(&stolen, simple_message("b@example.org")).await;
            if code == 401 {
                break;
            }
            assert_eq!(v["status"], "held", "{v}");
            accepted += 1;
            assert!(std::time::Instant::now() < deadline, "the key still works");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(held_total(&app, &id), 1 + accepted);

        let (ok, _, err) = app.cli_raw(&["keys", "report-leak", "pst_live_nothing"]);
        assert!(!ok && err.contains("not a key of this Postern"), "{err}");
        // Resuming the key's pause after review releases what the report held.
        app.cli(&["resume", "--key", &id]);
        assert_eq!(held_total(&app, &id), 0);
    });
}
