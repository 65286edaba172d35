//! The OpenAPI document (`GET /openapi.json`): every route the server serves is in it (the
//! router's paths are read from the source, so a new route without documentation fails here),
//! and schemathesis, driven by the document, finds no server error in the running server.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{App, Backend, run_blocking, workspace_root};
use serde_json::Value;

/// Every path given to `.route(` under `src/`, as written.
fn routed_paths(dir: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            routed_paths(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for (i, _) in text.match_indices(".route(") {
                let rest = text[i + ".route(".len()..].trim_start();
                let path = rest
                    .strip_prefix('"')
                    .and_then(|r| r.split('"').next())
                    .unwrap_or_else(|| panic!("{}: .route( without a literal path", p.display()));
                out.insert(path.to_owned());
            }
        }
    }
}

#[test]
fn every_route_is_documented_and_every_documented_path_is_routed() {
    let mut routed = BTreeSet::new();
    routed_paths(&workspace_root().join("crates/postern/src"), &mut routed);
    assert!(routed.contains("/v1/messages") && routed.contains("/admin/v1/login"));
    let doc = serde_json::to_value(postern::http::openapi::openapi()).unwrap();
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let undocumented = postern::http::openapi::UNDOCUMENTED;
    let missing: Vec<_> = routed
        .iter()
        .filter(|p| {
            // An undocumented entry covers the paths below it too (the console's HTML pages).
            !documented.contains(*p)
                && !undocumented
                    .iter()
                    .any(|u| p.as_str() == *u || p.starts_with(&format!("{u}/")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&routed).collect();
    assert!(stale.is_empty(), "documented but not routed: {stale:?}");
}

#[test]
fn the_served_document_is_openapi_with_the_security_schemes() {
    run_blocking(async {
        let app = App::spawn(Backend::Sqlite, &[]);
        let doc: Value = reqwest::get(app.url("/openapi.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
        let schemes = &doc["components"]["securitySchemes"];
        for s in ["api_key", "admin_token", "admin_session"] {
            assert!(schemes.get(s).is_some(), "{s} missing: {schemes}");
        }
        let err = &doc["components"]["schemas"]["ErrorResponse"];
        assert!(err["properties"]["error"].is_object(), "{err}");
        assert!(doc["paths"]["/v1/messages"]["post"]["requestBody"].is_object());
    });
}

/// schemathesis against the real server: no 5xx for anything it generates (bad input must
/// be a 4xx), with a tenant API key and an owner's admin token. Every operation is included:
/// `POST /admin/v1/pause` may pause the server under test, which only holds messages, and the
/// stateful phase may revoke its own admin token or key (later calls then get 401, not 5xx).
#[test]
fn schemathesis_finds_no_server_error() {
    let st = workspace_root().join(".venv/bin/schemathesis");
    assert!(
        st.exists(),
        "{} missing: run scripts/test (it installs schemathesis)",
        st.display()
    );
    let app = App::spawn(Backend::Sqlite, &[]);
    let v: Value = serde_json::from_str(&app.cli(&[
        "--json",
        "admin",
        "token",
        "create",
        "--name",
        "schemathesis",
        "--role",
        "owner",
    ]))
    .unwrap();
    let admin_token = v["token"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        "[auth.openapi.api_key]\nbearer = \"${POSTERN_TEST_KEY}\"\n\
         [auth.openapi.admin_token]\nbearer = \"${POSTERN_TEST_ADMIN_TOKEN}\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(st)
        .current_dir(dir.path())
        .env("POSTERN_TEST_KEY", &app.key)
        .env("POSTERN_TEST_ADMIN_TOKEN", &admin_token)
        .env(
            "SCHEMATHESIS_HOOKS",
            workspace_root().join("crates/postern/tests/support/schemathesis_hooks.py"),
        )
        .arg("--config-file")
        .arg(&config)
        .args(["run", &app.url("/openapi.json")])
        .args(["--checks", "not_a_server_error", "--max-examples", "25"])
        .args(["--request-timeout", "20", "--generation-deterministic"])
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{text}");
}
