//! A minimal W3C WebDriver client over HTTP (reqwest) for headless Chromium driven by
//! Debian's `chromedriver`: open pages, fill and click elements, read text, save screenshots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A `chromedriver` process and one browser session, both ended when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    shots: PathBuf,
}

fn chromium_binary() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect(
            "Chromium is needed for the console tests: apt-get install chromium chromium-driver",
        )
}

impl Browser {
    /// Starts chromedriver on `port` and a headless Chromium with a phone-sized window.
    pub async fn start(port: u16, shots: PathBuf) -> Self {
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver is needed for the console tests: apt-get install chromium-driver",
            );
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_binary(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=412,915", "--user-agent=Mozilla/5.0 (Linux; Android 14) Mobile"]
            }
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session: {v}"))
            .to_owned();
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Self {
            driver,
            base,
            session,
            http,
            shots,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body).await {
            Ok(v) => v,
            Err((err, message)) => panic!("webdriver {method} {path}: {err}: {message}"),
        }
    }

    /// The call's value, or the WebDriver error code and message.
    async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (String, Value)> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut r = self.http.request(method.parse().expect("method"), &url);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r
            .send()
            .await
            .expect("webdriver call")
            .json()
            .await
            .expect("webdriver json");
        match v["value"]["error"].as_str() {
            Some(err) => Err((err.to_owned(), v["value"]["message"].clone())),
            None => Ok(v["value"].clone()),
        }
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    /// The element matching a CSS selector (waits up to 20 s for it to appear).
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let v: Value = self
                .http
                .post(&url)
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .expect("find")
                .json()
                .await
                .expect("find json");
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no element {css:?} on {}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call("POST", &format!("/element/{el}/clear"), Some(json!({})))
            .await;
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call("POST", &format!("/element/{el}/click"), Some(json!({})))
            .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        self.call("GET", &format!("/element/{el}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn source(&self) -> String {
        let url = format!("{}/session/{}/source", self.base, self.session);
        match self.http.get(&url).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .map(|v| v["value"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default(),
            Err(e) => e.to_string(),
        }
    }

    pub async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the text of `css` contains `want` (up to 30 s).
    pub async fn wait_text(&self, css: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // The page may be replaced between finding the element and reading it (a form
            // post navigating): a stale element is read again from the new page. Chromedriver
            // reports that as "stale element reference", or, when the new page replaced the
            // node mid-read, as an "unknown error" from the inspector.
            let el = self.find(css).await;
            let t = match self
                .try_call("GET", &format!("/element/{el}/text"), None)
                .await
            {
                Ok(v) => v.as_str().unwrap_or_default().to_owned(),
                Err((err, message))
                    if err == "stale element reference"
                        || message
                            .as_str()
                            .is_some_and(|m| m.contains("does not belong to the document")) =>
                {
                    String::new()
                }
                Err((err, message)) => panic!("webdriver text of {css:?}: {err}: {message}"),
            };
            if t.contains(want) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css:?} never showed {want:?}; last: {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Saves a PNG screenshot as `<shots>/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let b64 = self.call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("screenshot base64");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        // Best effort: the driver is killed next anyway.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let _ = reqwest::Client::new().delete(url).send().await;
                });
            }
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
