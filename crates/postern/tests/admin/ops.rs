//! Operations through the admin API: pause and resume, held messages (release, purge),
//! suppressions (CSV import and export), keys, and route moves; bad input refused with nothing
//! changed, every change in the audit log.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{App, Backend, Sink, relay_env, run_blocking, simple_message};
use crate::{audit_log, audited, get, post, spawn, token};

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
        let mut env = relay_env(&[("primary", &primary), ("backup", &backup)]);
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
