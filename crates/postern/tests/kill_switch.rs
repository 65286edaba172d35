//! The kill switch, end to end through a real SMTP server (aiosmtpd): pausing stops new sends
//! within 100 ms and holds messages (never drops them); resuming releases them; held messages
//! can be listed, released and purged; scopes (all, tenant, key, provider) only touch their own.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{App, Backend, Sink, relay_env, run_blocking, simple_message};
use serde_json::Value;

fn spawn(backend: Backend, env: &[(String, String)]) -> App {
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    App::spawn(backend, &refs)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn ms(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

async fn send(app: &App, key: &str, to: &str) -> (String, String) {
    let (code, body) = app.send(key, simple_message(to)).await;
    assert_eq!(code, 202, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["status"].as_str().unwrap().to_owned(),
    )
}

/// GET /v1/messages/{id} with a given tenant's key.
async fn get(app: &App, key: &str, id: &str) -> Value {
    let r = reqwest::Client::new()
        .get(app.url(&format!("/v1/messages/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn wait_for(app: &App, key: &str, id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let m = get(app, key, id).await;
        if m["status"] == status {
            return m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never {status}: {m:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pause_all_then_resume(backend: Backend) {
    let sink = Sink::start(&[]);
    let app = spawn(backend, &relay_env(&[("relay", &sink)]));

    // A steady stream of sends, paused in the middle of it.
    let sender = {
        let (url, key) = (app.url("/v1/messages"), app.key.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ids = vec![];
            for i in 0..300 {
                let r = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&simple_message(&format!("u{i}@example.org")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                let v: Value = r.json().await.unwrap();
                ids.push(v["id"].as_str().unwrap().to_owned());
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            ids
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = app.cli(&[
        "pause",
        "--all",
        "--reason",
        "incident 42",
        "--actor",
        "alice",
    ]);
    let paused_at = now_ms();
    assert!(out.contains("Paused everything"), "{out}");
    let ids = sender.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered_while_paused = sink.messages().len();

    // Nothing started more than 100 ms after the pause; nothing was dropped.
    let mut held = 0;
    for id in &ids {
        let m = app.message(id).await;
        for e in m["events"].as_array().unwrap() {
            if e["kind"] == "attempted" {
                let at = ms(e["at"].as_str().unwrap());
                assert!(
                    at <= paused_at + 100,
                    "an attempt started {} ms after the pause: {m:#}",
                    at - paused_at
                );
            }
        }
        match m["status"].as_str().unwrap() {
            "held" => {
                held += 1;
                let ev = m["events"].as_array().unwrap();
                let why = ev.iter().find(|e| e["kind"] == "held").unwrap();
                assert!(
                    why["detail"]
                        .as_str()
                        .unwrap()
                        .contains("alice: incident 42"),
                    "{why}"
                );
            }
            "delivered" => {}
            other => panic!("message {id} is {other} during the pause"),
        }
    }
    assert!(
        held > 100,
        "only {held} of 300 held: the pause came too late"
    );
    assert_eq!(delivered_while_paused, ids.len() - held);
    let list: Value = serde_json::from_str(&app.cli(&["--json", "held", "list"])).unwrap();
    assert_eq!(list["total"], held);

    // New sends during the pause are accepted as held.
    let (_, status) = send(&app, &app.key, "late@example.org").await;
    assert_eq!(status, "held");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), delivered_while_paused);

    let out = app.cli(&["resume", "--all", "--actor", "alice"]);
    assert!(
        out.contains(&format!("{} held messages released", held + 1)),
        "{out}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sink.messages().len() < ids.len() + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "released messages not delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sink.messages().len(),
        ids.len() + 1,
        "a message was sent twice"
    );
    for id in &ids {
        let m = app.message(id).await;
        assert_eq!(m["status"], "delivered", "{m:#}");
    }
}

#[test]
fn pause_all_stops_new_sends_within_100ms_and_resume_releases_everything() {
    for backend in Backend::all() {
        run_blocking(pause_all_then_resume(backend));
    }
}

#[test]
fn scoped_pauses_hold_only_their_scope_and_held_messages_can_be_released_or_purged() {
    run_blocking(async {
        let primary = Sink::start(&[]);
        let backup = Sink::start(&[]);
        let app = spawn(
            Backend::Sqlite,
            &relay_env(&[("primary", &primary), ("backup", &backup)]),
        );
        let acme = app.new_key("acme");
        let acme_tenant_keys: Value =
            serde_json::from_str(&app.cli(&["--json", "keys", "list", "--tenant", "acme"]))
                .unwrap();
        let acme_key_id = acme_tenant_keys[0]["id"].as_str().unwrap().to_owned();
        let settle = Duration::from_millis(150);

        // A tenant pause holds that tenant only.
        app.cli(&["pause", "--tenant", "acme", "--reason", "abuse report"]);
        tokio::time::sleep(settle).await;
        let (acme_msg, s) = send(&app, &acme, "a@example.org").await;
        assert_eq!(s, "held");
        let (other, s) = send(&app, &app.key, "b@example.org").await;
        assert_eq!(s, "queued");
        app.wait_status(&other, "delivered", 15).await;

        // Purge needs a reason and a scope; it ends the message for good, naming who.
        let (ok, _, err) = app.cli_raw(&["held", "purge", "--all", "--reason", " "]);
        assert!(!ok && err.contains("--reason"), "{err}");
        let (ok, _, err) = app.cli_raw(&["held", "purge", "--reason", "spam"]);
        assert!(!ok && err.contains("--tenant, --key, or --all"), "{err}");
        let out = app.cli(&[
            "held", "purge", "--tenant", "acme", "--reason", "spam", "--actor", "bob",
        ]);
        assert!(out.contains("Purged 1"), "{out}");
        let m = get(&app, &acme, &acme_msg).await;
        assert_eq!(m["status"], "purged");
        assert!(
            m["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "purged" && e["detail"] == "purged by bob: spam"),
            "{m:#}"
        );
        app.cli(&["resume", "--tenant", "acme"]);

        // A key pause holds that key only; `held release` lets it go while the pause stays.
        app.cli(&["pause", "--key", &acme_key_id]);
        tokio::time::sleep(settle).await;
        let (k_msg, s) = send(&app, &acme, "c@example.org").await;
        assert_eq!(s, "held");
        let out = app.cli(&["held", "release", "--key", &acme_key_id]);
        assert!(out.contains("Released 1"), "{out}");
        // Still paused: the release puts it back in line and the worker holds it again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(get(&app, &acme, &k_msg).await["status"], "held");
        app.cli(&["resume", "--key", &acme_key_id]);
        wait_for(&app, &acme, &k_msg, "delivered").await;

        // A provider pause moves traffic to the next provider instead of holding it.
        let before = backup.messages().len();
        app.cli(&["pause", "--provider", "primary"]);
        tokio::time::sleep(settle).await;
        let (p_msg, s) = send(&app, &app.key, "d@example.org").await;
        assert_eq!(s, "queued");
        app.wait_status(&p_msg, "delivered", 15).await;
        assert_eq!(backup.messages().len(), before + 1);
        app.cli(&["resume", "--provider", "primary"]);

        // Bad input: a clear error, nothing paused.
        for (args, says) in [
            (vec!["pause"], "required"),
            (
                vec!["pause", "--all", "--tenant", "acme"],
                "cannot be used with",
            ),
            (vec!["pause", "--tenant", "ghost"], "no tenant"),
            (vec!["pause", "--key", "nope"], "not a key id"),
            (vec!["pause", "--channel", "pigeon"], "unknown channel"),
            (vec!["pause", "--provider", "nosuch"], "no provider"),
            (vec!["held", "release"], "--tenant, --key, or --all"),
        ] {
            let (ok, _, err) = app.cli_raw(&args);
            assert!(!ok, "{args:?} succeeded");
            assert!(err.contains(says), "{args:?}: {err}");
        }
        tokio::time::sleep(settle).await;
        let (_, s) = send(&app, &app.key, "e@example.org").await;
        assert_eq!(s, "queued");
    });
}
