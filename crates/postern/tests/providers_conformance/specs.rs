//! What differs between adapters, and the helpers every case uses.

use postern::providers::{Channel, OutboundMessage, Provider, ProviderError, ProviderWideKind};

use crate::peers::{self, Fake, PeerInfo};

/// What differs between adapters; everything else is the shared cases in cases.rs.
pub struct Spec {
    /// `type = "..."` in the config, and the fake's `--api`.
    pub kind: &'static str,
    pub channel: Channel,
    /// Two recipients the provider accepts.
    pub good: [&'static str; 2],
    /// One the provider refuses on its own (suppressed, invalid, unverified, not ours).
    pub bad: &'static str,
    /// Whether the refused recipient costs a request (the social adapter refuses locally).
    pub bad_reaches_peer: bool,
    /// The provider-wide failure the peer's account-level error maps to.
    pub wide: ProviderWideKind,
    /// Whether Postern's message id must arrive as the idempotency key.
    pub idempotency_key: bool,
    /// Send and credential cases go to moto rather than the fake.
    pub moto: bool,
    /// The `[providers.p]` body for a peer.
    pub config: fn(&PeerInfo, u64) -> String,
}

pub const SUBJECT: &str = "Conformance check";
pub const TEXT: &str = "Hello from the provider conformance suite.";

pub fn ses() -> Spec {
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

pub fn postmark() -> Spec {
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

pub fn mailgun() -> Spec {
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

pub fn sendgrid() -> Spec {
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

pub fn twilio() -> Spec {
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

pub fn webhook() -> Spec {
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

pub fn social() -> Spec {
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

pub fn secret_for(spec: &Spec) -> String {
    format!("sekrit-{}-7f3a9c", spec.kind)
}

pub fn build(spec: &Spec, peer: &PeerInfo, timeout_secs: u64) -> std::sync::Arc<dyn Provider> {
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

pub fn message(spec: &Spec, recipients: &[&str]) -> OutboundMessage {
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
pub fn assert_clean(spec: &Spec, e: &ProviderError, secrets: &[&str]) {
    let shown = format!("{e} {e:?}");
    for s in secrets {
        assert!(
            !shown.contains(s),
            "{}: error shows a secret: {shown}",
            spec.kind
        );
    }
}

pub fn expect_err<T: std::fmt::Debug>(spec: &Spec, r: Result<T, ProviderError>) -> ProviderError {
    match r {
        Ok(v) => panic!("{}: expected an error, got {v:?}", spec.kind),
        Err(e) => e,
    }
}

pub async fn fake(spec: &Spec) -> Fake {
    Fake::start(spec.kind, &secret_for(spec))
}
