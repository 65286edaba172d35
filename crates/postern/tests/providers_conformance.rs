//! The provider conformance suite: the same cases run against every adapter, each talking to
//! a peer that speaks the provider's documented wire format — moto's SES emulator for the SES
//! send path and signatures, and tests/support/provider_fakes.py for the HTTP APIs (and the
//! SES account-level errors moto lacks). Cases: send ok, a refused recipient, a provider-wide
//! failure, refused credentials, throttling, a server that never answers, a 5xx, nobody
//! listening — and that no secret shows up in an error or a config's Debug.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "support/peers.rs"]
mod peers;

use std::time::{Duration, Instant};

use peers::{Fake, Moto, PeerInfo};
use postern::providers::{
    Channel, FailureClass, OutboundMessage, Provider, ProviderError, ProviderWideKind,
    RecipientOutcome,
};
use serde_json::Value;

/// What differs between adapters; everything else is the shared cases below.
struct Spec {
    /// `type = "..."` in the config, and the fake's `--api`.
    kind: &'static str,
    channel: Channel,
    /// Two recipients the provider accepts.
    good: [&'static str; 2],
    /// One the provider refuses on its own (suppressed, invalid, unverified, not ours).
    bad: &'static str,
    /// Whether the refused recipient costs a request (the social adapter refuses locally).
    bad_reaches_peer: bool,
    /// The provider-wide failure the peer's account-level error maps to.
    wide: ProviderWideKind,
    /// Whether Postern's message id must arrive as the idempotency key.
    idempotency_key: bool,
    /// Send and credential cases go to moto rather than the fake.
    moto: bool,
    /// The `[providers.p]` body for a peer.
    config: fn(&PeerInfo, u64) -> String,
}

const SUBJECT: &str = "Conformance check";
const TEXT: &str = "Hello from the provider conformance suite.";

fn ses() -> Spec {
    Spec {
        kind: "ses",
        channel: Channel::Email,
        good: ["bob@example.org", "carol@example.net"],
        bad: "unverified@bounce.test",
        bad_reaches_peer: true,
        wide: ProviderWideKind::AccountSuspended,
        idempotency_key: false,
        moto: true,
        config: |p, t| {
            format!(
                "type = \"ses\"\nregion = \"us-east-1\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nendpoint = \"{}\"\ntimeout_secs = {t}\n",
                p.key_id, p.secret, p.base
            )
        },
    }
}

fn postmark() -> Spec {
    Spec {
        kind: "postmark",
        channel: Channel::Email,
        good: ["bob@example.org", "carol@example.net"],
        bad: "inactive@bounce.test",
        bad_reaches_peer: true,
        wide: ProviderWideKind::AccountSuspended,
        idempotency_key: false,
        moto: false,
        config: |p, t| {
            format!(
                "type = \"postmark\"\nserver_token = \"{}\"\nbase_url = \"{}\"\ntimeout_secs = {t}\n",
                p.secret, p.base
            )
        },
    }
}

fn mailgun() -> Spec {
    Spec {
        kind: "mailgun",
        channel: Channel::Email,
        good: ["bob@example.org", "carol@example.net"],
        bad: "not-an-address@bounce",
        bad_reaches_peer: true,
        wide: ProviderWideKind::AccountSuspended,
        idempotency_key: false,
        moto: false,
        config: |p, t| {
            format!(
                "type = \"mailgun\"\ndomain = \"mg.example.com\"\napi_key = \"{}\"\nbase_url = \"{}\"\ntimeout_secs = {t}\n",
                p.secret, p.base
            )
        },
    }
}

fn sendgrid() -> Spec {
    Spec {
        kind: "sendgrid",
        channel: Channel::Email,
        good: ["bob@example.org", "carol@example.net"],
        bad: "not-an-address@bounce",
        bad_reaches_peer: true,
        wide: ProviderWideKind::AccountSuspended,
        idempotency_key: false,
        moto: false,
        config: |p, t| {
            format!(
                "type = \"sendgrid\"\napi_key = \"{}\"\nbase_url = \"{}\"\ntimeout_secs = {t}\n",
                p.secret, p.base
            )
        },
    }
}

fn twilio() -> Spec {
    Spec {
        kind: "twilio",
        channel: Channel::Sms,
        good: ["+15558675310", "+447700900123"],
        // Twilio's documented test number for an invalid 'To'.
        bad: "+15005550001",
        bad_reaches_peer: true,
        wide: ProviderWideKind::AccountSuspended,
        idempotency_key: false,
        moto: false,
        config: |p, t| {
            format!(
                "type = \"twilio\"\naccount_sid = \"{}\"\nauth_token = \"{}\"\nfrom = \"+15005550006\"\nbase_url = \"{}\"\ntimeout_secs = {t}\n",
                peers::TWILIO_SID,
                p.secret,
                p.base
            )
        },
    }
}

fn webhook() -> Spec {
    Spec {
        kind: "webhook",
        channel: Channel::Email,
        good: ["bob@example.org", "carol@example.net"],
        bad: "nobody@bounce.test",
        bad_reaches_peer: true,
        // A receiver has no account: its 503 says it is down.
        wide: ProviderWideKind::Unavailable,
        idempotency_key: true,
        moto: false,
        config: |p, t| {
            format!(
                "type = \"webhook\"\nurl = \"{}/hooks/tenant-a?token=url-token-4242\"\nsecret = \"{}\"\ntimeout_secs = {t}\n",
                p.base, p.secret
            )
        },
    }
}

fn social() -> Spec {
    Spec {
        kind: "social",
        channel: Channel::Social,
        good: ["@status", "status@social.example"],
        bad: "@someone@elsewhere.example",
        bad_reaches_peer: false,
        wide: ProviderWideKind::AccountSuspended,
        idempotency_key: true,
        moto: false,
        config: |p, t| {
            format!(
                "type = \"social\"\nbase_url = \"{}\"\naccess_token = \"{}\"\naccount = \"status@social.example\"\ntimeout_secs = {t}\n",
                p.base, p.secret
            )
        },
    }
}

fn secret_for(spec: &Spec) -> String {
    format!("sekrit-{}-7f3a9c", spec.kind)
}

fn build(spec: &Spec, peer: &PeerInfo, timeout_secs: u64) -> std::sync::Arc<dyn Provider> {
    let toml = format!(
        "[providers.p]\n{}\n[routes]\ndefault = [\"p\"]\n",
        (spec.config)(peer, timeout_secs)
    );
    let cfg = postern::config::Config::from_toml_and_env(&toml, []).unwrap();
    let dbg = format!("{:?}", cfg.providers["p"]);
    assert!(
        !dbg.contains(&peer.secret),
        "{} config Debug shows the secret: {dbg}",
        spec.kind
    );
    assert!(
        !dbg.contains("url-token-4242"),
        "Debug shows the URL token: {dbg}"
    );
    let providers = postern::providers::Providers::from_config(&cfg).unwrap();
    let p = providers.get("p").unwrap().clone();
    assert_eq!(p.channel(), spec.channel);
    p
}

fn message(spec: &Spec, recipients: &[&str]) -> OutboundMessage {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let raw = match spec.channel {
        Channel::Email => format!(
            "From: Postern Test <app@example.com>\r\nTo: {}\r\nCc: {}\r\nSubject: {SUBJECT}\r\nMessage-ID: <{id}@example.com>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nX-Postern-Id: {id}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{TEXT}\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{TEXT}</p>\r\n--b1--\r\n",
            spec.good[0], spec.good[1]
        ),
        Channel::Sms | Channel::Social => TEXT.to_owned(),
    };
    OutboundMessage {
        id: id.clone(),
        tenant_id: "tenant-a".into(),
        channel: spec.channel,
        mail_from: "app@example.com".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        raw: raw.into_bytes().into(),
        message_id_header: format!("<{id}@example.com>"),
    }
}

/// No secret in an error's Display or Debug.
fn assert_clean(spec: &Spec, e: &ProviderError, secrets: &[&str]) {
    let shown = format!("{e} {e:?}");
    for s in secrets {
        assert!(
            !shown.contains(s),
            "{}: error shows a secret: {shown}",
            spec.kind
        );
    }
}

fn expect_err<T: std::fmt::Debug>(spec: &Spec, r: Result<T, ProviderError>) -> ProviderError {
    match r {
        Ok(v) => panic!("{}: expected an error, got {v:?}", spec.kind),
        Err(e) => e,
    }
}

async fn fake(spec: &Spec) -> Fake {
    Fake::start(spec.kind, &secret_for(spec))
}

// ---- the cases -------------------------------------------------------------------------------

async fn send_ok(spec: Spec) {
    if spec.moto {
        return send_ok_moto(spec).await;
    }
    let fake = fake(&spec).await;
    let p = build(&spec, &fake.info(), 10);
    p.probe().await.unwrap();
    let msg = message(&spec, &spec.good);
    let d = p.send(&msg).await.unwrap();
    let names: Vec<&str> = d.recipients.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        names, spec.good,
        "{}: outcomes in recipient order",
        spec.kind
    );
    for (r, o) in &d.recipients {
        assert!(
            matches!(o, RecipientOutcome::Delivered { .. }),
            "{}: {r}: {o:?}",
            spec.kind
        );
    }
    // What the peer received, as it understood the documented request.
    let reqs = fake.requests().await;
    assert!(!reqs.is_empty(), "{}: nothing reached the peer", spec.kind);
    let mut got: Vec<String> = Vec::new();
    for r in &reqs {
        assert!(
            r["status"].as_u64().unwrap() < 300,
            "{}: peer refused {r}",
            spec.kind
        );
        got.extend(
            r["recipients"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned()),
        );
        if spec.channel == Channel::Email {
            assert_eq!(r["subject"], SUBJECT, "{}: {r}", spec.kind);
        }
        assert_eq!(
            r["text"].as_str().map(str::trim),
            Some(TEXT),
            "{}: {r}",
            spec.kind
        );
        if spec.idempotency_key {
            assert_eq!(r["idempotency_key"], msg.id.as_str(), "{}: {r}", spec.kind);
        }
    }
    if spec.channel == Channel::Social {
        // One post for the account, however its handle was written.
        assert_eq!(reqs.len(), 1, "{reqs:?}");
    } else {
        got.sort();
        let mut want: Vec<String> = spec.good.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{}: recipients the peer saw", spec.kind);
    }
    check_extras(&spec, &msg, &reqs);

    // The same message again (a retry after a crash) where the API is idempotent.
    if spec.idempotency_key && spec.channel == Channel::Social {
        let again = p.send(&msg).await.unwrap();
        let reqs = fake.requests().await;
        assert_eq!(reqs[0]["status_id"], reqs[1]["status_id"], "{reqs:?}");
        assert_eq!(again.recipients.len(), 2);
    }
}

/// Per-adapter checks of what the documented request carried beyond recipients and content.
fn check_extras(spec: &Spec, msg: &OutboundMessage, reqs: &[Value]) {
    let r = &reqs[0];
    match spec.kind {
        "postmark" => {
            assert_eq!(r["metadata"]["postern_id"], msg.id.as_str(), "{r}");
            assert_eq!(r["message_stream"], "outbound", "{r}");
            assert!(
                r["headers"]["Message-ID"]
                    .as_str()
                    .unwrap()
                    .contains(&msg.id),
                "{r}"
            );
            assert!(r["html"].as_str().unwrap().contains("<p>"), "{r}");
        }
        "sendgrid" => {
            assert_eq!(r["custom_args"]["postern_id"], msg.id.as_str(), "{r}");
            assert_eq!(r["headers"]["X-Postern-Id"], msg.id.as_str(), "{r}");
        }
        "mailgun" => assert_eq!(r["variables"]["postern-id"], msg.id.as_str(), "{r}"),
        "webhook" => {
            assert_eq!(r["signature_valid"], true, "{r}");
            assert_eq!(r["id"], msg.id.as_str(), "{r}");
            assert_eq!(r["tenant"], "tenant-a", "{r}");
            assert!(
                r["path"].as_str().unwrap().starts_with("/hooks/tenant-a"),
                "{r}"
            );
        }
        "social" => assert_eq!(r["visibility"], "public", "{r}"),
        "twilio" => assert_eq!(r["sender"], "+15005550006", "{r}"),
        "ses" => assert_eq!(r["tags"][0]["Value"], msg.id.as_str(), "{r}"),
        _ => {}
    }
}

async fn refused_recipient(spec: Spec) {
    let fake = fake(&spec).await;
    let p = build(&spec, &fake.info(), 10);
    let msg = message(&spec, &[spec.good[0], spec.bad]);
    let d = p.send(&msg).await.unwrap();
    assert_eq!(d.recipients.len(), 2, "{}: {d:?}", spec.kind);
    assert_eq!(d.recipients[0].0, spec.good[0]);
    assert!(
        matches!(d.recipients[0].1, RecipientOutcome::Delivered { .. }),
        "{}: the good recipient: {:?}",
        spec.kind,
        d.recipients[0].1
    );
    assert_eq!(d.recipients[1].0, spec.bad);
    match &d.recipients[1].1 {
        RecipientOutcome::Bounced { reason, .. } => assert!(!reason.is_empty()),
        o => panic!("{}: the refused recipient: {o:?}", spec.kind),
    }
    // The good recipient was accepted exactly once.
    let reqs = fake.requests().await;
    let accepted: Vec<&Value> = reqs
        .iter()
        .filter(|r| r["status"].as_u64().unwrap() < 300)
        .collect();
    assert_eq!(accepted.len(), 1, "{}: {reqs:?}", spec.kind);
    if spec.channel != Channel::Social {
        let rcpts = accepted[0]["recipients"].as_array().unwrap();
        assert!(rcpts.iter().any(|r| r == spec.good[0]), "{reqs:?}");
        if spec.kind != "webhook" {
            // The receiver itself decides for the webhook; everyone else never got the bad one.
            assert!(!rcpts.iter().any(|r| r == spec.bad), "{reqs:?}");
        }
    }
    if spec.bad_reaches_peer {
        assert!(
            reqs.iter().any(|r| r["recipients"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == spec.bad))),
            "{}: the bad recipient never reached the peer: {reqs:?}",
            spec.kind
        );
    }
}

/// A recipient only in the envelope (Bcc) still gets the message, and structured APIs do not
/// put it in a visible header.
async fn envelope_only_recipient(spec: Spec) {
    if spec.channel != Channel::Email {
        return;
    }
    let hidden = "audit@example.com";
    let fake = fake(&spec).await;
    let p = build(&spec, &fake.info(), 10);
    let d = p
        .send(&message(&spec, &[spec.good[0], hidden]))
        .await
        .unwrap();
    assert!(
        d.recipients
            .iter()
            .all(|(_, o)| matches!(o, RecipientOutcome::Delivered { .. })),
        "{}: {d:?}",
        spec.kind
    );
    let reqs = fake.requests().await;
    let seen: Vec<&str> = reqs
        .iter()
        .flat_map(|r| r["recipients"].as_array().unwrap().iter())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(seen.contains(&hidden), "{}: {reqs:?}", spec.kind);
    assert!(
        !seen.contains(&spec.good[1]),
        "{}: a recipient no longer pending was sent to: {reqs:?}",
        spec.kind
    );
    for r in &reqs {
        if let Some(h) = r["headers"].as_object() {
            assert!(
                !h.values()
                    .any(|v| v.as_str().unwrap_or_default().contains(hidden)),
                "{r}"
            );
        }
    }
}

async fn expect_class(spec: &Spec, mode: &str, want: FailureClass, timeout_secs: u64) -> Duration {
    let fake = fake(spec).await;
    fake.set_mode(mode).await;
    let p = build(spec, &fake.info(), timeout_secs);
    let msg = message(spec, &spec.good);
    let started = Instant::now();
    let e = expect_err(spec, p.send(&msg).await);
    let took = started.elapsed();
    assert_eq!(e.class, want, "{} in mode {mode}: {e}", spec.kind);
    assert!(!e.message.is_empty());
    assert_clean(spec, &e, &[&secret_for(spec), "url-token-4242"]);
    took
}

async fn provider_wide(spec: Spec) {
    expect_class(
        &spec,
        "suspended",
        FailureClass::ProviderWide(spec.wide),
        10,
    )
    .await;
}

async fn throttled(spec: Spec) {
    expect_class(
        &spec,
        "throttle",
        FailureClass::ProviderWide(ProviderWideKind::Throttled),
        10,
    )
    .await;
}

async fn server_error(spec: Spec) {
    expect_class(&spec, "error500", FailureClass::Transient, 10).await;
}

async fn timeout(spec: Spec) {
    let took = expect_class(&spec, "hang", FailureClass::Transient, 1).await;
    assert!(
        took < Duration::from_secs(5),
        "{}: gave up after {took:?}",
        spec.kind
    );
}

async fn auth_failed(spec: Spec) {
    if spec.moto {
        return auth_failed_moto(spec).await;
    }
    let fake = fake(&spec).await;
    let mut info = fake.info();
    let wrong = format!("wrong-{}-51c2e8", spec.kind);
    info.secret = wrong.clone();
    let p = build(&spec, &info, 10);
    let auth = FailureClass::ProviderWide(ProviderWideKind::AuthFailed);
    let e = expect_err(&spec, p.send(&message(&spec, &spec.good)).await);
    assert_eq!(e.class, auth, "{}: {e}", spec.kind);
    assert_clean(&spec, &e, &[&wrong, &secret_for(&spec), "url-token-4242"]);
    if spec.kind != "webhook" {
        // (A webhook receiver has nothing to probe but the same signed POST.)
        let e = expect_err(&spec, p.probe().await);
        assert_eq!(e.class, auth, "{} probe: {e}", spec.kind);
        assert_clean(&spec, &e, &[&wrong]);
    }
    let reqs = fake.requests().await;
    assert!(
        reqs.iter().all(|r| r["status"].as_u64().unwrap() >= 400),
        "{reqs:?}"
    );
}

async fn unreachable(spec: Spec) {
    let port = common::free_port();
    let info = PeerInfo {
        base: format!("http://127.0.0.1:{port}"),
        secret: secret_for(&spec),
        key_id: "AKIAFAKE".into(),
    };
    let p = build(&spec, &info, 5);
    let e = expect_err(&spec, p.send(&message(&spec, &spec.good)).await);
    assert_eq!(
        e.class,
        FailureClass::ProviderWide(ProviderWideKind::Unavailable),
        "{}: {e}",
        spec.kind
    );
    assert_clean(&spec, &e, &[&secret_for(&spec), "url-token-4242"]);
}

// ---- SES against moto ------------------------------------------------------------------------

async fn send_ok_moto(spec: Spec) {
    let moto = Moto::start("example.com");
    let p = build(&spec, &moto.info(), 10);
    let before = moto.sent_last_24h();
    let msg = message(&spec, &spec.good);
    let d = p.send(&msg).await.unwrap();
    for (r, o) in &d.recipients {
        match o {
            RecipientOutcome::Delivered { response } => {
                assert!(response.contains("MessageId"), "{r}: {response}")
            }
            o => panic!("{r}: {o:?}"),
        }
    }
    // moto's own counter, read with boto3 under the same (checked) credentials.
    let after = moto.sent_last_24h();
    assert!(after > before, "SentLast24Hours {before} -> {after}");

    // A sender moto has not verified: SES's MessageRejected, a permanent failure.
    let mut m = message(&spec, &spec.good);
    m.mail_from = "app@unverified.example".into();
    m.raw = String::from_utf8_lossy(&m.raw)
        .replace("app@example.com", "app@unverified.example")
        .into_bytes()
        .into();
    let e = expect_err(&spec, p.send(&m).await);
    assert_eq!(e.class, FailureClass::Permanent, "{e}");
    assert!(e.message.contains("MessageRejected"), "{e}");
}

async fn auth_failed_moto(spec: Spec) {
    let moto = Moto::start("example.com");
    let mut info = moto.info();
    let right = info.secret.clone();
    info.secret = format!("wrong{}", &right[5..]);
    let p = build(&spec, &info, 10);
    let e = expect_err(&spec, p.send(&message(&spec, &spec.good)).await);
    assert_eq!(
        e.class,
        FailureClass::ProviderWide(ProviderWideKind::AuthFailed),
        "{e}"
    );
    assert!(e.message.contains("SignatureDoesNotMatch"), "{e}");
    assert_clean(&spec, &e, &[&right, &info.secret]);
    // An access key moto never issued.
    let mut info = moto.info();
    info.key_id = "AKIANOSUCHKEY0000000".into();
    let p = build(&spec, &info, 10);
    let e = expect_err(&spec, p.send(&message(&spec, &spec.good)).await);
    assert_eq!(
        e.class,
        FailureClass::ProviderWide(ProviderWideKind::AuthFailed),
        "{e}"
    );
}

// ---- one module of tests per adapter ------------------------------------------------------------

macro_rules! conformance {
    ($($adapter:ident),* $(,)?) => {$(
        mod $adapter {
            #[tokio::test]
            async fn send_ok() { super::send_ok(super::$adapter()).await }
            #[tokio::test]
            async fn refused_recipient() { super::refused_recipient(super::$adapter()).await }
            #[tokio::test]
            async fn provider_wide_failure() { super::provider_wide(super::$adapter()).await }
            #[tokio::test]
            async fn auth_failure() { super::auth_failed(super::$adapter()).await }
            #[tokio::test]
            async fn throttling() { super::throttled(super::$adapter()).await }
            #[tokio::test]
            async fn timeout() { super::timeout(super::$adapter()).await }
            #[tokio::test]
            async fn server_error() { super::server_error(super::$adapter()).await }
            #[tokio::test]
            async fn unreachable() { super::unreachable(super::$adapter()).await }
            #[tokio::test]
            async fn envelope_only_recipient() { super::envelope_only_recipient(super::$adapter()).await }
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
