//! The detector as a whole, on a manual clock: the stolen-key incident is held within a few
//! dozen messages, the benign bursts (an announced newsletter, a new tenant onboarding, a
//! provider outage's backlog) are not, and the single-signal triggers behave as before.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::detect::{Guard, Trip};
use super::{Action, GuardConfig, PauseScope};
use crate::clock::ManualClock;
use crate::store::NewMessage;

fn guard(cfg: GuardConfig) -> (Guard, mpsc::UnboundedReceiver<Trip>, Arc<ManualClock>) {
    let clock = ManualClock::new(1_000 * 86_400_000 + 10 * 3_600_000);
    let (g, rx) = Guard::new(cfg, clock.clone());
    (g, rx, clock)
}

fn msg(tenant: &str, key: &str, to: &str, subject: &str, body: &str) -> NewMessage {
    NewMessage {
        id: String::new(),
        tenant_id: tenant.into(),
        key_id: Some(key.into()),
        source: "http",
        mail_from: "app@saas.example".into(),
        recipients: vec![to.into()],
        subject: Some(subject.into()),
        message_id_header: String::new(),
        raw: format!("Subject: {subject}\r\n\r\n{body}").into_bytes(),
        created_at: 0,
        expires_at: 0,
        idempotency: None,
        held: None,
        tags: Vec::new(),
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// A SaaS key's ordinary day: ~5 msg/s to its 3,000 customers at the big providers, from its
/// own servers, for `secs` seconds.
fn legit(g: &Guard, clock: &ManualClock, key: &str, secs: u32, start: u32) {
    let domains = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com"];
    for i in 0..secs * 5 {
        let n = (start * 5 + i) as usize;
        g.key_used(key, ip(&format!("10.1.0.{}", n % 3)), Some("saas-app/2.1"));
        g.accepted_message(&msg(
            "acme",
            key,
            &format!("customer{}@{}", n % 3_000, domains[n % 4]),
            "Your receipt",
            &format!(
                "Hello customer {n}, thank you for your order number {n}. Your receipt is attached."
            ),
        ));
        clock.advance_ms(200);
    }
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Trip>) -> Vec<Trip> {
    let mut v = vec![];
    while let Ok(t) = rx.try_recv() {
        v.push(t);
    }
    v
}

#[test]
fn the_stolen_key_incident_is_held_within_a_hundred_messages() {
    let (g, mut rx, clock) = guard(GuardConfig::default());
    legit(&g, &clock, "k1", 1_200, 0);
    assert!(drain(&mut rx).is_empty(), "twenty ordinary minutes tripped");
    // The attack: 500 msg/s from a new IP, a purchased list, one spam template.
    let mut held_at = None;
    for i in 0..1_000u32 {
        g.key_used("k1", ip("203.0.113.50"), Some("python-requests/2.31"));
        g.accepted_message(&msg(
            "acme",
            "k1",
            &format!("lead{i}@shop{}.example", i % 400),
            "Exclusive offer",
            "Buy replica watches now with free worldwide shipping and huge discounts",
        ));
        clock.advance_ms(2);
        if drain(&mut rx).iter().any(|t| t.action == Action::Hold) {
            held_at = Some(i + 1);
            break;
        }
    }
    let n = held_at.expect("the attack was never held");
    assert!(n <= 100, "held after {n} attack messages");
}

#[test]
fn the_incident_is_held_even_from_a_known_network() {
    let (g, mut rx, clock) = guard(GuardConfig::default());
    legit(&g, &clock, "k1", 1_200, 0);
    let mut trips = vec![];
    for i in 0..1_000u32 {
        g.key_used("k1", ip("10.1.0.1"), Some("saas-app/2.1"));
        g.accepted_message(&msg(
            "acme",
            "k1",
            &format!("lead{i}@shop{}.example", i % 400),
            "Exclusive offer",
            "Buy replica watches now with free worldwide shipping and huge discounts",
        ));
        clock.advance_ms(2);
        trips.extend(drain(&mut rx));
        if trips.iter().any(|t| t.action == Action::Hold) {
            assert!(i < 150, "held after {i}");
            let hold = trips
                .iter()
                .find(|t| t.action == Action::Hold)
                .expect("hold");
            assert_eq!(hold.scope, PauseScope::Key("k1".into()));
            let signals: Vec<_> = hold.evidence["findings"]
                .as_array()
                .expect("findings")
                .iter()
                .map(|f| f["signal"].as_str().unwrap_or("").to_owned())
                .collect();
            assert!(signals.contains(&"volume".to_owned()), "{signals:?}");
            return;
        }
    }
    panic!("never held: {trips:?}");
}

#[test]
fn an_announced_newsletter_to_known_subscribers_is_not_held() {
    let (g, mut rx, clock) = guard(GuardConfig::default());
    // Last month's newsletter taught the tenant its 5,000 subscribers.
    g.remember_recipients(
        "acme",
        (0..5_000)
            .map(|i| {
                format!(
                    "reader{i}@{}",
                    [
                        "gmail.com",
                        "gmx.de",
                        "orange.fr",
                        "web.de",
                        "free.fr",
                        "aol.com"
                    ][i % 6]
                )
            })
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    legit(&g, &clock, "k1", 1_200, 0);
    for i in 0..5_000usize {
        g.key_used("k1", ip("10.1.0.2"), Some("saas-app/2.1"));
        g.accepted_message(&msg(
            "acme",
            "k1",
            &format!(
                "reader{i}@{}",
                [
                    "gmail.com",
                    "gmx.de",
                    "orange.fr",
                    "web.de",
                    "free.fr",
                    "aol.com"
                ][i % 6]
            ),
            "Our November newsletter",
            "This month: new features, a webinar on reporting, and our holiday opening hours.",
        ));
        clock.advance_ms(10);
    }
    let trips = drain(&mut rx);
    assert!(
        trips.iter().all(|t| !matches!(
            t.action,
            Action::Hold | Action::Throttle(_) | Action::Revoke
        )),
        "{trips:?}"
    );
}

#[test]
fn a_new_tenant_onboarding_is_not_held() {
    let (g, mut rx, clock) = guard(GuardConfig::default());
    for i in 0..5_000u32 {
        g.key_used("new-key", ip("198.51.100.7"), Some("importer/1.0"));
        g.accepted_message(&msg(
            "newco",
            "new-key",
            &format!("member{i}@club{}.example", i % 700),
            "Welcome to Newco",
            "Your account is ready; sign in to get started.",
        ));
        clock.advance_ms(10);
    }
    let trips = drain(&mut rx);
    assert!(
        trips.iter().all(|t| t.action == Action::Alert || !t.hold),
        "{trips:?}"
    );
    assert!(
        trips
            .iter()
            .all(|t| !matches!(t.action, Action::Throttle(_))),
        "{trips:?}"
    );
}

#[test]
fn a_provider_outage_backlog_is_not_held() {
    let (g, mut rx, clock) = guard(GuardConfig::default());
    legit(&g, &clock, "k1", 1_200, 0);
    // The provider is down for ten minutes: accepts go on as usual, outcomes stop; then the
    // backlog is delivered at once. Nothing about it is a bounce.
    legit(&g, &clock, "k1", 600, 1_200);
    for _ in 0..3_000 {
        g.delivered("acme", Some("k1"), "ses", 1, 0);
    }
    assert!(drain(&mut rx).is_empty());
}

#[test]
fn a_throttle_caps_the_key_in_the_admit_path() {
    let (g, mut rx, clock) = guard(GuardConfig::default());
    legit(&g, &clock, "k1", 1_200, 0);
    assert_eq!(g.throttle_of("k1", ip("203.0.113.9")), None);
    // A new network (1) and a burst (1.5): 2.5, a throttle, not yet a hold.
    g.key_used("k1", ip("203.0.113.9"), Some("saas-app/2.1"));
    for i in 0..60 {
        g.accepted_message(&msg(
            "acme",
            "k1",
            &format!("customer{i}@gmail.com"),
            "Your receipt",
            "Hello, your receipt.",
        ));
    }
    let trips = drain(&mut rx);
    let t = trips
        .iter()
        .find(|t| matches!(t.action, Action::Throttle(_)))
        .unwrap_or_else(|| panic!("{trips:?}"));
    assert!(!t.hold);
    let cap = g.throttle_of("k1", ip("203.0.113.9")).expect("throttled");
    assert!((5.0..=12.0).contains(&cap), "{cap}");
    // The networks the key was used from before the suspicion began are not slowed down;
    // an unknown address is capped like a new network.
    assert_eq!(
        g.throttle_of("k1", ip("10.1.0.2")),
        None,
        "the owner's network is spared"
    );
    assert!(
        g.throttle_of("k1", None).is_some(),
        "an unknown address is capped"
    );
    assert!(
        g.throttle_of("k1", ip("198.51.100.7")).is_some(),
        "so is any other network"
    );
    assert_eq!(
        g.throttle_of("k2", ip("203.0.113.9")),
        None,
        "other keys are untouched"
    );
    clock.advance_ms(450_000);
    assert!(
        g.throttle_of("k1", ip("203.0.113.9")).is_some(),
        "still within memory_secs"
    );
    g.reset(&PauseScope::Key("k1".into()));
    assert_eq!(
        g.throttle_of("k1", ip("203.0.113.9")),
        None,
        "lifted by an operator"
    );
    // Throttled again; this time it runs out by itself.
    g.key_used("k1", ip("203.0.114.9"), Some("saas-app/2.1"));
    for i in 0..60 {
        g.accepted_message(&msg(
            "acme",
            "k1",
            &format!("customer{i}@gmail.com"),
            "Your receipt",
            "Hello, your receipt.",
        ));
    }
    assert!(g.throttle_of("k1", ip("203.0.114.9")).is_some());
    clock.advance_ms(901_000);
    assert_eq!(
        g.throttle_of("k1", ip("203.0.114.9")),
        None,
        "a throttle lasts memory_secs"
    );
}

#[test]
fn a_ledger_mismatch_takes_the_provider_out() {
    let (g, mut rx, _) = guard(GuardConfig::default());
    g.provider_counter("ses", 1_000, 990);
    assert!(drain(&mut rx).is_empty());
    g.provider_counter("ses", 25_000, 990);
    let t = drain(&mut rx).pop().expect("no trip");
    assert_eq!(
        (t.scope, t.action, t.hold),
        (
            PauseScope::Provider("ses".into()),
            Action::ProviderOut,
            true
        )
    );
}

#[test]
fn orphan_feedback_alerts_without_holding() {
    let (g, mut rx, clock) = guard(GuardConfig {
        orphan_limit: 3,
        ..Default::default()
    });
    g.feedback_received(None, "autoreply");
    g.feedback_received(None, "bounce");
    clock.advance_ms(15 * 60_000 + 1);
    g.feedback_received(None, "bounce");
    g.feedback_received(None, "delivery");
    assert!(rx.try_recv().is_err(), "the first two aged out");
    g.feedback_received(None, "bounce");
    g.feedback_received(None, "autoreply");
    let t = rx.try_recv().expect("alert");
    assert_eq!(
        (t.signal, t.hold, t.action),
        ("orphan_feedback", false, Action::Alert)
    );
}

#[test]
fn a_tenant_over_the_bounce_rate_is_held_and_a_clean_one_is_not() {
    let (g, mut rx, _) = guard(GuardConfig {
        bounce_min_sample: 100,
        ..Default::default()
    });
    for _ in 0..200 {
        g.accepted("t", Some("k"), 1);
        g.accepted("u", Some("k2"), 1);
    }
    g.bounced("u", 3);
    assert!(rx.try_recv().is_err());
    g.bounced("t", 5);
    let t = rx.try_recv().expect("hold");
    assert_eq!(
        (t.scope, t.signal, t.action),
        (PauseScope::Tenant("t".into()), "bounce_rate", Action::Hold)
    );
    assert_eq!(t.evidence["findings"][0]["count"], 5);
}

#[test]
fn auto_replies_add_to_a_keys_score() {
    let (g, mut rx, _) = guard(GuardConfig::default());
    for _ in 0..40 {
        g.accepted("t", Some("k"), 1);
    }
    for _ in 0..21 {
        g.feedback_about(Some("t"), Some("k"), None, "autoreply", 1);
    }
    // Auto-replies (1) alone stay below the alert.
    assert!(rx.try_recv().is_err());
    g.key_used("k", ip("10.0.0.1"), None);
    for _ in 0..3 {
        g.key_refused("k", "lacks the admin scope");
    }
    let t = rx.try_recv().expect("alert at 2");
    assert_eq!(t.action, Action::Alert);
}
