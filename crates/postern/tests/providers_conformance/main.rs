//! The provider conformance suite: the same cases run against every adapter, each talking to
//! a peer that speaks the provider's documented wire format — moto's SES emulator for the SES
//! send path and signatures, and tests/support/provider_fakes.py for the HTTP APIs (and the
//! SES account-level errors moto lacks). Cases: send ok, a refused recipient, a provider-wide
//! failure, refused credentials, throttling, a server that never answers, a 5xx, nobody
//! listening — and that no secret shows up in an error or a config's Debug.
#![allow(clippy::unwrap_used)]

mod cases;
#[path = "../common/mod.rs"]
mod common;
#[path = "../support/peers.rs"]
mod peers;
mod specs;

use peers::Moto;
use postern::providers::{FailureClass, ProviderWideKind};
use serde_json::Value;
use specs::{build, expect_err, fake, message, postmark, secret_for, ses, twilio};

// ---- one module of tests per adapter ------------------------------------------------------------

macro_rules! conformance {
    ($($adapter:ident),* $(,)?) => {$(
        mod $adapter {
            #[tokio::test]
            async fn send_ok() { crate::cases::send_ok(crate::specs::$adapter()).await }
            #[tokio::test]
            async fn refused_recipient() { crate::cases::refused_recipient(crate::specs::$adapter()).await }
            #[tokio::test]
            async fn provider_wide_failure() { crate::cases::provider_wide(crate::specs::$adapter()).await }
            #[tokio::test]
            async fn auth_failure() { crate::cases::auth_failed(crate::specs::$adapter()).await }
            #[tokio::test]
            async fn throttling() { crate::cases::throttled(crate::specs::$adapter()).await }
            #[tokio::test]
            async fn timeout() { crate::cases::timeout(crate::specs::$adapter()).await }
            #[tokio::test]
            async fn server_error() { crate::cases::server_error(crate::specs::$adapter()).await }
            #[tokio::test]
            async fn unreachable() { crate::cases::unreachable(crate::specs::$adapter()).await }
            #[tokio::test]
            async fn envelope_only_recipient() { crate::cases::envelope_only_recipient(crate::specs::$adapter()).await }
        }
    )*};
}

conformance!(ses, postmark, mailgun, sendgrid, twilio, webhook, social);

// ---- account status ---------------------------------------------------------------------------

#[tokio::test]
async fn ses_account_status_from_get_account() {
    let spec = ses();
    let fake = fake(&spec).await;
    let p = build(&spec, &fake.info(), 10);
    p.send(&message(&spec, &spec.good)).await.unwrap();
    let s = p.account_status().await.unwrap().unwrap();
    assert!(s.sending_enabled);
    assert_eq!(s.enforcement.as_deref(), Some("HEALTHY"));
    assert_eq!(s.sent_last_24h, Some(2));
    assert_eq!(s.failure(), None);
    p.probe().await.unwrap();

    fake.set_mode("suspended").await;
    let s = p.account_status().await.unwrap().unwrap();
    assert!(!s.sending_enabled);
    assert_eq!(s.enforcement.as_deref(), Some("SHUTDOWN"));
    assert_eq!(s.failure(), Some(ProviderWideKind::AccountSuspended));
    let e = expect_err(&spec, p.probe().await);
    assert_eq!(
        e.class,
        FailureClass::ProviderWide(ProviderWideKind::AccountSuspended)
    );
}

#[tokio::test]
async fn twilio_account_status() {
    let spec = twilio();
    let fake = fake(&spec).await;
    let p = build(&spec, &fake.info(), 10);
    let s = p.account_status().await.unwrap().unwrap();
    assert_eq!(s.enforcement.as_deref(), Some("active"));
    fake.set_mode("suspended").await;
    let s = p.account_status().await.unwrap().unwrap();
    assert_eq!(s.failure(), Some(ProviderWideKind::AccountSuspended));
}

#[tokio::test]
async fn twilio_sends_through_a_messaging_service() {
    let spec = twilio();
    let fake = fake(&spec).await;
    let info = fake.info();
    let cfg = |sender: &str| {
        format!(
            "[providers.p]\ntype = \"twilio\"\naccount_sid = \"{}\"\nauth_token = \"{}\"\n{sender}\nbase_url = \"{}\"\n[routes]\ndefault = [\"p\"]\n",
            peers::TWILIO_SID,
            info.secret,
            info.base
        )
    };
    let c = postern::config::Config::from_toml_and_env(
        &cfg("messaging_service_sid = \"MG0000000000000000000000000000000a\""),
        [],
    )
    .unwrap();
    let providers = postern::providers::Providers::from_config(&c).unwrap();
    let d = providers
        .get("p")
        .unwrap()
        .send(&message(&spec, &spec.good[..1]))
        .await
        .unwrap();
    assert!(matches!(
        d.recipients[0].1,
        postern::providers::RecipientOutcome::Delivered { .. }
    ));
    let reqs = fake.requests().await;
    assert_eq!(
        reqs[0]["messaging_service"],
        "MG0000000000000000000000000000000a"
    );
    assert_eq!(reqs[0]["sender"], Value::Null);

    // Exactly one of the two.
    let both = cfg("from = \"+15005550006\"\nmessaging_service_sid = \"MG1\"");
    let c = postern::config::Config::from_toml_and_env(&both, []).unwrap();
    let e = postern::providers::Providers::from_config(&c)
        .err()
        .unwrap();
    assert!(e.to_string().contains("exactly one"), "{e}");
}

#[tokio::test]
async fn webhook_signature_verifies_with_the_documented_scheme() {
    // What a receiver does, in Rust: HMAC-SHA256 over "<t>.<body>".
    let sig = postern::providers::webhook_signature(b"whsec", 1_700_000_000, br#"{"a":1}"#);
    assert_eq!(
        sig,
        "t=1700000000,v1=8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032"
    );
}

// ---- the CLI ------------------------------------------------------------------------------------

#[tokio::test]
async fn cli_lists_and_tests_providers_without_showing_secrets() {
    let (pm, sms) = (postmark(), twilio());
    let (pm_fake, sms_fake) = (fake(&pm).await, fake(&sms).await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("postern.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n[providers.pm]\n{}\n[providers.sms]\n{}\n[routes]\ndefault = [\"pm\"]\n",
            dir.path().display(),
            (pm.config)(&pm_fake.info(), 5),
            (sms.config)(&sms_fake.info(), 5)
        ),
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(common::BIN)
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .envs(env.iter().copied())
            .env("POSTERN_LOG", "debug")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        for s in [secret_for(&pm), secret_for(&sms), "wrong-token-93d1".into()] {
            assert!(
                !stdout.contains(&s) && !stderr.contains(&s),
                "{args:?} shows a secret:\n{stdout}\n{stderr}"
            );
        }
        (out.status.success(), stdout, stderr)
    };

    let (ok, out, err) = run(&["--json", "providers", "list"], &[]);
    assert!(ok, "{err}");
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    let types: Vec<&str> = list.iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["postmark", "twilio"]);
    assert!(
        list[0]["config"].as_str().unwrap().contains("[redacted]"),
        "{out}"
    );

    let (ok, out, err) = run(&["providers", "test", "pm"], &[]);
    assert!(ok, "{err}");
    assert!(out.contains("pm: ok"), "{out}");

    let (ok, out, err) = run(&["--json", "providers", "test", "sms"], &[]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["channel"], "sms");
    assert_eq!(v["account"]["enforcement"], "active", "{out}");

    let (ok, _, err) = run(
        &["providers", "test", "pm"],
        &[("POSTERN_PROVIDERS_PM_SERVER_TOKEN", "wrong-token-93d1")],
    );
    assert!(!ok);
    assert!(err.contains("ErrorCode 10"), "{err}");
}

// ---- end to end through `postern serve` ------------------------------------------------------

/// The worker delivers through an HTTP API adapter configured only from the environment.
#[tokio::test]
async fn serve_delivers_through_postmark_and_bounces_its_inactive_recipient() {
    let spec = postmark();
    let fake = fake(&spec).await;
    let base = fake.info().base;
    let secret = secret_for(&spec);
    let app = common::App::spawn(
        common::Backend::Sqlite,
        &[
            ("POSTERN_PROVIDERS_PM_TYPE", "postmark"),
            ("POSTERN_PROVIDERS_PM_SERVER_TOKEN", &secret),
            ("POSTERN_PROVIDERS_PM_BASE_URL", &base),
            ("POSTERN_ROUTES_DEFAULT", r#"["pm"]"#),
        ],
    );
    let mut m = common::simple_message("bob@example.org");
    m["cc"] = serde_json::json!(["gone@bounce.test"]);
    let (code, body) = app.send(&app.key, m).await;
    assert_eq!(code, 202, "{body}");
    let id = body["id"].as_str().unwrap();
    let m = app.wait_status(id, "delivered", 20).await;
    let states: Vec<(&str, &str)> = m["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(states.contains(&("gone@bounce.test", "bounced")), "{m:#}");
    assert!(states.contains(&("bob@example.org", "delivered")), "{m:#}");
    let reqs = fake.requests().await;
    let ok: Vec<&Value> = reqs.iter().filter(|r| r["status"] == 200).collect();
    assert_eq!(ok.len(), 1, "{reqs:?}");
    assert_eq!(ok[0]["subject"], "Hello");
    assert_eq!(ok[0]["metadata"]["postern_id"], id, "{reqs:?}");
}

/// The worker delivers through SES (moto, signatures checked).
#[tokio::test]
async fn serve_delivers_through_ses() {
    let moto = Moto::start("example.com");
    let info = moto.info();
    let before = moto.sent_last_24h();
    let app = common::App::spawn(
        common::Backend::Sqlite,
        &[
            ("POSTERN_PROVIDERS_SES_TYPE", "ses"),
            ("POSTERN_PROVIDERS_SES_ACCESS_KEY_ID", &info.key_id),
            ("POSTERN_PROVIDERS_SES_SECRET_ACCESS_KEY", &info.secret),
            ("POSTERN_PROVIDERS_SES_ENDPOINT", &info.base),
            ("POSTERN_ROUTES_DEFAULT", r#"["ses"]"#),
        ],
    );
    let (code, body) = app
        .send(&app.key, common::simple_message("bob@example.org"))
        .await;
    assert_eq!(code, 202, "{body}");
    app.wait_status(body["id"].as_str().unwrap(), "delivered", 20)
        .await;
    assert!(moto.sent_last_24h() > before);
}

/// SES suspends the account: traffic moves to the backup relay at once, the provider stays
/// suspended while `GetAccount` says so, and comes back gradually when it says sending works.
#[test]
fn ses_suspension_fails_over_and_get_account_brings_it_back() {
    common::run_blocking(async {
        let fake = peers::Fake::start("ses", "ses-secret-5f1c");
        let info = fake.info();
        let backup = common::Sink::start(&[]);
        let port = backup.port.to_string();
        let app = common::App::spawn(
            common::Backend::Sqlite,
            &[
                ("POSTERN_PROVIDERS_SES_TYPE", "ses"),
                ("POSTERN_PROVIDERS_SES_ACCESS_KEY_ID", &info.key_id),
                ("POSTERN_PROVIDERS_SES_SECRET_ACCESS_KEY", &info.secret),
                ("POSTERN_PROVIDERS_SES_ENDPOINT", &info.base),
                ("POSTERN_PROVIDERS_BACKUP_TYPE", "smtp"),
                ("POSTERN_PROVIDERS_BACKUP_HOST", "127.0.0.1"),
                ("POSTERN_PROVIDERS_BACKUP_PORT", &port),
                ("POSTERN_ROUTES_DEFAULT", r#"["ses", "backup"]"#),
                ("POSTERN_QUEUE_PROBE_INTERVAL_SECS", "1"),
            ],
        );
        let delivered_by = |m: &Value| {
            m["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["kind"] == "delivered")
                .and_then(|e| e["provider"].as_str())
                .map(str::to_owned)
        };
        let send = |n: usize| {
            let app = &app;
            async move {
                let mut by = vec![];
                for i in 0..n {
                    let (code, v) = app
                        .send(
                            &app.key,
                            common::simple_message(&format!("u{i}@example.com")),
                        )
                        .await;
                    assert_eq!(code, 202, "{v}");
                    let m = app
                        .wait_status(v["id"].as_str().unwrap(), "delivered", 20)
                        .await;
                    by.push(delivered_by(&m).unwrap());
                }
                by
            }
        };
        assert_eq!(send(3).await, ["ses", "ses", "ses"]);

        fake.set_mode("suspended").await;
        let by = send(5).await;
        assert_eq!(by, ["backup"; 5], "traffic did not move to the backup");
        assert_eq!(backup.messages().len(), 5);
        let health = |state: &str| {
            format!("postern_provider_health{{provider=\"ses\",state=\"{state}\"}} 1")
        };
        assert!(app.metrics().await.contains(&health("suspended")));
        // GetAccount still says SHUTDOWN: it stays suspended through several polls.
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        assert!(app.metrics().await.contains(&health("suspended")));
        assert_eq!(send(2).await, ["backup"; 2]);

        // Sending enabled again: recovery starts with a share of the traffic.
        fake.set_mode("ok").await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !app.metrics().await.contains(&health("degraded")) {
            assert!(std::time::Instant::now() < deadline, "never left suspended");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let by = send(20).await;
        let via_ses = by.iter().filter(|p| *p == "ses").count();
        assert!(
            (2..20).contains(&via_ses),
            "recovery was not gradual: {by:?}"
        );
    });
}
