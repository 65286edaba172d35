//! Suppression lists, end to end: a suppressed address is never sent to (the accept answers
//! `suppressed` when no recipient is left), hard bounces from a real relay (aiosmtpd) suppress
//! by themselves, lists are per tenant, and the CLI adds, removes, imports and exports them.
#![allow(clippy::unwrap_used)]

mod common;

use common::{App, Backend, Sink, run_blocking};
use serde_json::{Value, json};

fn spawn(backend: Backend, sink: &Sink) -> App {
    let port = sink.port.to_string();
    App::spawn(
        backend,
        &[
            ("POSTERN_PROVIDERS_RELAY_TYPE", "smtp"),
            ("POSTERN_PROVIDERS_RELAY_HOST", "127.0.0.1"),
            ("POSTERN_PROVIDERS_RELAY_PORT", &port),
            ("POSTERN_ROUTES_DEFAULT", r#"["relay"]"#),
        ],
    )
}

async fn send(app: &App, key: &str, to: &[&str]) -> (String, String) {
    let body = json!({"from": "app@example.com", "to": to, "subject": "Hi", "text": "Hello"});
    let (code, v) = app.send(key, body).await;
    assert_eq!(code, 202, "{v}");
    (
        v["id"].as_str().unwrap().to_owned(),
        v["status"].as_str().unwrap().to_owned(),
    )
}

fn listed(app: &App, tenant: &str) -> Vec<Value> {
    let out = app.cli(&["--json", "suppressions", "list", "--tenant", tenant]);
    serde_json::from_str::<Vec<Value>>(&out).unwrap()
}

async fn suppressed_addresses_are_never_sent_to(backend: Backend) {
    let sink = Sink::start(&["--reject-domain", "gone.example"]);
    let app = spawn(backend, &sink);
    app.cli(&[
        "suppressions",
        "add",
        "--tenant",
        "default",
        "Bob@Example.org",
    ]);

    // Every recipient suppressed: answered `suppressed`, stored with the reason, never sent.
    let (id, status) = send(&app, &app.key, &["bob@example.ORG"]).await;
    assert_eq!(status, "suppressed");
    let m = app.message(&id).await;
    assert_eq!(m["status"], "suppressed");
    assert!(
        m["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "suppressed" && e["recipient"] == "bob@example.ORG"),
        "{m:#}"
    );

    // Some suppressed: the others get it, the suppressed one does not.
    let (id, status) = send(&app, &app.key, &["bob@example.org", "carol@example.org"]).await;
    assert_eq!(status, "queued");
    app.wait_status(&id, "delivered", 15).await;
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("X-Sink-Rcpt-To: carol@example.org\r\n"),
        "{}",
        got[0]
    );

    // A hard bounce from the relay suppresses by itself.
    let (id, _) = send(&app, &app.key, &["nobody@gone.example"]).await;
    app.wait_status(&id, "bounced", 15).await;
    let list = listed(&app, "default");
    let gone = list
        .iter()
        .find(|s| s["address"] == "nobody@gone.example")
        .unwrap_or_else(|| panic!("{list:?}"));
    assert_eq!(gone["reason"], "userunknown");
    assert_eq!(gone["source"], "delivery");
    let (_, status) = send(&app, &app.key, &["nobody@gone.example"]).await;
    assert_eq!(status, "suppressed");

    // Per tenant: another tenant still sends to it.
    let other = app.new_key("other");
    let (_, status) = send(&app, &other, &["bob@example.org"]).await;
    assert_eq!(status, "queued");

    // Removing lets mail through again.
    app.cli(&[
        "suppressions",
        "remove",
        "--tenant",
        "default",
        "bob@example.org",
    ]);
    let (_, status) = send(&app, &app.key, &["bob@example.org"]).await;
    assert_eq!(status, "queued");
}

#[test]
fn suppressed_addresses_are_never_sent_to_on_every_backend() {
    for backend in Backend::all() {
        run_blocking(suppressed_addresses_are_never_sent_to(backend));
    }
}

#[test]
fn csv_import_and_export_round_trip_and_bad_files_change_nothing() {
    run_blocking(async {
        let sink = Sink::start(&[]);
        let app = spawn(Backend::Sqlite, &sink);
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.csv");
        std::fs::write(
            &good,
            "address,reason,detail\na@example.org,complaint,\"from ARF, 2026\"\n B@Example.org ,,\n",
        )
        .unwrap();
        let out = app.cli(&[
            "suppressions",
            "import",
            "--tenant",
            "default",
            good.to_str().unwrap(),
        ]);
        assert!(out.contains("Imported 2 rows"), "{out}");
        let list = listed(&app, "default");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["address"], "a@example.org");
        assert_eq!(list[0]["reason"], "complaint");
        assert_eq!(list[0]["detail"], "from ARF, 2026");
        assert_eq!(list[1]["address"], "b@example.org");
        assert_eq!(list[1]["reason"], "import");

        let exported = dir.path().join("out.csv");
        app.cli(&[
            "suppressions",
            "export",
            "--tenant",
            "default",
            exported.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(&exported).unwrap();
        assert!(
            text.starts_with("address,reason,source,detail,created_at\n"),
            "{text}"
        );
        assert!(
            text.contains("a@example.org,complaint,import,\"from ARF, 2026\","),
            "{text}"
        );
        // The export imports back unchanged.
        app.cli(&[
            "suppressions",
            "remove",
            "--tenant",
            "default",
            "a@example.org",
            "b@example.org",
        ]);
        assert!(listed(&app, "default").is_empty());
        app.cli(&[
            "suppressions",
            "import",
            "--tenant",
            "default",
            exported.to_str().unwrap(),
        ]);
        assert_eq!(listed(&app, "default").len(), 2);

        // Bad files: a clear error naming the rows, and nothing imported.
        let bad = dir.path().join("bad.csv");
        for (text, says) in [
            (
                "address\nok@example.org\nnot-an-address\n",
                "line 3: \"not-an-address\"",
            ),
            ("email\nx@example.org\n", "`address` column"),
        ] {
            std::fs::write(&bad, text).unwrap();
            let (ok, _, err) = app.cli_raw(&[
                "suppressions",
                "import",
                "--tenant",
                "default",
                bad.to_str().unwrap(),
            ]);
            assert!(!ok, "{text:?} imported");
            assert!(err.contains(says), "{err}");
        }
        assert_eq!(listed(&app, "default").len(), 2);
        let (ok, _, err) = app.cli_raw(&["suppressions", "add", "--tenant", "default", "x@@y"]);
        assert!(!ok && err.contains("not an email address"), "{err}");
        let (ok, _, err) = app.cli_raw(&["suppressions", "list", "--tenant", "ghost"]);
        assert!(!ok && err.contains("no tenant"), "{err}");
    });
}
