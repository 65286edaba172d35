//! Alerts to operators: a guard trip is told once by signed webhook and once by email through a
//! provider other than the suspect one (aiosmtpd as the real SMTP peer); duplicates fold into
//! one notice with a count; an unacknowledged notice escalates on a manual clock (a second
//! webhook and an SMS through the twilio provider, against the Twilio API fake); ack stops it.
//! Run against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "support/peers.rs"]
#[allow(dead_code)]
mod peers;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use common::Sink;
use postern::alerts::{Notifier, Pass};
use postern::clock::{Clock, ManualClock, SharedClock};
use postern::config::Config;
use postern::guard::{Guard, GuardConfig, Pauses};
use postern::providers::{Providers, WEBHOOK_SIGNATURE_HEADER, webhook_signature};
use postern::queue::routing::Routes;
use postern::store::{Alert, Store};

type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A local HTTP receiver that records every POST and answers 200.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

async fn stores(dir: &tempfile::TempDir) -> Vec<(Store, Option<common::PgDb>)> {
    let sqlite = Store::connect(&format!("sqlite://{}", dir.path().join("a.db").display()))
        .await
        .unwrap();
    let pg = common::PgDb::create();
    let postgres = Store::connect(&pg.url).await.unwrap();
    vec![(sqlite, None), (postgres, Some(pg))]
}

fn check_signature(headers: &HeaderMap, body: &[u8]) {
    let sig = headers
        .get(WEBHOOK_SIGNATURE_HEADER)
        .expect("signed")
        .to_str()
        .unwrap();
    let ts: u64 = sig
        .strip_prefix("t=")
        .and_then(|r| r.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sig, webhook_signature(b"s3cret", ts, body), "signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_is_told_once_by_webhook_and_by_email_off_the_suspect_provider_then_escalates() {
    let suspect = Sink::start(&[]);
    let backup = Sink::start(&[]);
    let (hook, first) = receiver().await;
    let (hook2, second) = receiver().await;
    let twilio = peers::Fake::start("twilio", "tok");
    let toml = format!(
        r#"
[providers.primary]
type = "smtp"
host = "127.0.0.1"
port = {p1}
[providers.backup]
type = "smtp"
host = "127.0.0.1"
port = {p2}
[providers.sms]
type = "twilio"
account_sid = "{sid}"
auth_token = "tok"
from = "+15005550006"
base_url = "http://127.0.0.1:{tp}"
[routes]
default = ["primary"]
[alerts]
dedup_window_secs = 600
escalate_after_secs = 300
[[alerts.channels]]
type = "webhook"
url = "{hook}"
secret = "s3cret"
[[alerts.channels]]
type = "email"
from = "postern@example.com"
to = ["oncall@example.com"]
providers = ["primary", "backup"]
[[alerts.channels]]
type = "webhook"
url = "{hook2}"
secret = "s3cret"
level = 2
[[alerts.channels]]
type = "sms"
provider = "sms"
to = ["+15558675310"]
level = 2
"#,
        sid = peers::TWILIO_SID,
        tp = twilio.port,
        p1 = suspect.port,
        p2 = backup.port,
    );
    let cfg = Config::from_toml_and_env(&toml, []).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (round, (store, _pg)) in stores(&dir).await.into_iter().enumerate() {
        let clock = ManualClock::new(1_767_603_600_000 + round as i64 * 86_400_000);
        let shared: SharedClock = clock.clone();
        let providers = Providers::from_config(&cfg).unwrap();
        let routes = Routes::new(cfg.routes.default.clone());
        let notifier = Notifier::new(
            cfg.alerts.clone(),
            store.clone(),
            providers,
            None,
            Some(routes),
            shared.clone(),
        )
        .unwrap();

        // A real trip: the detector sees a key over its floor (volume alone scoring a hold
        // here); the containment task records it.
        let (guard, trips) = Guard::new(
            GuardConfig {
                volume_floor_per_minute: 5,
                policy: postern::guard::policy::PolicyConfig {
                    scores: postern::guard::policy::Scores {
                        volume: 3.0,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                ..Default::default()
            },
            shared.clone(),
        );
        tokio::spawn(postern::guard::detect::contain(
            trips,
            store.clone(),
            Pauses::default(),
            shared.clone(),
            postern::telemetry::Metrics::new(),
        ));
        for _ in 0..7 {
            guard.accepted("t1", Some("k1"), 1);
        }
        let mut alert = None;
        for _ in 0..200 {
            if let Some(a) = store.alerts(10).await.unwrap().into_iter().next() {
                alert = Some(a);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let alert = alert.expect("the trip was recorded");
        assert_eq!(
            notifier.pass().await.unwrap(),
            Pass {
                notified: 1,
                ..Default::default()
            }
        );
        {
            let got = first.lock().unwrap();
            assert_eq!(got.len(), 1, "one webhook");
            check_signature(&got[0].0, &got[0].1);
            let body: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
            assert_eq!(
                (
                    &body["signal"],
                    &body["scope"],
                    &body["target"],
                    &body["count"]
                ),
                (
                    &serde_json::json!("volume"),
                    &serde_json::json!("key"),
                    &serde_json::json!("k1"),
                    &serde_json::json!(1)
                )
            );
            assert_eq!(body["evidence"]["trigger"], "volume");
            assert_eq!(body["evidence"]["findings"][0]["messages_last_minute"], 6.0);
        }
        let mails = backup.messages();
        assert_eq!(
            mails.len(),
            round + 1,
            "one email through the backup: {mails:?}"
        );
        assert!(
            mails[round].contains("Subject: Postern guard: volume on key k1"),
            "{}",
            mails[round]
        );
        assert!(
            suspect.messages().is_empty(),
            "nothing through the suspect provider"
        );

        // The same alert twice more within the window: folded in, nothing sent.
        for i in 1..=2 {
            clock.advance_ms(1_000);
            store
                .record_alert(&Alert {
                    id: uuid::Uuid::now_v7().to_string(),
                    at: clock.now_ms(),
                    evidence: serde_json::json!({ "again": i }),
                    ..alert.clone()
                })
                .await
                .unwrap();
        }
        assert_eq!(notifier.pass().await.unwrap().deduplicated, 2);
        assert_eq!(first.lock().unwrap().len(), 1, "duplicates collapse");
        let notices = store.notices(false, 10).await.unwrap();
        assert_eq!(notices.len(), 1);
        assert_eq!((notices[0].count, notices[0].level), (3, 1));

        // Unacknowledged: not before escalate_after, then level 2 once.
        clock.advance_ms(200_000);
        assert_eq!(notifier.pass().await.unwrap().escalated, 0);
        assert!(second.lock().unwrap().is_empty());
        clock.advance_ms(101_000);
        assert_eq!(notifier.pass().await.unwrap().escalated, 1);
        {
            let got = second.lock().unwrap();
            assert_eq!(got.len(), 1, "escalated to level 2");
            check_signature(&got[0].0, &got[0].1);
            let body: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
            assert_eq!(
                (&body["escalated"], &body["count"]),
                (&serde_json::json!(true), &serde_json::json!(3))
            );
        }
        let texts = twilio.requests().await;
        assert_eq!(texts.len(), round + 1, "one SMS at level 2: {texts:?}");
        assert_eq!(
            texts[round]["recipients"],
            serde_json::json!(["+15558675310"])
        );
        assert!(
            texts[round]["text"]
                .as_str()
                .unwrap()
                .contains("Postern guard: volume on key k1, action hold (3 times)"),
            "{}",
            texts[round]
        );
        clock.advance_ms(400_000);
        assert_eq!(notifier.pass().await.unwrap().escalated, 0, "no level 3");

        // Acknowledged: off the open list; an unknown id is refused.
        let n = store
            .ack_notice(&notices[0].id, "ops", clock.now_ms())
            .await
            .unwrap();
        assert_eq!(n.acked_by.as_deref(), Some("ops"));
        assert!(store.notices(false, 10).await.unwrap().is_empty());
        assert_eq!(store.notices(true, 10).await.unwrap().len(), 1);
        assert!(store.ack_notice("nope", "ops", 0).await.is_err());
        first.lock().unwrap().clear();
        second.lock().unwrap().clear();
    }
}

#[test]
fn a_channel_naming_a_missing_provider_is_refused_at_start() {
    let cfg = Config::from_toml_and_env(
        r#"
[[alerts.channels]]
type = "sms"
provider = "twilio"
to = ["+15551234567"]
"#,
        [],
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("b.db").display()))
            .await
            .unwrap();
        let clock: SharedClock = ManualClock::new(0);
        let err = Notifier::new(cfg.alerts, store, Providers::default(), None, None, clock)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("twilio"), "{err}");
    });
}
