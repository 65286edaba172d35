//! Secrets at rest, on both backends: provider credentials set with `secrets set` are used by
//! a provider that names them as "secret:NAME" (a real SMTP relay with AUTH accepts the
//! password), and a copy of the database (the SQLite files' bytes, every PostgreSQL table as
//! text) contains none of them, in plain, base64 or hex. `rotate-kek` re-wraps every data
//! key: the new KEK reads them, the old one alone does not. A wrong or missing KEK is an error
//! naming where the KEK was expected.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::{App, Backend, Sink, block_local, run_blocking, simple_message};
use postern::secrets::{Kek, Keyring};
use rand::RngCore;
use secrecy::ExposeSecret;
use serde_json::Value;

fn write_kek(dir: &Path, name: &str) -> (PathBuf, [u8; 32]) {
    let mut k = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut k);
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("{}\n", base64::engine::general_purpose::STANDARD.encode(k)),
    )
    .unwrap();
    (path, k)
}

fn set_secret(app: &App, name: &str, value: &str) {
    let (ok, out, err) = app.cli_stdin(&["secrets", "set", name], format!("{value}\n").as_bytes());
    assert!(ok, "secrets set {name}: {err}");
    assert!(!out.contains(value) && !err.contains(value));
}

/// Everything a thief with a copy of the database gets, as bytes.
fn dump(app: &App) -> Vec<u8> {
    match &app.backend {
        Backend::Sqlite => {
            let db = app.dir.path().join("postern-data/postern.db");
            let mut all = vec![];
            for suffix in ["", "-wal", "-shm"] {
                let mut p = db.clone().into_os_string();
                p.push(suffix);
                all.extend(std::fs::read(&p).unwrap_or_default());
            }
            assert!(all.len() > 10_000, "nothing dumped");
            all
        }
        Backend::Postgres(db) => {
            let url = db.url.clone();
            block_local(move || async move {
                use sqlx::{Connection, Row};
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                let tables: Vec<String> = sqlx::query(
                    "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get("t"))
                .collect();
                assert!(tables.contains(&"secrets".to_owned()), "{tables:?}");
                let mut all = String::new();
                for t in tables {
                    for r in sqlx::query(&format!("SELECT x::text AS row FROM \"{t}\" x"))
                        .fetch_all(&mut c)
                        .await
                        .unwrap()
                    {
                        all.push_str(&r.get::<String, _>("row"));
                        all.push('\n');
                    }
                }
                assert!(all.contains("secret.set"), "the audit log was not dumped");
                all.into_bytes()
            })
        }
    }
}

fn forms(value: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let b = value.as_bytes();
    vec![
        value.to_owned(),
        STANDARD.encode(b),
        STANDARD_NO_PAD.encode(b),
        URL_SAFE_NO_PAD.encode(b),
        hex::encode(b),
        hex::encode_upper(b),
    ]
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A real SMTP relay (STARTTLS, AUTH) that takes mail only with `password`, and `app`
/// restarted with it as its route, the password given as "secret:relay-pass".
fn relay_with_secret(app: &mut App, password: &str) -> (Sink, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["init", "--json", "--dir"])
        .arg(certs.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let tls = certs.path().join("postern-data/tls");
    let sink = Sink::start(&[
        "--tls",
        tls.join("cert.pem").to_str().unwrap(),
        tls.join("key.pem").to_str().unwrap(),
        "--auth",
        &format!("relayuser:{password}"),
    ]);
    app.kill9();
    for (k, v) in [
        ("POSTERN_PROVIDERS_RELAY_TYPE", "smtp".to_owned()),
        ("POSTERN_PROVIDERS_RELAY_HOST", "127.0.0.1".to_owned()),
        ("POSTERN_PROVIDERS_RELAY_PORT", sink.port.to_string()),
        ("POSTERN_PROVIDERS_RELAY_TLS", "starttls".to_owned()),
        (
            "POSTERN_PROVIDERS_RELAY_DANGER_ACCEPT_INVALID_CERTS",
            "true".to_owned(),
        ),
        ("POSTERN_PROVIDERS_RELAY_USERNAME", "relayuser".to_owned()),
        (
            "POSTERN_PROVIDERS_RELAY_PASSWORD",
            "secret:relay-pass".to_owned(),
        ),
        ("POSTERN_ROUTES_DEFAULT", r#"["relay"]"#.to_owned()),
    ] {
        app.env.push((k.into(), v));
    }
    app.start();
    (sink, certs)
}

async fn delivered_through(app: &App, sink: &Sink, n: usize) {
    let (_, body) = app.send(&app.key, simple_message("a@example.org")).await;
    app.wait_status(body["id"].as_str().unwrap(), "delivered", 30)
        .await;
    assert_eq!(sink.messages().len(), n);
}

fn set_env(app: &mut App, key: &str, value: &Path) {
    app.env.retain(|(k, _)| k != key);
    app.env.push((key.into(), value.to_str().unwrap().into()));
}

#[test]
fn a_kek_rotation_needs_no_downtime() {
    run_blocking(async {
        let keys = tempfile::tempdir().unwrap();
        let (old, _) = write_kek(keys.path(), "old");
        let (new, _) = write_kek(keys.path(), "new");
        let mut app = App::spawn(
            Backend::Sqlite,
            &[("POSTERN_SECRETS_KEK_FILE", old.to_str().unwrap())],
        );
        set_secret(&app, "relay-pass", "p4ss-rotation");
        let (sink, _certs) = relay_with_secret(&mut app, "p4ss-rotation");
        delivered_through(&app, &sink, 1).await;
        // Rotated while it runs: it keeps sending.
        app.cli(&[
            "secrets",
            "rotate-kek",
            "--new-kek-file",
            new.to_str().unwrap(),
        ]);
        delivered_through(&app, &sink, 2).await;
        // Restarted mid-change with the new KEK and the old one as previous, then with the
        // new one alone: it starts and sends each time.
        set_env(&mut app, "POSTERN_SECRETS_KEK_FILE", &new);
        set_env(&mut app, "POSTERN_SECRETS_PREVIOUS_KEK_FILE", &old);
        app.kill9();
        app.start();
        delivered_through(&app, &sink, 3).await;
        app.env
            .retain(|(k, _)| k != "POSTERN_SECRETS_PREVIOUS_KEK_FILE");
        app.kill9();
        app.start();
        delivered_through(&app, &sink, 4).await;
        // The old KEK alone no longer starts it, and says why.
        set_env(&mut app, "POSTERN_SECRETS_KEK_FILE", &old);
        app.kill9();
        let (ok, _, err) = app.cli_raw(&["serve"]);
        assert!(
            !ok && err.contains("wrong KEK") && err.contains("[providers.relay] password"),
            "{err}"
        );
    });
}

#[test]
fn a_copy_of_the_database_holds_no_secret() {
    for backend in Backend::all() {
        run_blocking(async move {
            let keys = tempfile::tempdir().unwrap();
            let (kek, _) = write_kek(keys.path(), "kek");
            let mut app = App::spawn(
                backend,
                &[("POSTERN_SECRETS_KEK_FILE", kek.to_str().unwrap())],
            );
            let tag = uuid::Uuid::new_v4().simple().to_string();
            let secrets: Vec<(String, String)> = [
                "relay-pass",
                "ses-secret",
                "postmark-token",
                "twilio-token",
                "hook-secret",
                "social-token",
            ]
            .iter()
            .map(|n| (n.to_string(), format!("{n}-value-{tag}")))
            .collect();
            for (n, v) in &secrets {
                set_secret(&app, n, v);
            }
            // A second version replaces the first.
            set_secret(&app, "relay-pass", &format!("relay-pass-v2-{tag}"));
            let relay_pass = format!("relay-pass-v2-{tag}");

            let list: Value =
                serde_json::from_str(&app.cli(&["--json", "secrets", "list"])).unwrap();
            let relay = list
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == "relay-pass")
                .unwrap();
            assert_eq!(relay["version"], 2);
            assert_eq!(list.as_array().unwrap().len(), secrets.len());
            let listed = app.cli(&["secrets", "list"]);
            assert!(secrets.iter().all(|(_, v)| !listed.contains(v.as_str())));

            // A provider that names the secret uses it: the relay only takes mail with it.
            let (sink, _certs) = relay_with_secret(&mut app, &relay_pass);
            delivered_through(&app, &sink, 1).await;
            // An operator's TOTP secret is sealed as well (and still checks codes).
            let totp = common::admin::add_and_enrol(&app, "ops", ADMIN_PASSWORD).await;
            assert_eq!(
                common::admin::login(&app, "ops", ADMIN_PASSWORD, &totp, 1).await,
                200
            );
            app.terminate();

            let copy = dump(&app);
            // The dump is searchable: the audit entry naming the secret is in it.
            assert!(
                contains(&copy, "secret:relay-pass"),
                "the dump is not searchable"
            );
            let totp = ("admin TOTP".to_owned(), totp);
            for (n, v) in secrets
                .iter()
                .chain([&("relay-pass".into(), relay_pass), &totp])
            {
                for f in forms(v) {
                    assert!(
                        !contains(&copy, &f),
                        "secret {n} found in the database as {f:?}"
                    );
                }
            }
            // The KEK is not there either.
            let kek_text = std::fs::read_to_string(&kek).unwrap();
            assert!(!contains(&copy, kek_text.trim()));
        });
    }
}

#[test]
fn rotate_kek_rewraps_every_data_key() {
    for backend in Backend::all() {
        let keys = tempfile::tempdir().unwrap();
        let (old_path, old) = write_kek(keys.path(), "old");
        let (new_path, new) = write_kek(keys.path(), "new");
        let mut app = App::spawn(
            backend,
            &[("POSTERN_SECRETS_KEK_FILE", old_path.to_str().unwrap())],
        );
        set_secret(&app, "a", "value-a");
        set_secret(&app, "b", "value-b");
        let out: Value = serde_json::from_str(&app.cli(&[
            "--json",
            "secrets",
            "rotate-kek",
            "--new-kek-file",
            new_path.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(out["rewrapped"], 2);
        let new_id = Kek::new(new, String::new()).id().to_owned();
        assert_eq!(out["kek_id"], new_id.as_str());
        let list: Value = serde_json::from_str(&app.cli(&["--json", "secrets", "list"])).unwrap();
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .all(|r| r["kek_id"] == new_id.as_str()),
            "{list}"
        );

        let url = app.database_url();
        block_local(move || async move {
            let store = postern::store::Store::connect(&url).await.unwrap();
            let ring = |cur: [u8; 32], prev: Option<[u8; 32]>| Keyring {
                current: Kek::new(cur, "test".into()),
                previous: prev.map(|p| Kek::new(p, "test previous".into())),
            };
            for (name, value) in [("a", "value-a"), ("b", "value-b")] {
                let got = postern::secrets::get(&store, &ring(new, None), name)
                    .await
                    .unwrap();
                assert_eq!(got.expose_secret(), value);
                let got = postern::secrets::get(&store, &ring(new, Some(old)), name)
                    .await
                    .unwrap();
                assert_eq!(got.expose_secret(), value);
                let e = postern::secrets::get(&store, &ring(old, None), name)
                    .await
                    .unwrap_err();
                assert!(e.to_string().contains("wrong KEK"), "{e}");
            }
        });

        // A config still naming only the old KEK is refused, naming where the KEK came from.
        app.env
            .push(("POSTERN_PROVIDERS_HOOK_TYPE".into(), "webhook".into()));
        app.env.push((
            "POSTERN_PROVIDERS_HOOK_URL".into(),
            "http://127.0.0.1:9/hook".into(),
        ));
        app.env
            .push(("POSTERN_PROVIDERS_HOOK_SECRET".into(), "secret:a".into()));
        let (ok, _, err) = app.cli_raw(&["providers", "test", "hook"]);
        assert!(!ok && err.contains("wrong KEK"), "{err}");
        assert!(err.contains(old_path.to_str().unwrap()), "{err}");
        assert!(err.contains("[providers.hook] secret"), "{err}");
        // With the new KEK, and the old one as previous, it resolves (the probe then fails
        // on the closed port, which is past the secret).
        app.env.retain(|(k, _)| k != "POSTERN_SECRETS_KEK_FILE");
        app.env.push((
            "POSTERN_SECRETS_KEK_FILE".into(),
            new_path.to_str().unwrap().into(),
        ));
        app.env.push((
            "POSTERN_SECRETS_PREVIOUS_KEK_FILE".into(),
            old_path.to_str().unwrap().into(),
        ));
        let (_, _, err) = app.cli_raw(&["providers", "test", "hook"]);
        assert!(!err.contains("KEK") && !err.contains("secret"), "{err}");
    }
}

const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// The config `postern init` wrote, without its `[secrets]` KEK.
fn drop_kek_from_config(app: &App) {
    let text = std::fs::read_to_string(app.config()).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("kek_file"))
        .collect();
    assert!(kept.len() < text.lines().count(), "init wrote no kek_file");
    std::fs::write(app.config(), kept.join("\n")).unwrap();
}

#[test]
fn init_writes_a_kek_only_its_owner_reads() {
    use std::os::unix::fs::PermissionsExt;
    let app = App::spawn(Backend::Sqlite, &[]);
    let kek = app.dir.path().join("postern.kek");
    let mode = std::fs::metadata(&kek).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(std::fs::read_to_string(&kek).unwrap().trim())
        .unwrap();
    assert_eq!(raw.len(), 32);
    // The default config uses it: a secret can be set without configuring anything.
    set_secret(&app, "x", "some value");
}

#[test]
fn a_missing_kek_is_named() {
    let mut app = App::spawn(Backend::Sqlite, &[]);
    drop_kek_from_config(&app);
    let (ok, _, err) = app.cli_stdin(&["secrets", "set", "x"], b"v");
    assert!(
        !ok && err.contains("no KEK configured") && err.contains("kek_file"),
        "{err}"
    );
    app.env
        .push(("POSTERN_SECRETS_KEK_FILE".into(), "/nonexistent/kek".into()));
    let (ok, _, err) = app.cli_stdin(&["secrets", "set", "x"], b"v");
    assert!(!ok && err.contains("/nonexistent/kek"), "{err}");
    app.env.retain(|(k, _)| k != "POSTERN_SECRETS_KEK_FILE");
    app.env.push((
        "POSTERN_SECRETS_KEK_ENV".into(),
        "POSTERN_TEST_UNSET_KEK".into(),
    ));
    let (ok, _, err) = app.cli_stdin(&["secrets", "set", "x"], b"v");
    assert!(!ok && err.contains("POSTERN_TEST_UNSET_KEK"), "{err}");
    app.env.push((
        "POSTERN_TEST_UNSET_KEK".into(),
        base64::engine::general_purpose::STANDARD.encode([3u8; 32]),
    ));
    let (ok, _, err) = app.cli_stdin(&["secrets", "set", "x"], b"");
    assert!(!ok && err.contains("no secret on stdin"), "{err}");
    let (ok, _, err) = app.cli_stdin(&["secrets", "set", "x"], b"v\n");
    assert!(ok, "{err}");
}
