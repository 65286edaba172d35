//! Crash safety: messages are submitted while the server is killed with SIGKILL twice and
//! restarted. Afterwards every accepted message is delivered exactly once, and none that was
//! refused is delivered. (bench/crash runs the same check with 10,000 messages.)
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{App, Backend, files_in};
use serde_json::json;

/// bench/crash sets `POSTERN_TEST_CRASH_MESSAGES=10000`.
fn total() -> usize {
    std::env::var("POSTERN_TEST_CRASH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}
const CLIENTS: usize = 16;

#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Accepted(String),
    Refused(u16),
}

async fn submit(client: &reqwest::Client, url: &str, key: &str, seq: usize) -> Answer {
    // Every 97th message is invalid on purpose: it must be refused and never delivered.
    let to = if seq.is_multiple_of(97) {
        "not an address".to_owned()
    } else {
        format!("user{seq}@example.org")
    };
    let body = json!({"from": "app@example.com", "to": [to], "subject": format!("crash {seq}"),
                      "text": "x", "headers": {"X-Seq": seq.to_string()}});
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        // Retries carry the same idempotency key, so an accept whose answer was lost in the
        // crash is never queued twice.
        let r = client
            .post(url)
            .bearer_auth(key)
            .header("Idempotency-Key", format!("seq-{seq}"))
            .json(&body)
            .send()
            .await;
        match r {
            Ok(resp) if resp.status() == 202 => {
                let v: serde_json::Value = resp.json().await.unwrap_or_default();
                if let Some(id) = v["id"].as_str() {
                    return Answer::Accepted(id.to_owned());
                }
            }
            Ok(resp) if resp.status().is_client_error() => {
                return Answer::Refused(resp.status().as_u16());
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "message {seq} was never answered"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twice_loses_and_duplicates_nothing() {
    let total = total();
    let port = common::free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut app = App::spawn(Backend::Sqlite, &[("POSTERN_HTTP_LISTEN", &listen)]);
    let url = app.url("/v1/messages");
    let key = app.key.clone();
    let next = Arc::new(AtomicUsize::new(1));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (url, key, next, answered) = (url.clone(), key.clone(), next.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut mine = HashMap::new();
            loop {
                let seq = next.fetch_add(1, Ordering::SeqCst);
                if seq > total {
                    return mine;
                }
                mine.insert(seq, submit(&client, &url, &key, seq).await);
                answered.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for kill_at in [total / 4, total * 3 / 5] {
        while answered.load(Ordering::SeqCst) < kill_at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        app.kill9();
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.start();
    }
    let mut answers = HashMap::new();
    for t in tasks {
        answers.extend(t.await.unwrap());
    }
    assert_eq!(answers.len(), total);
    let accepted: HashMap<usize, String> = answers
        .iter()
        .filter_map(|(s, a)| {
            if let Answer::Accepted(id) = a {
                Some((*s, id.clone()))
            } else {
                None
            }
        })
        .collect();
    let refused: Vec<usize> = answers
        .iter()
        .filter(|(_, a)| matches!(a, Answer::Refused(_)))
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(
        refused.len(),
        total / 97,
        "only the invalid ones are refused: {refused:?}"
    );

    // Wait for the queue to drain into the outbox.
    let deadline = Instant::now() + Duration::from_secs(120);
    while files_in(&app.outbox(), "eml").len() < accepted.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} delivered",
            files_in(&app.outbox(), "eml").len(),
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut message_ids: HashMap<String, usize> = HashMap::new();
    for f in files_in(&app.outbox(), "eml") {
        let text = std::fs::read_to_string(&f).unwrap();
        let header = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| panic!("{name} in {f:?}"))
        };
        *seen.entry(header("X-Seq:").parse().unwrap()).or_default() += 1;
        *message_ids.entry(header("Message-ID:")).or_default() += 1;
    }
    let dups: Vec<_> = message_ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "delivered more than once: {dups:?}");
    for seq in accepted.keys() {
        assert_eq!(
            seen.get(seq),
            Some(&1),
            "accepted message {seq} delivered exactly once"
        );
    }
    for seq in &refused {
        assert!(
            !seen.contains_key(seq),
            "refused message {seq} was delivered"
        );
    }
    assert_eq!(seen.len(), accepted.len());
    println!(
        "crash: {total} submitted, {} accepted, {} refused, 2 SIGKILLs, {} delivered, 0 duplicates",
        accepted.len(),
        refused.len(),
        seen.len()
    );
    // The restarts took back unfinished claims rather than losing them.
    for id in accepted.values().take(50) {
        assert_eq!(app.message(id).await["status"], "delivered");
    }
}
