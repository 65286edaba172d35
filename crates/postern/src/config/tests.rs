use super::load::line_of;
use super::*;

#[test]
fn plain_http_only_on_loopback_unless_allowed() {
    let load = |toml: &str| Config::from_toml_and_env(toml, []).unwrap();
    assert!(load("").check_http_exposure().is_ok());
    let open = load("[http]\nlisten = \"0.0.0.0:8025\"\n");
    let err = open.check_http_exposure().unwrap_err().to_string();
    assert!(
        err.contains("[http] listen") && err.contains("allow_plaintext"),
        "{err}"
    );
    let allowed = load("[http]\nlisten = \"0.0.0.0:8025\"\nallow_plaintext = true\n");
    assert!(allowed.check_http_exposure().is_ok());
    let tls = load("[http]\nlisten = \"[::]:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n");
    assert!(tls.check_http_exposure().is_ok());
    let err = Config::from_toml_and_env("[http]\ntls_cert = \"c.pem\"\n", [])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2, `http.tls_cert`") && err.contains("tls_key"),
        "{err}"
    );
}

#[test]
fn empty_config_is_the_embedded_default() {
    let c = Config::from_toml_and_env("", []).unwrap();
    assert_eq!(c.http.listen.port(), 8025);
    assert_eq!(c.smtp.listen.port(), 2587);
    assert!(matches!(
        c.providers.get("local"),
        Some(ProviderConfig::File { .. })
    ));
    assert!(c.database_url().starts_with("sqlite://"));
}

#[test]
fn env_overrides() {
    let env = [
        (
            "POSTERN_HTTP_LISTEN".to_owned(),
            "127.0.0.1:9000".to_owned(),
        ),
        ("POSTERN_QUEUE_CONCURRENCY".to_owned(), "7".to_owned()),
        (
            "POSTERN_DATABASE_URL".to_owned(),
            "postgres://x@y/z".to_owned(),
        ),
        ("POSTERN_PROVIDERS_RELAY_TYPE".to_owned(), "smtp".to_owned()),
        (
            "POSTERN_PROVIDERS_RELAY_HOST".to_owned(),
            "127.0.0.1".to_owned(),
        ),
        (
            "POSTERN_ROUTES_DEFAULT".to_owned(),
            r#"["relay"]"#.to_owned(),
        ),
    ];
    let c = Config::from_toml_and_env("", env).unwrap();
    assert_eq!(c.http.listen.port(), 9000);
    assert_eq!(c.queue.concurrency, 7);
    assert_eq!(c.database_url(), "postgres://x@y/z");
    assert!(matches!(
        c.providers.get("relay"),
        Some(ProviderConfig::Smtp { port: 25, .. })
    ));
}

#[test]
fn unknown_keys_and_routes_to_nowhere_are_errors() {
    let e =
        Config::from_toml_and_env("[http]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n", []).unwrap_err();
    assert!(format!("{e:#}").contains("lisen"), "{e:#}");
    let e = Config::from_toml_and_env("[routes]\ndefault = [\"nope\"]\n", []).unwrap_err();
    assert!(e.to_string().contains("nope"));
    assert!(e.to_string().starts_with("line 2, `routes.default`"), "{e}");
}

#[test]
fn errors_name_the_line() {
    let text = "data_dir = \"x\"\n[http]\nlisten = \"127.0.0.1:1\"\n\n[providers.weird]\n# comment\ntype = \"carrierpigeon\"\n";
    let e = Config::from_toml_and_env(text, []).unwrap_err().to_string();
    assert!(
        e.starts_with("line 7, `providers.weird.type`: unknown variant `carrierpigeon`"),
        "{e}"
    );
    let text = "[providers.r]\ntype = \"smtp\"\nhost = \"h\"\nprot = 1\n";
    let e = Config::from_toml_and_env(text, []).unwrap_err().to_string();
    assert!(
        e.starts_with("line 4, `providers.r.prot`: unknown field `prot`"),
        "{e}"
    );
    let text = "[providers.r]\ntype = \"smtp\"\n";
    let e = Config::from_toml_and_env(text, []).unwrap_err().to_string();
    assert!(
        e.contains("line 1, `providers.r`: missing field `host`"),
        "{e}"
    );
    let env = [("POSTERN_PROVIDERS_Q_TYPE".to_owned(), "fax".to_owned())];
    let e = Config::from_toml_and_env("", env).unwrap_err().to_string();
    assert!(
        e.contains("`providers.q.type` (from the environment"),
        "{e}"
    );
    assert_eq!(line_of("a = 1\n[b]\na = 2\n", "a"), Some(1));
    assert_eq!(line_of("[b]\na = 2\n", "a"), None);
}

#[test]
fn provider_sections_are_checked_too() {
    let e = Config::from_toml_and_env(
        "[providers.r]\ntype=\"smtp\"\nhost=\"h\"\nprot=25\n[routes]\ndefault=[\"r\"]\n",
        [],
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("prot"), "{e:#}");
    let e = Config::from_toml_and_env("[providers.r]\ntype=\"carrier-pigeon\"\n", []).unwrap_err();
    assert!(format!("{e:#}").contains("carrier-pigeon"), "{e:#}");
}

const EVERY_TYPE: &str = r#"
[providers.ses]
type = "ses"
access_key_id = "AKIAEXAMPLE"
secret_access_key = "S3CRET-ses"
[providers.pm]
type = "postmark"
server_token = "S3CRET-postmark"
[providers.mg]
type = "mailgun"
domain = "mg.example.com"
api_key = "S3CRET-mailgun"
[providers.sg]
type = "sendgrid"
api_key = "S3CRET-sendgrid"
[providers.sms]
type = "twilio"
account_sid = "AC123"
auth_token = "S3CRET-twilio"
from = "+15005550006"
[providers.hook]
type = "webhook"
url = "https://hooks.example.com/in/S3CRET-path?key=S3CRET-query"
secret = "S3CRET-webhook"
[providers.toot]
type = "social"
base_url = "https://social.example"
access_token = "S3CRET-social"
account = "status"
[routes]
default = ["ses"]
"#;

#[test]
fn every_provider_type_parses_with_defaults() {
    let c = Config::from_toml_and_env(EVERY_TYPE, []).unwrap();
    let kinds: Vec<&str> = c.providers.values().map(|p| p.kind()).collect();
    assert_eq!(kinds.len(), 7);
    match &c.providers["ses"] {
        ProviderConfig::Ses {
            region, endpoint, ..
        } => {
            assert_eq!(region, "us-east-1");
            assert!(endpoint.is_none());
        }
        p => panic!("{p:?}"),
    }
    match &c.providers["pm"] {
        ProviderConfig::Postmark {
            base_url,
            message_stream,
            timeout_secs,
            ..
        } => {
            assert_eq!(base_url, "https://api.postmarkapp.com");
            assert_eq!(message_stream, "outbound");
            assert_eq!(*timeout_secs, 30);
        }
        p => panic!("{p:?}"),
    }
    assert!(
        matches!(&c.providers["mg"], ProviderConfig::Mailgun { base_url, .. } if base_url == "https://api.mailgun.net")
    );
    assert!(
        matches!(&c.providers["sg"], ProviderConfig::Sendgrid { base_url, .. } if base_url == "https://api.sendgrid.com")
    );
    assert!(
        matches!(&c.providers["sms"], ProviderConfig::Twilio { base_url, .. } if base_url == "https://api.twilio.com")
    );
    assert!(
        matches!(&c.providers["toot"], ProviderConfig::Social { visibility, .. } if visibility == "public")
    );
}

#[test]
fn debug_of_every_provider_type_hides_its_secrets() {
    let c = Config::from_toml_and_env(EVERY_TYPE, []).unwrap();
    for (name, p) in &c.providers {
        let shown = format!("{p:?}");
        assert!(!shown.contains("S3CRET"), "{name}: {shown}");
        assert!(shown.contains("[redacted]"), "{name}: {shown}");
    }
    let all = format!("{c:?}");
    assert!(!all.contains("S3CRET"), "{all}");
    assert!(all.contains("https://hooks.example.com/…"), "{all}");
}

#[test]
fn provider_secrets_and_endpoints_come_from_the_environment() {
    let env = [
        (
            "POSTERN_PROVIDERS_SG_API_KEY".to_owned(),
            "from-env".to_owned(),
        ),
        (
            "POSTERN_PROVIDERS_SG_BASE_URL".to_owned(),
            "http://127.0.0.1:9".to_owned(),
        ),
        (
            "POSTERN_PROVIDERS_SES_REGION".to_owned(),
            "eu-west-1".to_owned(),
        ),
    ];
    let c = Config::from_toml_and_env(EVERY_TYPE, env).unwrap();
    match &c.providers["sg"] {
        ProviderConfig::Sendgrid {
            api_key, base_url, ..
        } => {
            use secrecy::ExposeSecret;
            assert_eq!(api_key.expose_secret(), "from-env");
            assert_eq!(base_url, "http://127.0.0.1:9");
        }
        p => panic!("{p:?}"),
    }
    assert!(
        matches!(&c.providers["ses"], ProviderConfig::Ses { region, .. } if region == "eu-west-1")
    );
}

#[test]
fn urls_are_redacted_to_their_host() {
    assert_eq!(
        redact_url("https://user:pw@h.example:8443/x?y=z"),
        "https://h.example:8443/…"
    );
    assert_eq!(redact_url("http://h"), "http://h");
    assert_eq!(redact_url("garbage"), "[redacted]");
}

#[test]
fn debug_never_shows_a_password() {
    let c = Config::from_toml_and_env(
        "[providers.r]\ntype=\"smtp\"\nhost=\"h\"\npassword=\"hunter2\"\n[routes]\ndefault=[\"r\"]\n",
        [],
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn a_value_of_the_wrong_type_is_named_by_its_key_not_echoed() {
    let env = [
        ("POSTERN_PROVIDERS_RELAY_TYPE".to_owned(), "smtp".to_owned()),
        (
            "POSTERN_PROVIDERS_RELAY_HOST".to_owned(),
            "127.0.0.1".to_owned(),
        ),
        (
            "POSTERN_PROVIDERS_RELAY_USERNAME".to_owned(),
            "u".to_owned(),
        ),
        (
            "POSTERN_PROVIDERS_RELAY_PASSWORD".to_owned(),
            "12345678".to_owned(),
        ),
    ];
    let e = format!("{:#}", Config::from_toml_and_env("", env).unwrap_err());
    assert!(!e.contains("12345678"), "{e}");
    assert!(
        e.contains("providers.relay") && e.contains("invalid type: integer, expected a string"),
        "{e}"
    );
}

#[test]
fn queue_timings_that_cannot_work_are_refused() {
    for (text, key) in [
        ("[queue]\nlease_secs = 0\n", "queue.lease_secs"),
        ("[queue]\nlease_secs = 5\n", "queue.lease_secs"),
        ("[queue]\nbackoff_max_secs = 0\n", "queue.backoff_max_secs"),
        (
            "[queue]\nbackoff_base_secs = 600\nbackoff_max_secs = 60\n",
            "queue.backoff_max_secs",
        ),
        ("[smtp]\nidle_timeout_secs = 0\n", "smtp.idle_timeout_secs"),
    ] {
        let e = Config::from_toml_and_env(text, []).unwrap_err().to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
    assert!(Config::from_toml_and_env("[queue]\nlease_secs = 30\n", []).is_ok());
}

#[test]
fn a_provider_rate_too_small_to_time_is_refused() {
    let base = "[routes]\ndefault = [\"r\"]\n[providers.r]\ntype = \"file\"\ndir = \"o\"\n";
    for rate in ["1e-300", "0.0", "-1", "\"fast\""] {
        let text = format!("{base}max_rate = {rate}\n");
        let e = Config::from_toml_and_env(&text, [])
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_rate"), "{rate}: {e}");
    }
    let ok = Config::from_toml_and_env(&format!("{base}max_rate = 0.5\n"), []);
    assert!(ok.is_ok(), "{:?}", ok.err());
}
