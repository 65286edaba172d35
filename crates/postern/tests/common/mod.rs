//! Black-box test harness: spawns the real `postern` binary on random ports with a fresh
//! database, and real peers (aiosmtpd, PostgreSQL).
#![allow(dead_code)]

pub mod pki;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod admin;
pub mod store;

pub const BIN: &str = env!("CARGO_BIN_EXE_postern");

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The Python that has aiosmtpd: `POSTERN_TEST_PYTHON`, else the workspace `.venv`.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("POSTERN_TEST_PYTHON") {
        return p.into();
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no {} — run scripts/test (it creates the venv with aiosmtpd)",
        venv.display()
    );
    venv
}

/// `postgres://…` of the server the tests use.
pub fn pg_admin_url() -> String {
    std::env::var("POSTERN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own for one test, dropped afterwards.
pub struct PgDb {
    pub url: String,
    name: String,
}

impl PgDb {
    pub fn create() -> Self {
        let name = format!("postern_test_{}", uuid::Uuid::new_v4().simple());
        let admin = pg_admin_url();
        let (a, n) = (admin.clone(), name.clone());
        run_blocking(async move {
            let (admin, name) = (a, n);
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&admin)
                .await
                .expect("PostgreSQL at POSTERN_TEST_PG / 127.0.0.1:5432");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await
                .expect("create database");
        });
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .unwrap_or(admin);
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin, name) = (pg_admin_url(), self.name.clone());
        run_blocking(async move {
            use sqlx::Connection;
            if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
            }
        });
    }
}

/// Runs a future to completion on a private runtime in its own thread (usable from Drop and
/// from inside another runtime).
pub fn run_blocking<F: std::future::Future + Send + 'static>(f: F) -> F::Output
where
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    })
    .join()
    .expect("thread")
}

/// Runs a future that need not be `Send` on a private current-thread runtime, in a thread of
/// its own (so it works from inside another runtime too). Tasks may use `spawn_local`.
pub fn block_local<M, F>(make: M) -> F::Output
where
    M: FnOnce() -> F + Send,
    F: std::future::Future,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            tokio::task::LocalSet::new().block_on(&rt, make())
        })
        .join()
        .expect("thread")
    })
}

/// The environment for SMTP providers named after `sinks`, each relaying to its sink, routed
/// in that order (the first primary, the next its failover).
pub fn relay_env(sinks: &[(&str, &Sink)]) -> Vec<(String, String)> {
    let mut env = vec![];
    for (name, sink) in sinks {
        let up = name.to_ascii_uppercase();
        env.push((format!("POSTERN_PROVIDERS_{up}_TYPE"), "smtp".to_owned()));
        env.push((format!("POSTERN_PROVIDERS_{up}_HOST"), "127.0.0.1".into()));
        env.push((
            format!("POSTERN_PROVIDERS_{up}_PORT"),
            sink.port.to_string(),
        ));
    }
    let names: Vec<&str> = sinks.iter().map(|(n, _)| *n).collect();
    env.push((
        "POSTERN_ROUTES_DEFAULT".into(),
        serde_json::json!(names).to_string(),
    ));
    env
}

/// Runs SQL statements straight on the database at `url` (`sqlite://…` or `postgres://…`), on a
/// connection of its own, as someone with access to the database would.
pub async fn run_sql(url: &str, statements: &str) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
        sqlx::raw_sql(statements)
            .execute(&mut c)
            .await
            .expect(statements);
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
        sqlx::raw_sql(statements)
            .execute(&mut c)
            .await
            .expect(statements);
    }
}

/// A real SMTP server (tests/support/sink.py on aiosmtpd).
pub struct Sink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Sink {
    pub fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sink.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the aiosmtpd sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("sink port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("sink said {line:?}"));
        Self { port, dir, child }
    }

    /// Messages the sink accepted, as text.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .expect("sink dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("read"))
            .collect()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Which database a spawned server uses.
pub enum Backend {
    Sqlite,
    Postgres(PgDb),
}

impl Backend {
    pub fn all() -> Vec<Backend> {
        vec![Backend::Sqlite, Backend::Postgres(PgDb::create())]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// A running `postern serve`, killed when dropped.
pub struct App {
    pub dir: tempfile::TempDir,
    pub http: String,
    pub smtp: String,
    pub key: String,
    /// The owner's one-time password `init` printed (user `admin`).
    pub admin_password: String,
    pub env: Vec<(String, String)>,
    pub backend: Backend,
    child: Option<Child>,
}

impl App {
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("postern.toml")
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("postern-data/outbox")
    }

    /// `init` in a fresh directory, then `serve` with `env` overrides on random ports.
    pub fn spawn(backend: Backend, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for var in ["POSTERN_HTTP_LISTEN", "POSTERN_SMTP_LISTEN"] {
            if !env.iter().any(|(k, _)| k == var) {
                env.push((var.into(), "127.0.0.1:0".into()));
            }
        }
        if let Backend::Postgres(db) = &backend {
            env.push(("POSTERN_DATABASE_URL".into(), db.url.clone()));
        }
        let mut app = Self {
            dir,
            http: String::new(),
            smtp: String::new(),
            key: String::new(),
            admin_password: String::new(),
            env,
            backend,
            child: None,
        };
        let out = app.cli(&[
            "init",
            "--json",
            "--dir",
            app.dir.path().to_str().expect("utf8"),
        ]);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("init printed {out:?}: {e}"));
        app.key = v["api_key"].as_str().expect("api_key").to_owned();
        app.admin_password = v["admin_password"]
            .as_str()
            .expect("admin_password")
            .to_owned();
        app.start();
        app
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(self.config())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("POSTERN_LOG", "warn");
        c
    }

    /// Runs a CLI command against this instance's config; panics unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("run postern");
        assert!(
            out.status.success(),
            "postern {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    /// Runs a CLI command, returning (success, stdout, stderr).
    pub fn cli_raw(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.command().args(args).output().expect("run postern");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// Runs a CLI command with `input` on its stdin: (success, stdout, stderr).
    pub fn cli_stdin(&self, args: &[&str], input: &[u8]) -> (bool, String, String) {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run postern");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        let out = child.wait_with_output().expect("wait");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// Starts (or restarts) `serve` and waits until it listens.
    pub fn start(&mut self) {
        let info = self.dir.path().join("postern-data/serve.json");
        let _ = std::fs::remove_file(&info);
        let child = self
            .command()
            .arg("serve")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&info)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            {
                {
                    self.http = format!("http://{}", v["http"].as_str().expect("http"));
                    self.smtp = v["smtp"].as_str().unwrap_or_default().to_owned();
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("postern serve exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "postern serve did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`HUP`, `TERM`, ...) to the running server.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{sig} {pid}");
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "postern did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The database this instance uses.
    pub fn database_url(&self) -> String {
        match &self.backend {
            Backend::Sqlite => format!(
                "sqlite://{}",
                self.dir.path().join("postern-data/postern.db").display()
            ),
            Backend::Postgres(db) => db.url.clone(),
        }
    }

    /// Runs SQL statements straight on the database (as someone with access to it would).
    pub fn sql(&self, statements: &str) {
        let url = self.database_url();
        block_local(|| run_sql(&url, statements))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.http, path)
    }

    /// A new API key for `tenant` (created if missing).
    pub fn new_key(&self, tenant: &str) -> String {
        let _ = self.cli_raw(&["tenants", "add", tenant]);
        let out = self.cli(&["--json", "keys", "create", "--tenant", tenant]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["secret"].as_str().expect("secret").to_owned()
    }

    pub async fn send(&self, key: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(self.url("/v1/messages"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("request");
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    pub async fn message(&self, id: &str) -> serde_json::Value {
        let r = reqwest::Client::new()
            .get(self.url(&format!("/v1/messages/{id}")))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "GET message {id}");
        r.json().await.expect("json")
    }

    /// Waits until the message reaches `status` (panics after `secs`).
    pub async fn wait_status(&self, id: &str, status: &str, secs: u64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let m = self.message(id).await;
            if m["status"] == status {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "message {id} did not reach {status} in {secs} s: {m:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn simple_message(to: &str) -> serde_json::Value {
    serde_json::json!({"from": "app@example.com", "to": [to], "subject": "Hello", "text": "Hi there"})
}

/// Files in a directory with the given extension.
pub fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .collect(),
        Err(_) => vec![],
    }
}

/// A port that was free a moment ago (for a server that must keep its port across restarts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Sum of the `postern_queue_messages` gauge over every status: messages in the store.
pub fn stored_messages(metrics: &str) -> i64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("postern_queue_messages{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum()
}
