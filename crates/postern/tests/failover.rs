//! Provider failover and routing, end to end through two real SMTP servers (aiosmtpd): a relay
//! that goes down mid-stream, one-command moves (and undoing them), per-tenant routes.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{App, Backend, Sink, relay_env, run_blocking, simple_message};
use serde_json::Value;

fn two_relays(primary: &Sink, backup: &Sink, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = relay_env(&[("primary", primary), ("backup", backup)]);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn spawn(env: &[(String, String)]) -> App {
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    App::spawn(Backend::Sqlite, &refs)
}

/// Sends `n` messages with `parallel` requests in flight; returns their ids.
async fn send_many(app: &App, key: &str, n: usize, parallel: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let url = app.url("/v1/messages");
    let mut ids = Vec::with_capacity(n);
    let mut next = 0;
    while next < n {
        let batch: Vec<_> = (next..(next + parallel).min(n))
            .map(|i| {
                let req = client
                    .post(&url)
                    .bearer_auth(key)
                    .json(&simple_message(&format!("user{i}@example.org")))
                    .send();
                async move {
                    let r = req.await.unwrap();
                    assert_eq!(r.status(), 202);
                    r.json::<Value>().await.unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                }
            })
            .collect();
        next += batch.len();
        ids.extend(futures_join_all(batch).await);
    }
    ids
}

/// Awaits every future (in order) without pulling in a futures crate.
async fn futures_join_all<F: std::future::Future<Output = String> + Send + 'static>(
    fs: Vec<F>,
) -> Vec<String> {
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn gauge(metrics: &str, status: &str) -> i64 {
    let prefix = format!("postern_queue_messages{{status=\"{status}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0)
}

async fn wait_delivered(app: &App, n: i64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let m = app.metrics().await;
        if gauge(&m, "delivered") >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} delivered after {secs} s (queued {}, deferred {}, sending {})",
            gauge(&m, "delivered"),
            gauge(&m, "queued"),
            gauge(&m, "deferred"),
            gauge(&m, "sending")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn message_ids(sink: &Sink) -> Vec<String> {
    sink.messages()
        .iter()
        .map(|m| {
            m.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("message-id")
                        .then(|| v.trim().to_owned())
                })
                .expect("every relayed message has a Message-ID")
        })
        .collect()
}

fn ms(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[test]
fn a_relay_that_goes_down_mid_stream_loses_and_duplicates_nothing() {
    run_blocking(async {
        const TOTAL: usize = 2_000;
        let primary = Sink::start(&["--stop-after", "500"]);
        let backup = Sink::start(&[]);
        let app = spawn(&two_relays(&primary, &backup, &[]));
        let ids = send_many(&app, &app.key, TOTAL, 32).await;
        wait_delivered(&app, TOTAL as i64, 120).await;

        let (a, b) = (message_ids(&primary), message_ids(&backup));
        assert_eq!(a.len(), 500, "the primary took messages after it stopped");
        assert_eq!(a.len() + b.len(), TOTAL, "messages lost or duplicated");
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for id in a.iter().chain(b.iter()) {
            *seen.entry(id).or_default() += 1;
        }
        assert_eq!(seen.len(), TOTAL, "a Message-ID was delivered twice");

        // From the event log: the first provider-wide refusal, and the first delivery through
        // the backup after it.
        let mut first_failure = i64::MAX;
        let mut first_backup_delivery = i64::MAX;
        let mut failed_over = 0;
        for id in &ids {
            let m = app.message(id).await;
            assert_eq!(m["status"], "delivered", "{m:#}");
            let events = m["events"].as_array().unwrap();
            for e in events {
                let at = ms(e["at"].as_str().unwrap());
                match (e["kind"].as_str().unwrap(), e["provider"].as_str()) {
                    ("failover", Some("primary")) => first_failure = first_failure.min(at),
                    ("delivered", Some("backup")) => {
                        first_backup_delivery = first_backup_delivery.min(at)
                    }
                    _ => {}
                }
            }
            if events.iter().any(|e| e["kind"] == "failover") {
                failed_over += 1;
            }
        }
        assert!(failed_over > 0, "no attempt failed over in flight");
        assert!(first_failure < i64::MAX && first_backup_delivery < i64::MAX);
        let switch = first_backup_delivery - first_failure;
        assert!(
            switch <= 1_000,
            "the backup took over {switch} ms after the first failure"
        );

        let metrics = app.metrics().await;
        assert!(
            metrics.contains(r#"postern_provider_health{provider="primary",state="down"} 1"#),
            "{metrics}"
        );
    });
}

#[test]
fn route_moves_and_tenant_routes_steer_traffic_and_undo_cleanly() {
    run_blocking(async {
        let primary = Sink::start(&[]);
        let backup = Sink::start(&[]);
        let app = spawn(&two_relays(&primary, &backup, &[]));
        let reload = Duration::from_millis(1_500);

        send_many(&app, &app.key, 5, 5).await;
        wait_delivered(&app, 5, 30).await;
        assert_eq!(
            (message_ids(&primary).len(), message_ids(&backup).len()),
            (5, 0)
        );

        let out = app.cli(&["route", "move", "--from", "primary", "--to", "backup"]);
        assert!(out.contains("Moved all tenants"), "{out}");
        tokio::time::sleep(reload).await;
        send_many(&app, &app.key, 5, 5).await;
        wait_delivered(&app, 10, 30).await;
        assert_eq!(
            (message_ids(&primary).len(), message_ids(&backup).len()),
            (5, 5)
        );

        // Moving back is undoing.
        let out = app.cli(&["route", "move", "--from", "backup", "--to", "primary"]);
        assert!(out.contains("Undid"), "{out}");
        tokio::time::sleep(reload).await;
        send_many(&app, &app.key, 5, 5).await;
        wait_delivered(&app, 15, 30).await;
        assert_eq!(
            (message_ids(&primary).len(), message_ids(&backup).len()),
            (10, 5)
        );

        // A tenant with its own route; the others keep the default.
        let acme = app.new_key("acme");
        app.cli(&["route", "set", "--tenant", "acme", "backup"]);
        tokio::time::sleep(reload).await;
        send_many(&app, &acme, 3, 3).await;
        send_many(&app, &app.key, 2, 2).await;
        wait_delivered(&app, 20, 30).await;
        assert_eq!(
            (message_ids(&primary).len(), message_ids(&backup).len()),
            (12, 8)
        );

        let show: Value = serde_json::from_str(&app.cli(&["--json", "route", "show"])).unwrap();
        let acme_row = show["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tenant"] == "acme")
            .unwrap();
        assert_eq!(acme_row["resolved"], serde_json::json!(["backup"]));
        assert_eq!(show["moves"], serde_json::json!([]));

        // Bad input: a clear error, nothing changed.
        for (args, says) in [
            (
                vec!["route", "set", "--tenant", "acme", "nosuch"],
                "no provider \"nosuch\"",
            ),
            (
                vec!["route", "set", "--tenant", "ghost", "primary"],
                "no tenant",
            ),
            (
                vec!["route", "set", "--tenant", "acme", "primary,primary"],
                "named twice",
            ),
            (
                vec!["route", "move", "--from", "primary", "--to", "nosuch"],
                "no provider",
            ),
            (
                vec!["route", "move", "--from", "primary", "--to", "primary"],
                "cannot move",
            ),
        ] {
            let (ok, _, err) = app.cli_raw(&args);
            assert!(!ok, "{args:?} succeeded");
            assert!(err.contains(says), "{args:?}: {err}");
        }
        let again: Value = serde_json::from_str(&app.cli(&["--json", "route", "show"])).unwrap();
        assert_eq!(again, show);
    });
}

#[test]
fn moving_away_pulls_deferred_messages_forward() {
    run_blocking(async {
        // The primary defers everything; its messages would wait a minute for their retry.
        let primary = Sink::start(&["--tempfail-first", "1000000"]);
        let backup = Sink::start(&[]);
        let app = spawn(&two_relays(
            &primary,
            &backup,
            &[("POSTERN_QUEUE_BACKOFF_BASE_SECS", "60")],
        ));
        // Four: five failures in a row would open the primary's breaker, which pulls its
        // deferred messages forward by itself and would leave the move nothing to do.
        let ids = send_many(&app, &app.key, 4, 4).await;
        for id in &ids {
            app.wait_status(id, "deferred", 30).await;
        }
        let started = Instant::now();
        app.cli(&["route", "move", "--from", "primary", "--to", "backup"]);
        wait_delivered(&app, 4, 30).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "deferred messages waited for their backoff"
        );
        assert_eq!(message_ids(&backup).len(), 4);
        assert_eq!(message_ids(&primary).len(), 0);
    });
}

#[test]
fn serve_refuses_a_bad_provider_config_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[providers.pigeon]\ntype = \"carrierpigeon\"\n[routes]\ndefault = [\"pigeon\"]\n",
            "line 2, `providers.pigeon.type`: unknown variant `carrierpigeon`",
        ),
        (
            "[providers.relay]\ntype = \"smtp\"\nport = 25\n",
            "line 1, `providers.relay`: missing field `host`",
        ),
        (
            "[providers.relay]\ntype = \"smtp\"\nhost = \"h\"\n\n[routes]\ndefault = [\"relay\", \"backup\"]\n",
            "line 6, `routes.default`: [routes] default names provider \"backup\"",
        ),
        (
            "[providers.relay]\ntype = \"smtp\"\nhost = \"h\"\nmax_rate = \"fast\"\n",
            "[providers.relay] max_rate must be a number of messages per second from 0.001 up",
        ),
    ];
    for (text, says) in cases {
        let path = dir.path().join("postern.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(common::BIN)
            .arg("--config")
            .arg(&path)
            .arg("serve")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "serve started with {text:?}");
        assert!(err.contains(says), "{text:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
