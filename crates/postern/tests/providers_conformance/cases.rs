//! The cases every adapter runs.

use std::time::{Duration, Instant};

use postern::providers::{
    Channel, FailureClass, OutboundMessage, ProviderWideKind, RecipientOutcome,
};
use serde_json::Value;

use crate::common;
use crate::peers::{Moto, PeerInfo};
use crate::specs::*;
// ---- the cases -------------------------------------------------------------------------------

pub async fn send_ok(spec: Spec) {
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
pub fn check_extras(spec: &Spec, msg: &OutboundMessage, reqs: &[Value]) {
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

pub async fn refused_recipient(spec: Spec) {
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
pub async fn envelope_only_recipient(spec: Spec) {
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

pub async fn expect_class(
    spec: &Spec,
    mode: &str,
    want: FailureClass,
    timeout_secs: u64,
) -> Duration {
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

pub async fn provider_wide(spec: Spec) {
    expect_class(
        &spec,
        "suspended",
        FailureClass::ProviderWide(spec.wide),
        10,
    )
    .await;
}

pub async fn throttled(spec: Spec) {
    expect_class(
        &spec,
        "throttle",
        FailureClass::ProviderWide(ProviderWideKind::Throttled),
        10,
    )
    .await;
}

pub async fn server_error(spec: Spec) {
    expect_class(&spec, "error500", FailureClass::Transient, 10).await;
}

pub async fn timeout(spec: Spec) {
    let took = expect_class(&spec, "hang", FailureClass::Transient, 1).await;
    assert!(
        took < Duration::from_secs(5),
        "{}: gave up after {took:?}",
        spec.kind
    );
}

pub async fn auth_failed(spec: Spec) {
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

pub async fn unreachable(spec: Spec) {
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

pub async fn send_ok_moto(spec: Spec) {
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

pub async fn auth_failed_moto(spec: Spec) {
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
