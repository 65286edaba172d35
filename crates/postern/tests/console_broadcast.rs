//! The console's incident broadcast form, black-box: a preview (dry run) lists who would get
//! what and changes nothing; a send delivers the notice to the tenant's email contact at an
//! aiosmtpd relay (never the suspect one) and to its webhook (signature checked with the
//! tenant's secret), posts the incident on the status page and is in the audit log; bad
//! input is 422 with the field named and nothing changed; a stale form, an auditor and a
//! tenant-admin are refused.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "support/console_client.rs"]
mod console_client;
#[path = "support/peers.rs"]
#[allow(dead_code)]
mod peers;

use common::{App, Backend, Sink, run_blocking};
use console_client::{Client, add_admin, by_id, console_login, field};
use peers::Fake;
use serde_json::Value;

fn incidents(app: &App) -> usize {
    let v: Value = serde_json::from_str(&app.cli(&["--json", "incident", "list"])).unwrap();
    v.as_array().unwrap().len()
}

fn audit_entries(app: &App, action: &str) -> Vec<Value> {
    app.cli(&["audit", "export"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["action"] == action)
        .collect()
}

/// Two SMTP relays behind the default route, the suspect first; tenants acme and globex
/// with email contacts, acme also with an SMS number (no SMS provider is configured).
fn spawn(backend: Backend, suspect: &Sink, good: &Sink) -> App {
    let (sp, gp) = (suspect.port.to_string(), good.port.to_string());
    let app = App::spawn(
        backend,
        &[
            ("POSTERN_PROVIDERS_SUSPECT_TYPE", "smtp"),
            ("POSTERN_PROVIDERS_SUSPECT_HOST", "127.0.0.1"),
            ("POSTERN_PROVIDERS_SUSPECT_PORT", &sp),
            ("POSTERN_PROVIDERS_GOOD_TYPE", "smtp"),
            ("POSTERN_PROVIDERS_GOOD_HOST", "127.0.0.1"),
            ("POSTERN_PROVIDERS_GOOD_PORT", &gp),
            ("POSTERN_ROUTES_DEFAULT", r#"["suspect", "good"]"#),
        ],
    );
    app.cli(&["tenants", "add", "acme"]);
    app.cli(&["tenants", "add", "globex"]);
    let contacts = [
        ("acme", "--email", "ops@acme.example"),
        ("acme", "--sms", "+15551234567"),
        ("globex", "--email", "it@globex.example"),
    ];
    for (t, flag, addr) in contacts {
        app.cli(&["tenants", "contacts", "set", t, flag, addr]);
    }
    app
}

/// Gives acme a webhook contact at a receiver that checks the tenant's own secret.
fn acme_webhook(app: &App) -> Fake {
    let set: Value = serde_json::from_str(&app.cli(&[
        "--json",
        "tenants",
        "contacts",
        "set",
        "acme",
        "--webhook",
        "http://127.0.0.1:9/placeholder",
    ]))
    .unwrap();
    let hook = Fake::start("webhook", set["webhook_secret"].as_str().unwrap());
    let url = format!("{}/incidents", hook.info().base);
    app.cli(&["tenants", "contacts", "set", "acme", "--webhook", &url]);
    hook
}

/// A good form, as a browser posts it.
fn form<'a>(csrf: &'a str, action: &'a str, status_url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("action", action),
        ("title", "Email delays"),
        ("state", "identified"),
        ("subject", "Notice for {{tenant}}: {{title}}"),
        (
            "body",
            "Hello {{tenant}},\none of our email providers is failing. Follow {{status_url}}.",
        ),
        ("status_body", "One email provider is failing."),
        ("from", "status@example.com"),
        ("tenants", "acme, globex"),
        ("channels", "email"),
        ("channels", "sms"),
        ("channels", "webhook"),
        ("suspect_provider", "suspect"),
        ("status_url", status_url),
        ("incident", ""),
    ]
}

/// `form` with `key` set to `value` (every earlier value of it dropped), or removed.
fn with<'a>(
    mut f: Vec<(&'a str, &'a str)>,
    key: &'a str,
    value: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    f.retain(|(k, _)| *k != key);
    if let Some(v) = value {
        f.push((key, v));
    }
    f
}

async fn preview_then_send(backend: Backend) {
    let name = backend.name();
    let (suspect, good) = (Sink::start(&[]), Sink::start(&[]));
    let app = spawn(backend, &suspect, &good);
    let hook = acme_webhook(&app);
    let otp = add_admin(&app, "root", "owner", None);
    let (c, csrf) = console_login(&app, "root", &otp).await;
    let status_url = app.url("/status");

    let (s, page) = c.get("/console/broadcast").await;
    assert_eq!(s, 200, "{name}: {page}");
    assert!(page.contains("href=\"/console/broadcast\" class=\"on\""));
    assert!(page.contains("<option value=\"suspect\">suspect (smtp)</option>"));

    // (a) Preview: who would get what, through which provider, with the rendered text.
    let (s, page) = c
        .post("/console/broadcast", &form(&csrf, "preview", &status_url))
        .await;
    assert_eq!(s, 200, "{name}: {page}");
    assert!(by_id(&page, "notice").contains("Dry run"), "{page}");
    assert_eq!(by_id(&page, "r-acme-email"), "would_send", "{page}");
    assert_eq!(by_id(&page, "p-acme-email"), "good");
    assert_eq!(by_id(&page, "r-acme-webhook"), "would_send");
    assert_eq!(by_id(&page, "r-globex-email"), "would_send");
    assert_eq!(by_id(&page, "r-globex-webhook"), "skipped");
    assert_eq!(by_id(&page, "r-acme-sms"), "failed");
    assert!(by_id(&page, "d-acme-sms").contains("no sms provider"));
    assert_eq!(
        by_id(&page, "subject-acme"),
        "Notice for acme: Email delays"
    );
    assert!(by_id(&page, "text-globex").starts_with("Hello globex,"));
    assert!(by_id(&page, "text-acme").contains(&status_url));
    // The form keeps what was typed, so the next press can send it.
    assert_eq!(field(&page, "title"), "Email delays");
    assert_eq!(incidents(&app), 0, "{name}: a preview opened an incident");
    assert!(good.messages().is_empty() && suspect.messages().is_empty());
    assert!(hook.requests().await.is_empty());
    assert!(audit_entries(&app, "broadcast").is_empty());

    // Send without the confirmation tick: refused, nothing sent.
    let (s, page) = c
        .post("/console/broadcast", &form(&csrf, "send", &status_url))
        .await;
    assert_eq!(s, 422, "{name}: {page}");
    assert!(by_id(&page, "notice").contains("field `confirm`"), "{page}");
    assert_eq!(incidents(&app), 0);
    assert!(good.messages().is_empty());

    // (b) Send.
    let confirmed = with(form(&csrf, "send", &status_url), "confirm", Some("yes"));
    let (s, page) = c.post("/console/broadcast", &confirmed).await;
    assert_eq!(s, 200, "{name}: {page}");
    for (t, ch) in [("acme", "email"), ("acme", "webhook"), ("globex", "email")] {
        assert_eq!(
            by_id(&page, &format!("r-{t}-{ch}")),
            "sent",
            "{name}: {page}"
        );
    }
    assert_eq!(by_id(&page, "p-acme-email"), "good");
    assert_eq!(by_id(&page, "r-globex-webhook"), "skipped");
    assert_eq!(by_id(&page, "r-acme-sms"), "failed");
    let notice = by_id(&page, "notice");
    assert!(notice.contains("3 sent, 1 failed, 2 skipped"), "{notice}");
    assert!(
        page.contains("notice err"),
        "a failed notice is shown as such"
    );
    // The form starts afresh after a send.
    assert_eq!(field(&page, "title"), "");

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
    let hooks = hook.requests().await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["signature_valid"], true);
    assert_eq!(hooks[0]["subject"], "Notice for acme: Email delays");

    let status: Value = reqwest::get(app.url("/status.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let inc = &status["incidents"][0];
    assert_eq!(inc["title"], "Email delays", "{status:#}");
    assert_eq!(inc["state"], "identified");
    assert_eq!(inc["updates"][0]["body"], "One email provider is failing.");
    assert!(notice.contains(inc["id"].as_str().unwrap()), "{notice}");

    let audit = audit_entries(&app, "broadcast");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["actor"], "admin:root");
    assert_eq!(audit[0]["target"], inc["id"]);
    let d = &audit[0]["detail"];
    assert_eq!(d["via"], "console", "{d}");
    assert_eq!(d["sent"], 3, "{d}");
    assert_eq!(d["failed"], 1, "{d}");
    assert_eq!(d["suspect_provider"], "suspect");

    // The open incident is offered for an update, and an update goes to it.
    let (_, page) = c.get("/console/broadcast").await;
    let id = inc["id"].as_str().unwrap();
    assert!(page.contains(&format!("<option value=\"{id}\">")), "{page}");
    let update = with(
        with(confirmed.clone(), "incident", Some(id)),
        "state",
        Some("resolved"),
    );
    let update = with(update, "channels", Some("email"));
    let (s, page) = c.post("/console/broadcast", &update).await;
    assert_eq!(s, 200, "{name}: {page}");
    assert_eq!(incidents(&app), 1, "{name}: an update opened an incident");
    assert_eq!(good.messages().len(), 4);
}

#[test]
fn console_broadcast_previews_then_sends_sqlite() {
    run_blocking(preview_then_send(Backend::Sqlite));
}

#[test]
fn console_broadcast_previews_then_sends_postgres() {
    run_blocking(preview_then_send(Backend::Postgres(common::PgDb::create())));
}

#[test]
fn console_broadcast_refuses_bad_input_stale_forms_and_other_roles() {
    run_blocking(async {
        let (suspect, good) = (Sink::start(&[]), Sink::start(&[]));
        let app = spawn(Backend::Sqlite, &suspect, &good);
        let otp = add_admin(&app, "root", "owner", None);
        let (c, csrf) = console_login(&app, "root", &otp).await;
        let status_url = app.url("/status");
        let good_form = || with(form(&csrf, "send", &status_url), "confirm", Some("yes"));
        let unchanged = |app: &App| {
            assert_eq!(incidents(app), 0, "an incident was opened");
            assert!(good.messages().is_empty() && suspect.messages().is_empty());
            assert!(audit_entries(app, "broadcast").is_empty());
        };

        // (c) Bad input: 422, the field named, nothing sent or stored.
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                with(good_form(), "title", Some("")),
                "field `title`: must not be empty",
            ),
            (
                with(good_form(), "tenants", Some("acme, initech")),
                "field `tenants`: no tenant \"initech\"",
            ),
            (
                with(good_form(), "tenants", Some("")),
                "field `tenants`: must be",
            ),
            (
                with(good_form(), "state", Some("fixed")),
                "field `state`: unknown incident state",
            ),
            (
                with(good_form(), "channels", Some("fax")),
                "field `channels`: unknown channel \"fax\"",
            ),
            (
                with(good_form(), "channels", None),
                "field `channels`: must not be empty",
            ),
            (
                with(good_form(), "from", None),
                "field `from`: a sender address is needed",
            ),
            (
                with(good_form(), "from", Some("not-an-address")),
                "field `from`",
            ),
            (
                with(good_form(), "incident", Some("0000")),
                "field `incident`: no incident \"0000\"",
            ),
            (
                with(good_form(), "suspect_provider", Some("sess")),
                "field `suspect_provider`: no provider \"sess\"",
            ),
            (
                with(good_form(), "body", Some("Hi {{name}}")),
                "field `body`: unknown placeholder {{name}}",
            ),
            (
                with(good_form(), "status_url", Some("status.example")),
                "field `status_url`",
            ),
            (
                with(good_form(), "action", Some("launch")),
                "field `action`",
            ),
        ];
        for (f, want) in cases {
            let (s, page) = c.post("/console/broadcast", &f).await;
            assert_eq!(s, 422, "{want}: {page}");
            let notice = by_id(&page, "notice");
            assert!(
                notice.contains(&html_escaped(want)),
                "{notice:?} lacks {want:?}"
            );
        }
        // The form comes back as typed, the bad field marked.
        let (_, page) = c
            .post(
                "/console/broadcast",
                &with(good_form(), "tenants", Some("acme, initech")),
            )
            .await;
        assert!(
            page.contains("value=\"acme, initech\" aria-invalid=\"true\""),
            "{page}"
        );
        unchanged(&app);

        // (d) A post without the CSRF token, or with another one: 403, nothing runs.
        for token in [None, Some("0".repeat(64))] {
            let mut f = with(good_form(), "csrf", None);
            if let Some(t) = &token {
                f.push(("csrf", t));
            }
            let (s, page) = c.post("/console/broadcast", &f).await;
            assert_eq!(s, 403, "{page}");
            assert!(page.contains("CSRF"), "{page}");
        }
        // Without a session: the login page.
        assert_eq!(
            Client::new(&app)
                .post("/console/broadcast", &good_form())
                .await
                .0,
            303
        );

        // An auditor sees no form and its posts are refused.
        let otp = add_admin(&app, "watcher", "auditor", None);
        let (a, a_csrf) = console_login(&app, "watcher", &otp).await;
        let (s, page) = a.get("/console/broadcast").await;
        assert_eq!(s, 200, "{page}");
        assert!(!page.contains("id=\"broadcast\""), "{page}");
        for action in ["send", "preview"] {
            let f = with(
                with(good_form(), "csrf", Some(&a_csrf)),
                "action",
                Some(action),
            );
            let (s, page) = a.post("/console/broadcast", &f).await;
            assert_eq!(s, 403, "{page}");
            assert!(page.contains("read-only"), "{page}");
        }

        // A broadcast is not one tenant's: a tenant-admin is refused.
        let otp = add_admin(&app, "acme-admin", "tenant-admin", Some("acme"));
        let (t, t_csrf) = console_login(&app, "acme-admin", &otp).await;
        assert_eq!(t.get("/console/broadcast").await.0, 403);
        let f = with(good_form(), "csrf", Some(&t_csrf));
        let (s, page) = t.post("/console/broadcast", &f).await;
        assert_eq!(s, 403, "{page}");
        unchanged(&app);
    });
}

/// `s` as the page shows it (the notice is escaped text).
fn html_escaped(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;")
}
