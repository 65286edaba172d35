//! The audit log, end to end on both backends: every administrative command leaves an entry
//! naming its operator, the chain verifies, editing, deleting or reordering one row (or
//! cutting the tail, head row included) makes `audit verify` fail naming that entry, export
//! writes what was recorded, and concurrent appends from two "nodes" serialize.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{App, Backend, block_local, run_blocking, simple_message};
use postern::audit::{AuditEvent, record};
use serde_json::{Value, json};

fn export(app: &App, args: &[&str]) -> Vec<Value> {
    let mut argv = vec!["audit", "export"];
    argv.extend_from_slice(args);
    app.cli(&argv)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `audit verify`: Ok(stdout) or Err(stderr).
fn verify(app: &App) -> Result<String, String> {
    match app.cli_raw(&["audit", "verify"]) {
        (true, out, _) => Ok(out),
        (false, _, err) => Err(err),
    }
}

fn admin_acts(app: &App) {
    let csv = app.dir.path().join("sup.csv");
    std::fs::write(&csv, "address,reason\nc@example.org,bounced\n").unwrap();
    let key: Value =
        serde_json::from_str(&app.cli(&["--json", "keys", "create", "--tenant", "acme"])).unwrap();
    let id = key["id"].as_str().unwrap().to_owned();
    for args in [
        vec!["keys", "rotate", &id, "--grace", "1h"],
        vec!["keys", "revoke", &id],
        vec!["route", "set", "--tenant", "acme", "local"],
        vec!["route", "clear", "--tenant", "acme"],
        vec!["route", "move", "--from", "local", "--to", "spare"],
        vec!["pause", "--tenant", "acme", "--reason", "looking into it"],
        vec!["resume", "--tenant", "acme"],
        vec!["held", "release", "--all"],
        vec!["held", "purge", "--tenant", "acme", "--reason", "spam"],
        vec!["suppressions", "add", "--tenant", "acme", "a@example.org"],
        vec![
            "suppressions",
            "remove",
            "--tenant",
            "acme",
            "a@example.org",
        ],
        vec![
            "suppressions",
            "import",
            "--tenant",
            "acme",
            csv.to_str().unwrap(),
        ],
    ] {
        app.cli(&args);
    }
}

#[test]
fn cli_acts_are_recorded_and_the_chain_verifies() {
    for backend in Backend::all() {
        let spare = tempfile::tempdir().unwrap();
        let app = App::spawn(
            backend,
            &[
                ("USER", "alice"),
                ("POSTERN_PROVIDERS_SPARE_TYPE", "file"),
                (
                    "POSTERN_PROVIDERS_SPARE_DIR",
                    spare.path().to_str().unwrap(),
                ),
            ],
        );
        app.cli(&["tenants", "add", "acme"]);
        admin_acts(&app);
        let entries = export(&app, &[]);
        let actions: Vec<&str> = entries
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        // `init` adds the default tenant and its key before anything else.
        for want in [
            "tenant.add",
            "key.create",
            "key.rotate",
            "key.revoke",
            "route.set",
            "route.clear",
            "route.move",
            "pause",
            "resume",
            "held.release",
            "held.purge",
            "suppression.add",
            "suppression.remove",
            "suppression.import",
        ] {
            assert!(actions.contains(&want), "{want} missing: {actions:?}");
        }
        let acme: Vec<&Value> = entries
            .iter()
            .filter(|e| e["target"] == "tenant:acme")
            .collect();
        assert!(acme.iter().all(|e| e["actor"] == "cli:alice"), "{acme:?}");
        let purge = entries
            .iter()
            .find(|e| e["action"] == "held.purge")
            .unwrap();
        assert_eq!(purge["reason"], "spam");
        let moved = entries
            .iter()
            .find(|e| e["action"] == "route.move")
            .unwrap();
        assert_eq!(moved["target"], "provider:local");
        assert_eq!(moved["detail"]["to"], "spare");
        let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
        let out = verify(&app).unwrap();
        assert!(out.contains("intact"), "{out}");

        // The head file outside the database got the head after each act.
        let head =
            std::fs::read_to_string(app.dir.path().join("postern-data/audit-head.jsonl")).unwrap();
        let last: Value = serde_json::from_str(head.lines().last().unwrap()).unwrap();
        assert_eq!(last["seq"], entries.len());
        assert_eq!(last["hash"], entries.last().unwrap()["hash"]);
    }
}

#[test]
fn tampering_with_one_row_is_named() {
    for backend in Backend::all() {
        let app = App::spawn(backend, &[("USER", "mallory")]);
        for i in 0..5 {
            app.cli(&["tenants", "add", &format!("t{i}")]);
        }
        let n = export(&app, &[]).len();
        assert_eq!(n, 5);
        verify(&app).unwrap();
        {
            // Edit one field of entry 3.
            app.sql("UPDATE audit_log SET target = 'tenant:someone-else' WHERE seq = 3");
            let err = verify(&app).unwrap_err();
            assert!(err.contains("entry 3 was altered"), "{err}");
            app.sql("UPDATE audit_log SET target = 'tenant:t2' WHERE seq = 3");
            verify(&app).unwrap();

            // Delete entry 4.
            app.sql("CREATE TABLE saved AS SELECT * FROM audit_log WHERE seq = 4; DELETE FROM audit_log WHERE seq = 4");
            let err = verify(&app).unwrap_err();
            assert!(err.contains("entry 4 is missing"), "{err}");
            app.sql("INSERT INTO audit_log SELECT * FROM saved; DROP TABLE saved");
            verify(&app).unwrap();

            // Swap entries 2 and 3.
            app.sql("UPDATE audit_log SET seq = -1 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = -1");
            let err = verify(&app).unwrap_err();
            assert!(err.contains("entry 2 is out of place"), "{err}");
            app.sql("UPDATE audit_log SET seq = -1 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = -1");
            verify(&app).unwrap();

            // Cut the tail and rewrite the head row to match: the head file outside the
            // database still knows.
            let last = n as i64;
            app.sql(&format!(
                "DELETE FROM audit_log WHERE seq = {last}; \
                 UPDATE audit_head SET seq = {prev}, hash = (SELECT hash FROM audit_log WHERE seq = {prev})",
                prev = last - 1
            ));
            let err = verify(&app).unwrap_err();
            assert!(err.contains(&format!("entry {last} is missing")), "{err}");
        }
    }
}

#[test]
fn export_round_trip_and_since() {
    run_blocking(async {
        let app = App::spawn(Backend::Sqlite, &[]);
        app.cli(&["tenants", "add", "acme"]);
        let out = app.dir.path().join("audit.jsonl");
        app.cli(&["audit", "export", "--output", out.to_str().unwrap()]);
        let lines: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, export(&app, &[]));
        // Every line is a chain link: recomputing the hashes from the exported fields
        // gives the stored ones.
        let mut prev = postern::audit::GENESIS.to_owned();
        for l in &lines {
            let e = postern::audit::AuditEntry {
                seq: l["seq"].as_u64().unwrap(),
                at: l["at"].as_i64().unwrap(),
                actor: l["actor"].as_str().unwrap().into(),
                source_ip: l["source_ip"].as_str().map(Into::into),
                action: l["action"].as_str().unwrap().into(),
                target: l["target"].as_str().unwrap().into(),
                reason: l["reason"].as_str().map(Into::into),
                detail: l["detail"].to_string(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            assert_eq!(postern::audit::entry_hash(&e), l["hash"].as_str().unwrap());
            prev = l["hash"].as_str().unwrap().into();
        }
        let acme = lines.iter().find(|l| l["target"] == "tenant:acme").unwrap();
        assert_eq!(acme["action"], "tenant.add");
        assert!(acme["detail"]["id"].is_string());

        assert_eq!(export(&app, &["--since", "1h"]).len(), lines.len());
        assert!(export(&app, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
        let (ok, _, err) = app.cli_raw(&["audit", "export", "--since", "yesterday"]);
        assert!(!ok && err.contains("--since"), "{err}");
    });
}

#[test]
fn concurrent_appends_from_two_nodes_serialize() {
    for backend in Backend::all() {
        let app = App::spawn(backend, &[]);
        let url = app.database_url();
        block_local(move || async move {
            let a = postern::store::Store::connect(&url).await.unwrap();
            let b = postern::store::Store::connect(&url).await.unwrap();
            let (start, _) = a.audit_head().await.unwrap();
            let tasks: Vec<_> = (0..40)
                .map(|i| {
                    let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                    tokio::task::spawn_local(async move {
                        let target = format!("n{i}");
                        let ev = AuditEvent {
                            actor: "test",
                            source_ip: Some("192.0.2.1"),
                            action: "test.append",
                            target: &target,
                            reason: None,
                            detail: json!({"i": i}),
                        };
                        record(&s, i, ev).await.unwrap()
                    })
                })
                .collect();
            let mut seqs = vec![];
            for t in tasks {
                seqs.push(t.await.unwrap());
            }
            seqs.sort();
            assert_eq!(seqs, ((start + 1)..=(start + 40)).collect::<Vec<_>>());
            let v = postern::audit::verify(&a, None).await.unwrap().unwrap();
            assert_eq!(v.entries, start + 40);
            drop(app);
        });
    }
}

#[test]
fn the_guards_containment_is_recorded() {
    run_blocking(async {
        let app = App::spawn(
            Backend::Sqlite,
            &[
                ("POSTERN_GUARD_VOLUME_FLOOR_PER_MINUTE", "5"),
                // Volume alone only alerts by default; weigh it as a hold here.
                ("POSTERN_GUARD_POLICY_SCORES_VOLUME", "3"),
            ],
        );
        for i in 0..10 {
            app.send(&app.key, simple_message(&format!("x{i}@example.org")))
                .await;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let entries = export(&app, &[]);
            if let Some(e) = entries.iter().find(|e| e["action"] == "guard.hold") {
                assert_eq!(e["actor"], "guard");
                assert_eq!(e["reason"], "volume");
                assert!(e["target"].as_str().unwrap().starts_with("key:"), "{e}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no guard.hold entry: {entries:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        verify(&app).unwrap();
    });
}

#[test]
fn a_consistent_rewrite_is_caught_by_the_head_file() {
    for backend in Backend::all() {
        let app = App::spawn(backend, &[]);
        for i in 0..4 {
            app.cli(&["tenants", "add", &format!("t{i}")]);
        }
        verify(&app).unwrap();
        // Someone with the database rewrites entry 2 and recomputes every hash after it,
        // head row included: the chain inside the database is consistent again.
        let url = app.database_url();
        let mut entries = block_local(move || async move {
            let store = postern::store::Store::connect(&url).await.unwrap();
            store.audit_entries(0, i64::MIN, 100).await.unwrap()
        });
        entries[1].target = "tenant:forged".into();
        let mut prev = entries[0].hash.clone();
        let mut sql = String::new();
        for e in entries.iter_mut().skip(1) {
            e.prev_hash = prev;
            e.hash = postern::audit::entry_hash(e);
            prev = e.hash.clone();
            sql.push_str(&format!(
                "UPDATE audit_log SET target = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {};",
                e.target, e.prev_hash, e.hash, e.seq
            ));
        }
        sql.push_str(&format!(
            "UPDATE audit_head SET hash = '{prev}' WHERE id = 1;"
        ));
        app.sql(&sql);
        let err = verify(&app).unwrap_err();
        assert!(
            err.contains("entry 2 is not the one the head file recorded"),
            "{err}"
        );
    }
}
