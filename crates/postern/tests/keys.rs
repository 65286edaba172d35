//! API key policies over HTTP: allowed From and recipient domains, rate and daily limits, IP
//! allowlists, expiry, rotation with a grace period, and the record of last use.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{App, Backend, run_blocking};
use serde_json::{Value, json};

fn create(app: &App, extra: &[&str]) -> (String, String) {
    let mut args = vec!["--json", "keys", "create", "--tenant", "default"];
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(&app.cli(&args)).unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    )
}

async fn post(app: &App, key: &str, from: &str, to: &str) -> (u16, Value) {
    app.send(
        key,
        json!({"from": from, "to": [to], "subject": "s", "text": "t"}),
    )
    .await
}

fn key_row(app: &App, id: &str) -> Value {
    let all: Vec<Value> = serde_json::from_str(&app.cli(&["--json", "keys", "list"])).unwrap();
    all.into_iter().find(|k| k["id"] == id).unwrap()
}

#[test]
fn key_policies_limits_expiry_and_rotation() {
    run_blocking(async {
        let app = App::spawn(Backend::Sqlite, &[]);

        // Domains.
        let (_, k) = create(
            &app,
            &[
                "--from-domain",
                "example.com",
                "--rcpt-domain",
                "*.customers.example",
            ],
        );
        let (code, v) = post(&app, &k, "app@evil.example", "a@x.customers.example").await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (403, Some("from_domain_not_allowed")),
            "{v}"
        );
        let (code, v) = post(&app, &k, "app@example.com", "a@gmail.example").await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (403, Some("recipient_domain_not_allowed")),
            "{v}"
        );
        let (code, _) = post(&app, &k, "app@example.com", "a@x.customers.example").await;
        assert_eq!(code, 202);

        // Rate: a one-second burst, then 429 until the bucket refills.
        let (_, k) = create(&app, &["--rate", "3/s"]);
        let mut codes = vec![];
        for _ in 0..6 {
            codes.push(post(&app, &k, "a@example.com", "b@example.org").await.0);
        }
        assert_eq!(&codes[..3], &[202, 202, 202], "{codes:?}");
        assert!(codes[3..].contains(&429), "{codes:?}");
        let (_, v) = post(&app, &k, "a@example.com", "b@example.org").await;
        assert!(
            v["error"]["code"] == "rate_limited" || v["status"] == "queued",
            "{v}"
        );

        // Daily volume.
        let (_, k) = create(&app, &["--daily", "2"]);
        for _ in 0..2 {
            assert_eq!(
                post(&app, &k, "a@example.com", "b@example.org").await.0,
                202
            );
        }
        let (code, v) = post(&app, &k, "a@example.com", "b@example.org").await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (429, Some("daily_limit_reached")),
            "{v}"
        );

        // Networks.
        let (_, k) = create(&app, &["--allow-ip", "10.0.0.0/8"]);
        let (code, v) = post(&app, &k, "a@example.com", "b@example.org").await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (403, Some("address_not_allowed")),
            "{v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("127.0.0.1"),
            "{v}"
        );
        let (_, k) = create(&app, &["--allow-ip", "10.0.0.0/8,127.0.0.1"]);
        assert_eq!(
            post(&app, &k, "a@example.com", "b@example.org").await.0,
            202
        );

        // Expiry.
        let (_, k) = create(&app, &["--expires", "1s"]);
        assert_eq!(
            post(&app, &k, "a@example.com", "b@example.org").await.0,
            202
        );
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let (code, v) = post(&app, &k, "a@example.com", "b@example.org").await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (401, Some("expired_api_key")),
            "{v}"
        );

        // Rotation: both keys work during the grace period, then only the successor.
        let (old_id, old) = create(&app, &["--from-domain", "example.com"]);
        let v: Value =
            serde_json::from_str(&app.cli(&["--json", "keys", "rotate", &old_id, "--grace", "2s"]))
                .unwrap();
        let new = v["secret"].as_str().unwrap().to_owned();
        let new_id = v["id"].as_str().unwrap().to_owned();
        assert_eq!(
            post(&app, &old, "a@example.com", "b@example.org").await.0,
            202
        );
        assert_eq!(
            post(&app, &new, "a@example.com", "b@example.org").await.0,
            202
        );
        // The successor inherits the policy.
        assert_eq!(
            post(&app, &new, "a@evil.example", "b@example.org").await.0,
            403
        );
        let (ok, _, err) = app.cli_raw(&["keys", "rotate", &old_id]);
        assert!(!ok && err.contains("already"), "{err}");
        tokio::time::sleep(Duration::from_millis(2_600)).await;
        let (code, v) = post(&app, &old, "a@example.com", "b@example.org").await;
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (401, Some("rotated_api_key")),
            "{v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains(&new_id),
            "{v}"
        );
        assert_eq!(
            post(&app, &new, "a@example.com", "b@example.org").await.0,
            202
        );

        // Last use is recorded (written every 2 s), with the source address.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let row = key_row(&app, &new_id);
        assert!(row["last_used_at"].as_i64().is_some(), "{row}");
        assert_eq!(row["last_ip"], "127.0.0.1", "{row}");
        assert_eq!(key_row(&app, &old_id)["successor_id"], new_id.as_str());

        // Bad input: clear errors, no key created.
        let before: Vec<Value> =
            serde_json::from_str(&app.cli(&["--json", "keys", "list"])).unwrap();
        for (args, says) in [
            (vec!["--rate", "fast"], "--rate"),
            (vec!["--allow-ip", "ten.0.0.0/8"], "--allow-ip"),
            (vec!["--expires", "2001-01-01T00:00:00Z"], "in the past"),
            (vec!["--expires", "soon"], "--expires"),
            (vec!["--from-domain", "not a domain"], "not a domain"),
            (vec!["--daily", "0"], "at least 1"),
            (vec!["--scope", "send,teleport"], "unknown scope"),
        ] {
            let mut full = vec!["keys", "create", "--tenant", "default"];
            full.extend(args.iter());
            let (ok, _, err) = app.cli_raw(&full);
            assert!(!ok, "{args:?} created a key");
            assert!(err.contains(says), "{args:?}: {err}");
        }
        let after: Vec<Value> =
            serde_json::from_str(&app.cli(&["--json", "keys", "list"])).unwrap();
        assert_eq!(before.len(), after.len());
    });
}

/// A retry with the same Idempotency-Key is the same message: it gets the first answer again
/// and uses none of the key's rate or daily allowance.
#[test]
fn retries_are_answered_again_not_counted_against_the_limits() {
    run_blocking(async {
        let app = App::spawn(Backend::Sqlite, &[]);
        let (_, k) = create(&app, &["--daily", "2"]);
        let client = reqwest::Client::new();
        let send = |idem: &'static str| {
            client
                .post(app.url("/v1/messages"))
                .bearer_auth(&k)
                .header("Idempotency-Key", idem)
                .json(&json!({"from": "a@example.com", "to": ["b@example.org"], "subject": "s", "text": "t"}))
                .send()
        };
        let first: Value = send("order-1").await.unwrap().json().await.unwrap();
        assert_eq!(first["status"], "queued", "{first}");
        for _ in 0..3 {
            let r = send("order-1").await.unwrap();
            assert_eq!(r.status(), 202);
            assert_eq!(r.json::<Value>().await.unwrap(), first);
        }
        // The allowance is two messages: the first and this one.
        assert_eq!(send("order-2").await.unwrap().status(), 202);
        let r = send("order-3").await.unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"]["code"],
            "daily_limit_reached"
        );
    });
}
