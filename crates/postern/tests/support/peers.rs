//! Peers for the provider conformance suite: the documented-format fakes of
//! tests/support/provider_fakes.py, and moto's SES emulator with SigV4 checking on.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;

pub const TWILIO_SID: &str = "AC00000000000000000000000000000001";
const FAKE_KEY_ID: &str = "AKIAFAKE";

/// Where an adapter under test points, and with which credentials.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub base: String,
    pub secret: String,
    /// SES access key id (the other adapters ignore it).
    pub key_id: String,
}

fn support(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(file)
}

/// One provider API fake, on its own port, killed when dropped.
pub struct Fake {
    pub port: u16,
    secret: String,
    child: Child,
}

impl Fake {
    pub fn start(api: &str, secret: &str) -> Self {
        let mut child = Command::new(common::python())
            .arg(support("provider_fakes.py"))
            .args(["--api", api, "--secret", secret])
            .args(["--account-sid", TWILIO_SID, "--access-key-id", FAKE_KEY_ID])
            .args(["--account", "status"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start provider_fakes.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("fake port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("provider fake said {line:?}"));
        Self {
            port,
            secret: secret.to_owned(),
            child,
        }
    }

    pub fn info(&self) -> PeerInfo {
        PeerInfo {
            base: format!("http://127.0.0.1:{}", self.port),
            secret: self.secret.clone(),
            key_id: FAKE_KEY_ID.into(),
        }
    }

    pub async fn set_mode(&self, mode: &str) {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/_fake/mode", self.port))
            .json(&serde_json::json!({ "mode": mode }))
            .send()
            .await
            .expect("set fake mode");
        assert!(r.status().is_success());
    }

    /// Sends made with the account elsewhere: the SES fake's `SentLast24Hours` grows by `n`.
    #[allow(dead_code)] // used by tests/guard_signals.rs, not by every suite that shares this file
    pub async fn add_outside_sends(&self, n: u64) {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/_fake/sent", self.port))
            .json(&serde_json::json!({ "add": n }))
            .send()
            .await
            .expect("add outside sends");
        assert!(r.status().is_success());
    }

    /// Every API request the fake saw, as it understood it.
    pub async fn requests(&self) -> Vec<Value> {
        reqwest::get(format!("http://127.0.0.1:{}/_fake/requests", self.port))
            .await
            .expect("fake requests")
            .json()
            .await
            .expect("json")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's server with signature checking on, an IAM user allowed `ses:*`, and a verified
/// sending domain.
pub struct Moto {
    pub port: u16,
    key_id: String,
    secret: String,
    child: Child,
}

impl Moto {
    pub fn start(domain: &str) -> Self {
        let port = common::free_port();
        let mut child = Command::new(common::python())
            .args(["-m", "moto.server", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto (scripts/test installs moto[server] in .venv)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto exited early: {status}");
            }
            assert!(Instant::now() < deadline, "moto did not listen within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        let out = Command::new(common::python())
            .arg(support("ses_moto.py"))
            .args(["setup", &endpoint, domain])
            .output()
            .expect("run ses_moto.py");
        assert!(
            out.status.success(),
            "moto setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("setup json");
        Self {
            port,
            key_id: v["access_key_id"].as_str().expect("key id").to_owned(),
            secret: v["secret_access_key"].as_str().expect("secret").to_owned(),
            child,
        }
    }

    pub fn info(&self) -> PeerInfo {
        PeerInfo {
            base: format!("http://127.0.0.1:{}", self.port),
            secret: self.secret.clone(),
            key_id: self.key_id.clone(),
        }
    }

    /// SES `GetSendQuota.SentLast24Hours`, read with boto3.
    pub fn sent_last_24h(&self) -> f64 {
        let out = Command::new(common::python())
            .arg(support("ses_moto.py"))
            .args([
                "quota",
                &format!("http://127.0.0.1:{}", self.port),
                &self.key_id,
                &self.secret,
            ])
            .output()
            .expect("run ses_moto.py quota");
        assert!(
            out.status.success(),
            "quota failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("quota json");
        v["SentLast24Hours"].as_f64().expect("SentLast24Hours")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
