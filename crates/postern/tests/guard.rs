//! The guard, end to end: a key that suddenly sends far more than allowed is held within a
//! message or two (its mail kept, other keys untouched), a tenant whose bounce rate crosses the
//! trigger is held, each with an alert carrying its evidence, and resuming releases the mail.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{App, Backend, Sink, files_in, run_blocking, simple_message};
use serde_json::Value;

fn alerts(app: &App) -> Vec<Value> {
    serde_json::from_str(&app.cli(&["--json", "guard", "alerts"])).unwrap()
}

#[test]
fn a_key_over_its_volume_is_held_and_released_on_resume() {
    run_blocking(async {
        let app = App::spawn(
            Backend::Sqlite,
            &[
                ("POSTERN_GUARD_VOLUME_FLOOR_PER_MINUTE", "20"),
                // Volume alone holds only when the policy says so (by default it takes a
                // second signal).
                ("POSTERN_GUARD_POLICY_SCORES_VOLUME", "3"),
            ],
        );
        let stolen = app.new_key("default");
        let mut statuses = vec![];
        for i in 0..30 {
            let (code, v) = app
                .send(&stolen, simple_message(&format!("x{i}@example.org")))
                .await;
            assert_eq!(code, 202, "{v}");
            statuses.push(v["status"].as_str().unwrap().to_owned());
        }
        let first_held = statuses
            .iter()
            .position(|s| s == "held")
            .expect("nothing held");
        assert!(
            first_held <= 23,
            "held only from message {first_held}: {statuses:?}"
        );
        assert!(
            statuses[first_held..].iter().all(|s| s == "held"),
            "{statuses:?}"
        );

        // The other key of the same tenant keeps sending.
        let (_, v) = app.send(&app.key, simple_message("ok@example.org")).await;
        assert_eq!(v["status"], "queued");

        let a = alerts(&app);
        let volume = a.iter().find(|x| x["signal"] == "volume").unwrap();
        assert_eq!(volume["scope"], "key");
        assert_eq!(volume["action"], "hold");
        let f = &volume["evidence"]["findings"][0];
        assert!(
            f["messages_last_minute"].as_f64().unwrap() > 20.0,
            "{volume}"
        );
        assert_eq!(f["window_secs"], 60, "{volume}");
        let key_id = volume["target"].as_str().unwrap().to_owned();
        assert!(stolen.contains(&key_id));

        // Held, not dropped: after review, resume releases every one.
        // Those accepted as held, plus the one that tripped it (held before its call).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held: Value =
            serde_json::from_str(&app.cli(&["--json", "held", "list", "--key", &key_id])).unwrap();
        let held = held["total"].as_u64().unwrap() as usize;
        assert!(held >= 30 - first_held, "{held}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while files_in(&app.outbox(), "eml").len() < 31 - held {
            assert!(
                std::time::Instant::now() < deadline,
                "the unheld mail was not delivered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            files_in(&app.outbox(), "eml").len(),
            31 - held,
            "a held message was sent"
        );
        let out = app.cli(&["resume", "--key", &key_id]);
        assert!(
            out.contains(&format!("{held} held messages released")),
            "{out}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while files_in(&app.outbox(), "eml").len() < 31 {
            assert!(
                std::time::Instant::now() < deadline,
                "released mail not delivered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn a_tenant_over_the_bounce_rate_is_held_with_its_evidence() {
    run_blocking(async {
        let sink = Sink::start(&["--reject-domain", "gone.example"]);
        let port = sink.port.to_string();
        let app = App::spawn(
            Backend::Sqlite,
            &[
                ("POSTERN_PROVIDERS_RELAY_TYPE", "smtp"),
                ("POSTERN_PROVIDERS_RELAY_HOST", "127.0.0.1"),
                ("POSTERN_PROVIDERS_RELAY_PORT", &port),
                ("POSTERN_ROUTES_DEFAULT", r#"["relay"]"#),
                ("POSTERN_GUARD_BOUNCE_MIN_SAMPLE", "20"),
            ],
        );
        for i in 0..20 {
            let (_, v) = app
                .send(&app.key, simple_message(&format!("u{i}@example.org")))
                .await;
            app.wait_status(v["id"].as_str().unwrap(), "delivered", 15)
                .await;
        }
        // One refusal in 21 is 4.8%, over the 2% trigger.
        let (_, v) = app.send(&app.key, simple_message("n0@gone.example")).await;
        app.wait_status(v["id"].as_str().unwrap(), "bounced", 15)
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let a = alerts(&app);
        let b = a
            .iter()
            .find(|x| x["signal"] == "bounce_rate" && x["scope"] == "tenant")
            .unwrap_or_else(|| panic!("{a:?}"));
        assert_eq!(
            (b["scope"].as_str(), b["action"].as_str()),
            (Some("tenant"), Some("hold"))
        );
        assert_eq!(b["evidence"]["findings"][0]["count"], 1);
        assert_eq!(b["evidence"]["findings"][0]["window_secs"], 3600);
        let (_, v) = app
            .send(&app.key, simple_message("later@example.org"))
            .await;
        assert_eq!(v["status"], "held");
        let pauses = app.cli(&["held", "list"]);
        assert!(pauses.starts_with("1 held"), "{pauses}");
    });
}
