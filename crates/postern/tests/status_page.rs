//! The public status page against a running server, on both backends: channel states follow a
//! relay (aiosmtpd) going down and the kill switch; incidents and their updates show in the
//! HTML, JSON and Atom forms, escaped; the Atom feed is checked by a real XML parser (Python's
//! ElementTree) for what Atom 1.0 requires.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{App, Backend, Sink, run_blocking, simple_message};
use serde_json::Value;

async fn get(app: &App, path: &str) -> (u16, String, String) {
    let r = reqwest::get(app.url(path)).await.unwrap();
    let code = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (code, ct, r.text().await.unwrap())
}

async fn status(app: &App) -> Value {
    let (code, ct, body) = get(app, "/status.json").await;
    assert_eq!(code, 200, "{body}");
    assert!(ct.starts_with("application/json"), "{ct}");
    serde_json::from_str(&body).unwrap()
}

fn channel(v: &Value, name: &str) -> String {
    v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == name)
        .map(|c| c["state"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "absent".into())
}

/// Polls `/status.json` until the channel is in `want` (generous deadline: a loaded machine).
async fn wait_channel(app: &App, name: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let v = status(app).await;
        if channel(&v, name) == want {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "channel {name} never became {want}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Parses the feed with ElementTree and returns what Atom 1.0 requires of it, as JSON.
fn parse_atom(xml: &str) -> Value {
    let script = r#"
import json, sys
import xml.etree.ElementTree as ET
A = "{http://www.w3.org/2005/Atom}"
root = ET.fromstring(sys.stdin.buffer.read())
def text(e, tag):
    c = e.find(A + tag)
    return None if c is None else (c.text or "")
out = {"root": root.tag, "id": text(root, "id"), "title": text(root, "title"), "updated": text(root, "updated"),
       "entries": [{k: text(e, k) for k in ("id", "title", "updated", "content")} for e in root.findall(A + "entry")]}
print(json.dumps(out))
"#;
    let mut child = Command::new(common::python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Atom feed is not well-formed XML: {}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn is_rfc3339(s: &str) -> bool {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

#[test]
fn the_page_follows_a_relay_going_down_and_the_kill_switch() {
    run_blocking(async {
        for backend in Backend::all() {
            let name = backend.name();
            let mut sink = Sink::start(&[]);
            let port = sink.port.to_string();
            let app = App::spawn(
                backend,
                &[
                    ("POSTERN_PROVIDERS_RELAY_TYPE", "smtp"),
                    ("POSTERN_PROVIDERS_RELAY_HOST", "127.0.0.1"),
                    ("POSTERN_PROVIDERS_RELAY_PORT", &port),
                    ("POSTERN_ROUTES_DEFAULT", r#"["relay"]"#),
                    ("POSTERN_QUEUE_BACKOFF_BASE_SECS", "1"),
                ],
            );
            let v = wait_channel(&app, "email", "operational").await;
            assert_eq!(v["overall"], "operational", "{name}: {v:#}");
            assert_eq!(channel(&v, "sms"), "absent", "{name}: no SMS provider");

            // The relay stops answering: after a few refused connections it is down, and the
            // file sink `local` still works: degraded.
            sink.stop();
            for i in 0..5 {
                let (code, _) = app
                    .send(&app.key, simple_message(&format!("u{i}@example.org")))
                    .await;
                assert_eq!(code, 202);
            }
            let v = wait_channel(&app, "email", "degraded").await;
            assert_eq!(v["overall"], "degraded", "{name}");

            // With the other provider paused nothing can carry email: outage.
            app.cli(&["pause", "--provider", "local", "--reason", "test"]);
            wait_channel(&app, "email", "outage").await;
            app.cli(&["resume", "--provider", "local"]);
            app.cli(&["pause", "--channel", "email", "--reason", "test"]);
            let v = wait_channel(&app, "email", "paused").await;
            assert_eq!(v["overall"], "paused", "{name}");
            app.cli(&["resume", "--channel", "email"]);
            wait_channel(&app, "email", "degraded").await;

            incidents_render_everywhere(&app, name).await;
        }
    });
}

async fn incidents_render_everywhere(app: &App, name: &str) {
    let title = "<b>Delays</b> & \"quotes\"";
    let out = app.cli(&[
        "--json",
        "incident",
        "open",
        "--title",
        title,
        "--body",
        "We are <looking> into it.",
    ]);
    let inc: Value = serde_json::from_str(&out).unwrap();
    let id = inc["id"].as_str().unwrap().to_owned();
    assert_eq!(inc["state"], "investigating");

    let v = status(app).await;
    assert_eq!(v["incidents"][0]["title"], title, "{name}: {v:#}");
    assert_eq!(
        v["incidents"][0]["updates"][0]["body"],
        "We are <looking> into it."
    );
    assert!(v["history"].as_array().unwrap().is_empty());

    let (code, ct, html) = get(app, "/status").await;
    assert_eq!(code, 200);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(html.contains("name=\"viewport\""), "{html}");
    assert!(!html.contains("<script"), "no script needed");
    assert!(
        html.contains("&lt;b&gt;Delays&lt;/b&gt; &amp; &quot;quotes&quot;"),
        "{html}"
    );
    assert!(
        !html.contains("<b>Delays"),
        "stored text reached the page unescaped"
    );
    assert!(html.contains("We are &lt;looking&gt; into it."));

    app.cli(&[
        "incident",
        "update",
        &id,
        "--state",
        "monitoring",
        "--body",
        "Fix deployed.",
    ]);
    app.cli(&[
        "incident",
        "update",
        &id,
        "--state",
        "resolved",
        "--body",
        "All clear.",
    ]);
    let v = status(app).await;
    assert!(v["incidents"].as_array().unwrap().is_empty(), "{v:#}");
    let h = &v["history"][0];
    assert_eq!(h["state"], "resolved");
    let states: Vec<&str> = h["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["resolved", "monitoring", "investigating"],
        "newest first"
    );
    assert!(h["resolved_at"].as_str().is_some_and(is_rfc3339));

    let (code, ct, xml) = get(app, "/status/feed.atom").await;
    assert_eq!(code, 200);
    assert!(ct.starts_with("application/atom+xml"), "{ct}");
    let feed = parse_atom(&xml);
    assert_eq!(feed["root"], "{http://www.w3.org/2005/Atom}feed");
    assert!(
        feed["id"]
            .as_str()
            .is_some_and(|s| s.starts_with("http://"))
    );
    assert!(feed["title"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(feed["updated"].as_str().is_some_and(is_rfc3339), "{feed}");
    let e = &feed["entries"][0];
    assert_eq!(e["id"], format!("urn:uuid:{id}"));
    assert_eq!(
        e["title"],
        format!("{title} (resolved)"),
        "the parser unescapes"
    );
    assert!(e["updated"].as_str().is_some_and(is_rfc3339));
    assert!(e["content"].as_str().unwrap().contains("All clear."));

    // Bad input: a clear message, nothing changed.
    let (ok, _, err) = app.cli_raw(&["incident", "update", &id, "--state", "fixed", "--body", "x"]);
    assert!(
        !ok && err.contains("unknown incident state \"fixed\""),
        "{err}"
    );
    let (ok, _, err) = app.cli_raw(&[
        "incident", "update", "nope", "--state", "resolved", "--body", "x",
    ]);
    assert!(!ok && err.contains("no incident \"nope\""), "{err}");
    let (ok, _, err) = app.cli_raw(&["incident", "open", "--title", " ", "--body", "x"]);
    assert!(!ok && err.contains("title must not be empty"), "{err}");
    let list: Value = serde_json::from_str(&app.cli(&["--json", "incident", "list"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["updates"].as_array().unwrap().len(), 3);
}
