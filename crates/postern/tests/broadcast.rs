//! `postern broadcast` end to end, on both backends: email through aiosmtpd relays (never the
//! suspect one, though it comes first in the route), SMS through the Twilio API fake, webhooks
//! to a receiver that checks `Postern-Signature` with the tenant's secret; the incident on the
//! status page; a dry run and bad files change nothing.
#![allow(clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "support/peers.rs"]
#[allow(dead_code)]
mod peers;

use common::{App, Backend, Sink, run_blocking};
use peers::Fake;
use serde_json::Value;

fn write(app: &App, name: &str, text: &str) -> String {
    let p = app.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn incident_file(status_url: &str, tenants: &str) -> String {
    format!(
        r#"title = "Email delays"
state = "identified"
subject = "Notice for {{{{tenant}}}}: {{{{title}}}}"
body = """Hello {{{{tenant}}}},
one of our email providers is failing. Follow {{{{status_url}}}}."""
status_body = "One email provider is failing; mail goes through the others."
from = "status@example.com"
tenants = {tenants}
channels = ["email", "sms", "webhook"]
suspect_provider = "suspect"
status_url = "{status_url}"
"#
    )
}

fn incidents(app: &App) -> usize {
    let v: Value = serde_json::from_str(&app.cli(&["--json", "incident", "list"])).unwrap();
    v.as_array().unwrap().len()
}

/// The audit log's entries with this action.
fn audit_entries(app: &App, action: &str) -> Vec<Value> {
    app.cli(&["audit", "export"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["action"] == action)
        .collect()
}

fn by(report: &Value, tenant: &str, channel: &str) -> Value {
    report["notices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["tenant"] == tenant && n["channel"] == channel)
        .cloned()
        .unwrap_or_else(|| panic!("no {tenant}/{channel} notice in {report:#}"))
}

#[test]
fn broadcast_reaches_every_channel_and_never_the_suspect() {
    run_blocking(async {
        for backend in Backend::all() {
            let name = backend.name();
            let suspect = Sink::start(&[]);
            let good = Sink::start(&[]);
            let twilio = Fake::start("twilio", "twilio-token");
            let (sp, gp, tw) = (
                suspect.port.to_string(),
                good.port.to_string(),
                twilio.info().base,
            );
            let app = App::spawn(
                backend,
                &[
                    ("POSTERN_PROVIDERS_SUSPECT_TYPE", "smtp"),
                    ("POSTERN_PROVIDERS_SUSPECT_HOST", "127.0.0.1"),
                    ("POSTERN_PROVIDERS_SUSPECT_PORT", &sp),
                    ("POSTERN_PROVIDERS_GOOD_TYPE", "smtp"),
                    ("POSTERN_PROVIDERS_GOOD_HOST", "127.0.0.1"),
                    ("POSTERN_PROVIDERS_GOOD_PORT", &gp),
                    ("POSTERN_PROVIDERS_SMS_TYPE", "twilio"),
                    ("POSTERN_PROVIDERS_SMS_ACCOUNT_SID", peers::TWILIO_SID),
                    ("POSTERN_PROVIDERS_SMS_AUTH_TOKEN", "twilio-token"),
                    ("POSTERN_PROVIDERS_SMS_FROM", "\"+15550000000\""),
                    ("POSTERN_PROVIDERS_SMS_BASE_URL", &tw),
                    // The suspect comes first: only the broadcast's own rule keeps it out.
                    ("POSTERN_ROUTES_DEFAULT", r#"["suspect", "good"]"#),
                ],
            );
            app.cli(&["tenants", "add", "acme"]);
            app.cli(&["tenants", "add", "globex"]);
            // The webhook secret is the tenant's: learn it, then start a receiver that checks it.
            let set: Value = serde_json::from_str(&app.cli(&[
                "--json",
                "tenants",
                "contacts",
                "set",
                "acme",
                "--email",
                "ops@acme.example",
                "--sms",
                "+15551234567",
                "--webhook",
                "http://127.0.0.1:9/placeholder",
            ]))
            .unwrap();
            let secret = set["webhook_secret"].as_str().unwrap().to_owned();
            assert!(secret.starts_with("whsec_"), "{set}");
            let hook = Fake::start("webhook", &secret);
            app.cli(&[
                "tenants",
                "contacts",
                "set",
                "acme",
                "--webhook",
                &format!("{}/incidents", hook.info().base),
            ]);
            app.cli(&[
                "tenants",
                "contacts",
                "set",
                "globex",
                "--email",
                "it@globex.example",
            ]);
            let status_url = app.url("/status");
            let file = write(
                &app,
                "incident.toml",
                &incident_file(&status_url, r#"["acme", "globex"]"#),
            );

            // Dry run: who would get what; nothing sent, nothing stored.
            let dry: Value = serde_json::from_str(&app.cli(&[
                "--json",
                "broadcast",
                "--incident",
                &file,
                "--dry-run",
            ]))
            .unwrap();
            let e = by(&dry, "acme", "email");
            assert_eq!(e["outcome"], "would_send", "{name}: {dry:#}");
            assert_eq!(e["provider"], "good");
            assert_eq!(e["subject"], "Notice for acme: Email delays");
            assert!(e["text"].as_str().unwrap().contains(&status_url));
            assert_eq!(by(&dry, "globex", "sms")["outcome"], "skipped");
            assert_eq!(incidents(&app), 0, "{name}: a dry run opened an incident");
            assert!(good.messages().is_empty() && suspect.messages().is_empty());
            assert!(hook.requests().await.is_empty());
            let text = app.cli(&["broadcast", "--incident", &file, "--dry-run"]);
            assert!(
                text.contains("Dry run") && text.contains("TENANT"),
                "{text}"
            );

            // Bad files: the line and key named, nothing changed.
            for (bad, want) in [
                (
                    incident_file(&status_url, r#"["acme", "initech"]"#),
                    "line 8, key `tenants`: no tenant \"initech\"",
                ),
                (
                    incident_file(&status_url, "\"all\"").replace(
                        "suspect_provider = \"suspect\"",
                        "suspect_provider = \"sess\"",
                    ),
                    "line 10, key `suspect_provider`: no provider \"sess\"",
                ),
                (
                    incident_file(&status_url, "\"all\"").replace("\"sms\"", "\"fax\""),
                    "line 9, key `channels`: unknown channel \"fax\"",
                ),
                (
                    incident_file(&status_url, "\"all\"").replace("tenants =", "tenant ="),
                    "line 8: unknown field `tenant`",
                ),
            ] {
                let f = write(&app, "bad.toml", &bad);
                let (ok, _, err) = app.cli_raw(&["broadcast", "--incident", &f]);
                assert!(!ok, "{name}: {bad}");
                assert!(err.contains(want), "{name}: {err:?} lacks {want:?}");
            }
            assert_eq!(incidents(&app), 0);
            assert!(good.messages().is_empty() && suspect.messages().is_empty());
            assert!(audit_entries(&app, "broadcast").is_empty());

            // The broadcast.
            let report: Value =
                serde_json::from_str(&app.cli(&["--json", "broadcast", "--incident", &file]))
                    .unwrap();
            for (t, ch) in [
                ("acme", "email"),
                ("acme", "sms"),
                ("acme", "webhook"),
                ("globex", "email"),
            ] {
                assert_eq!(by(&report, t, ch)["outcome"], "sent", "{name}: {report:#}");
            }
            assert_eq!(by(&report, "acme", "email")["provider"], "good");
            assert_eq!(by(&report, "acme", "sms")["provider"], "sms");
            assert_eq!(by(&report, "globex", "webhook")["outcome"], "skipped");

            assert!(
                suspect.messages().is_empty(),
                "{name}: the suspect was used"
            );
            let mails = good.messages();
            assert_eq!(mails.len(), 2, "{name}");
            let acme = mails
                .iter()
                .find(|m| m.contains("ops@acme.example"))
                .expect("acme's notice");
            assert!(
                acme.contains("Subject: Notice for acme: Email delays"),
                "{acme}"
            );
            assert!(acme.contains("Hello acme,"), "{acme}");
            assert!(mails.iter().any(|m| m.contains("Hello globex,")));

            let hooks = hook.requests().await;
            assert_eq!(hooks.len(), 1, "{hooks:?}");
            assert_eq!(hooks[0]["signature_valid"], true);
            assert_eq!(hooks[0]["subject"], "Notice for acme: Email delays");
            assert!(hooks[0]["text"].as_str().unwrap().contains("Hello acme,"));

            let sms = twilio.requests().await;
            assert_eq!(sms.len(), 1, "{sms:?}");
            assert_eq!(sms[0]["recipients"][0], "+15551234567");
            assert!(sms[0]["text"].as_str().unwrap().contains("Hello acme,"));

            // Posted on the status page, with the public text (no tenant's name).
            let page: Value = reqwest::get(app.url("/status.json"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let inc = &page["incidents"][0];
            assert_eq!(inc["title"], "Email delays", "{page:#}");
            assert_eq!(inc["state"], "identified");
            assert_eq!(
                inc["updates"][0]["body"],
                "One email provider is failing; mail goes through the others."
            );
            assert_eq!(incidents(&app), 1);

            // Recorded in the audit log, by the operator who ran it.
            let audit = audit_entries(&app, "broadcast");
            assert_eq!(audit.len(), 1, "{audit:?}");
            assert!(audit[0]["actor"].as_str().unwrap().starts_with("cli:"));
            assert_eq!(audit[0]["target"], inc["id"]);
            assert_eq!(audit[0]["detail"]["sent"], 4, "{audit:?}");
            assert_eq!(audit[0]["detail"]["suspect_provider"], "suspect");

            // The table form names each channel's result.
            let table = app.cli(&["broadcast", "--incident", &file]);
            assert!(
                table.contains("RESULT") && table.contains("4 sent, 0 failed"),
                "{table}"
            );

            // A paused provider is skipped too; with none left, the notice is reported as
            // failed with the reasons, and nothing goes to the suspect.
            let dry_email = |app: &App| {
                let v: Value = serde_json::from_str(&app.cli(&[
                    "--json",
                    "broadcast",
                    "--incident",
                    &file,
                    "--dry-run",
                ]))
                .unwrap();
                by(&v, "acme", "email")
            };
            app.cli(&["pause", "--provider", "good", "--reason", "test"]);
            assert_eq!(dry_email(&app)["provider"], "local", "{name}");
            app.cli(&["pause", "--provider", "local", "--reason", "test"]);
            let e = dry_email(&app);
            assert_eq!(e["outcome"], "failed", "{name}: {e:#}");
            let why = e["detail"].as_str().unwrap();
            for want in [
                "suspect is the suspect",
                "good is paused",
                "local is paused",
            ] {
                assert!(why.contains(want), "{why}");
            }
        }
    });
}

#[test]
fn contacts_are_checked_before_anything_is_stored() {
    run_blocking(async {
        let app = App::spawn(Backend::Sqlite, &[]);
        app.cli(&["tenants", "add", "acme"]);
        for (args, want) in [
            (
                vec!["--email", "not-an-address"],
                "--email \"not-an-address\"",
            ),
            (
                vec!["--email", "a@b.example", "--sms", "5551234"],
                "not an E.164 number",
            ),
            (vec!["--webhook", "ftp://x"], "not an http(s) URL"),
            (vec![], "give at least one of"),
        ] {
            let mut all = vec!["tenants", "contacts", "set", "acme"];
            all.extend(args);
            let (ok, _, err) = app.cli_raw(&all);
            assert!(!ok && err.contains(want), "{err:?} lacks {want:?}");
        }
        let (ok, _, err) = app.cli_raw(&[
            "tenants",
            "contacts",
            "set",
            "nobody",
            "--email",
            "a@b.example",
        ]);
        assert!(
            !ok && err.contains("no tenant") && err.contains("nobody"),
            "{err}"
        );
        let list: Value =
            serde_json::from_str(&app.cli(&["--json", "tenants", "contacts", "list"])).unwrap();
        assert!(list.as_array().unwrap().is_empty(), "{list}");
    });
}
