//! Roles and admin tokens: the auditor reads only, only an owner manages admins and tokens, a
//! tenant-admin is confined to its tenant; changes are audited under their token or account;
//! revoked and malformed tokens are refused.

use serde_json::json;

use crate::common::{Backend, run_blocking, simple_message};
use crate::{audited, call, enrol, get, post, spawn, token};

async fn roles(backend: Backend) {
    let (app, otp) = spawn(backend, &[]);
    let (_, _, owner) = enrol(&app, "root", &otp).await;
    app.cli(&["tenants", "add", "acme"]);
    app.cli(&["tenants", "add", "globex"]);
    let auditor = token(&app, &["--name", "audit", "--role", "auditor"]);
    let acme = token(
        &app,
        &[
            "--name",
            "acme-admin",
            "--role",
            "tenant-admin",
            "--tenant",
            "acme",
        ],
    );
    // An operator token made through the API by the owner.
    let (s, v) = post(
        &app,
        "/admin/v1/tokens",
        &owner,
        json!({"name": "ops", "role": "operator"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let operator = v["token"].as_str().unwrap().to_owned();

    // The auditor reads everything and changes nothing.
    let (s, v) = get(&app, "/admin/v1/tenants", &auditor).await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");
    for (path, body) in [
        ("/admin/v1/tenants", json!({"name": "initech"})),
        ("/admin/v1/pause", json!({"scope": "all"})),
        ("/admin/v1/keys", json!({"tenant": "acme"})),
        (
            "/admin/v1/suppressions",
            json!({"tenant": "acme", "addresses": ["a@b.example"]}),
        ),
        ("/admin/v1/held/purge", json!({"all": true, "reason": "x"})),
        (
            "/admin/v1/routes/move",
            json!({"from": "local", "to": "local"}),
        ),
    ] {
        let (s, v) = post(&app, path, &auditor, body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some("read_only")),
            "{path}: {v}"
        );
    }
    let (_, v) = get(&app, "/admin/v1/tenants", &owner).await;
    assert_eq!(
        v.as_array().unwrap().len(),
        3,
        "an auditor changed something: {v}"
    );

    // Only an owner manages admins and tokens.
    let (s, v) = post(
        &app,
        "/admin/v1/tokens",
        &operator,
        json!({"name": "x", "role": "owner"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("owner_only")),
        "{v}"
    );
    let (s, v) = post(
        &app,
        "/admin/v1/admins",
        &owner,
        json!({"name": "carol", "role": "auditor"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["one_time_password"].as_str().unwrap().len() >= 16);

    // The tenant-admin sees and acts on its tenant only.
    let (s, v) = get(&app, "/admin/v1/tenants", &acme).await;
    assert_eq!(s, 200);
    assert_eq!(v, json!([v[0].clone()]));
    assert_eq!(v[0]["name"], "acme");
    let (s, v) = post(
        &app,
        "/admin/v1/keys",
        &acme,
        json!({"tenant": "acme", "scopes": ["send"]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["secret"].as_str().unwrap().starts_with("pst_live_"));
    let globex_key = app.new_key("globex");
    let globex_id = globex_key.split('_').nth(2).unwrap();
    for (method, path, body) in [
        ("GET", "/admin/v1/keys?tenant=globex".to_owned(), None),
        (
            "POST",
            "/admin/v1/keys".to_owned(),
            Some(json!({"tenant": "globex"})),
        ),
        (
            "POST",
            format!("/admin/v1/keys/{globex_id}/revoke"),
            Some(json!({})),
        ),
        (
            "POST",
            "/admin/v1/suppressions".to_owned(),
            Some(json!({"tenant": "globex", "addresses": ["a@b.example"]})),
        ),
        (
            "POST",
            "/admin/v1/pause".to_owned(),
            Some(json!({"scope": "all"})),
        ),
        (
            "POST",
            "/admin/v1/pause".to_owned(),
            Some(json!({"scope": "tenant", "target": "globex"})),
        ),
        (
            "POST",
            "/admin/v1/pause".to_owned(),
            Some(json!({"scope": "key", "target": globex_id})),
        ),
        (
            "POST",
            "/admin/v1/tenants".to_owned(),
            Some(json!({"name": "initech"})),
        ),
        (
            "PUT",
            "/admin/v1/routes/globex".to_owned(),
            Some(json!({"providers": ["local"]})),
        ),
    ] {
        let (s, v, _) = call(&app, method, &path, &acme, body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some("tenant_forbidden")),
            "{method} {path}: {v}"
        );
    }
    let (code, _) = app
        .send(&globex_key, simple_message("bob@example.org"))
        .await;
    assert_eq!(code, 202, "the tenant-admin revoked another tenant's key");
    // Its own tenant: pause (named or implied) and resume.
    let (s, v) = post(
        &app,
        "/admin/v1/pause",
        &acme,
        json!({"scope": "tenant", "reason": "check"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["paused"]["actor"].as_str().unwrap(),
        format!("token:{}", acme.split('_').nth(2).unwrap())
    );
    let (_, v) = get(&app, "/admin/v1/pauses", &auditor).await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let (s, _) = post(
        &app,
        "/admin/v1/resume",
        &acme,
        json!({"scope": "tenant", "target": "acme"}),
    )
    .await;
    assert_eq!(s, 200);

    // Changes are recorded under the token or account that made them; refused ones are not.
    let pauses = audited(&app, "pause");
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    assert_eq!(
        pauses[0]["actor"].as_str().unwrap(),
        format!("token:{}", acme.split('_').nth(2).unwrap())
    );
    assert_eq!(pauses[0]["source_ip"], "127.0.0.1");
    assert_eq!(pauses[0]["reason"], "check");
    let tokens = audited(&app, "token.create");
    assert!(
        tokens.iter().any(|e| e["actor"] == "admin:root"),
        "{tokens:?}"
    );
    assert!(
        audited(&app, "tenant.add")
            .iter()
            .all(|e| !e["target"].as_str().unwrap().contains("initech"))
    );

    // Revoked and malformed tokens are refused.
    let acme_id = acme.split('_').nth(2).unwrap().to_owned();
    app.cli(&["admin", "token", "revoke", &acme_id]);
    let (s, v) = get(&app, "/admin/v1/tenants", &acme).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("invalid_admin_token")),
        "{v}"
    );
    let (s, _) = get(&app, "/admin/v1/tenants", &app.key).await;
    assert_eq!(s, 401, "an API key opened the admin API");
    let (s, _) = app.send(&operator, simple_message("bob@example.org")).await;
    assert_eq!(s, 401, "an admin token sent mail");
}

#[test]
fn roles_and_admin_tokens_confine_what_each_admin_may_do() {
    for backend in Backend::all() {
        run_blocking(roles(backend));
    }
}
