//! `postern simulate`: every scenario under scenarios/ meets its declared expectations, and a
//! run is deterministic for a seed (the same seed gives byte-identical JSON).

mod common;

use std::process::Command;

use common::{BIN, workspace_root};

/// Runs a scenario and returns (success, stdout, stderr).
fn simulate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("simulate")
        .args(args)
        .arg("--json")
        .current_dir(workspace_root())
        .output()
        .expect("run postern simulate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the scenario twice with the same seed: identical output, and every expectation met.
fn scenario(name: &str) -> serde_json::Value {
    let path = format!("scenarios/{name}.toml");
    let (ok, first, err) = simulate(&[&path, "--seed", "42"]);
    let (_, second, _) = simulate(&[&path, "--seed", "42"]);
    assert_eq!(
        first, second,
        "{name}: the same seed gave different summaries"
    );
    let summary: serde_json::Value = serde_json::from_str(&first)
        .unwrap_or_else(|e| panic!("{name}: no JSON summary ({e}); stderr: {err}"));
    let failed: Vec<&serde_json::Value> = summary["expectations"]
        .as_array()
        .expect("expectations")
        .iter()
        .filter(|c| c["pass"] != true)
        .collect();
    assert!(
        failed.is_empty() && ok,
        "{name}: expectations failed: {}\nsummary: {summary:#}",
        serde_json::to_string(&failed).unwrap_or_default()
    );
    assert!(
        !summary["expectations"]
            .as_array()
            .expect("expectations")
            .is_empty(),
        "{name} declares no expectation"
    );
    summary
}

#[test]
fn ses_key_theft_is_contained_within_ten_seconds() {
    let s = scenario("ses-key-theft");
    assert!(
        s["attack"]["first_message_at_secs"].as_f64() == Some(300.0),
        "{s:#}"
    );
}

#[test]
fn low_and_slow_is_contained() {
    scenario("low-and-slow");
}

#[test]
fn a_provider_credential_used_outside_raises_an_orphan_alert() {
    let s = scenario("provider-credential-outside");
    let outside = &s["streams"][1];
    assert_eq!(outside["accepted"], 0, "{s:#}");
    assert!(outside["sent_outside"].as_u64() > Some(1_000), "{s:#}");
}

#[test]
fn stolen_social_tokens_are_contained_across_tenants() {
    let s = scenario("social-token-spam");
    let held_tenants = s["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["action"] == "hold")
        .count();
    assert!(held_tenants >= 6, "every spamming tenant held: {s:#}");
}

#[test]
fn an_announced_newsletter_is_not_held() {
    scenario("newsletter-announced");
}

#[test]
fn tenant_onboarding_is_not_held() {
    scenario("tenant-onboarding");
}

#[test]
fn a_provider_outage_fails_over_without_holds_or_delay() {
    let s = scenario("provider-outage");
    let postmark = s["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|p| p["name"] == "postmark")
        .expect("postmark");
    assert!(
        postmark["sent"].as_u64() > Some(1_000),
        "failover carried the outage: {s:#}"
    );
}

#[test]
fn the_seed_changes_the_run() {
    let (_, a, _) = simulate(&["scenarios/tenant-onboarding.toml", "--seed", "1"]);
    let (_, b, _) = simulate(&["scenarios/tenant-onboarding.toml", "--seed", "2"]);
    assert_ne!(a, b);
}

#[test]
fn a_bad_scenario_names_the_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(workspace_root().join("scenarios/provider-outage.toml"))
        .expect("scenario");
    let cases = [
        // An unknown key inside a stream.
        (
            text.replace("kind = \"legitimate\"", "kind = \"legitimate\"\nspeed = 3"),
            "speed",
        ),
        // A route naming a provider the scenario does not declare.
        (
            text.replace(
                "route = [\"ses\", \"postmark\"]",
                "route = [\"ses\", \"mailgun\"]",
            ),
            "tenants.route",
        ),
        // A duration that is not one.
        (text.replace("until = \"5m\"", "until = \"soon\""), "soon"),
    ];
    for (bad, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, &bad).expect("write");
        let (ok, _, err) = simulate(&[path.to_str().expect("utf-8 path")]);
        assert!(!ok, "accepted a bad scenario");
        assert!(err.contains("line ") && err.contains(key), "{err}");
    }
}
