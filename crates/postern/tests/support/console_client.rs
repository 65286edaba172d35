//! The console as a browser sees it, for the black-box tests: a form-posting client that
//! keeps cookies, the first login with enrolment (TOTP from the page's secret), and readers
//! for a page's fields and elements.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::Value;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::common::App;

pub const NEW_PASSWORD: &str = "correct horse battery staple";

/// A new admin account; returns its one-time password.
pub fn add_admin(app: &App, name: &str, role: &str, tenant: Option<&str>) -> String {
    let mut args = vec!["--json", "admin", "add", name, "--role", role];
    if let Some(t) = tenant {
        args.extend(["--tenant", t]);
    }
    let v: Value = serde_json::from_str(&app.cli(&args)).unwrap();
    v["one_time_password"].as_str().unwrap().to_owned()
}

/// The current TOTP code for a base32 secret.
pub fn code(secret_b32: &str) -> String {
    let raw = Secret::Encoded(secret_b32.to_owned()).to_bytes().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, raw).generate(now)
}

/// The `value` of the input named `name` in a page.
pub fn field(html: &str, name: &str) -> String {
    let pat = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&pat)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + pat.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The text of the element with id `id` (no nested markup).
pub fn by_id(html: &str, id: &str) -> String {
    let pat = format!("id=\"{id}\"");
    let start = html
        .find(&pat)
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    rest[open..].split('<').next().unwrap().to_owned()
}

/// A form-posting client that keeps the console's cookies, as a browser would.
pub struct Client {
    http: reqwest::Client,
    base: String,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl Client {
    pub fn new(app: &App) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.url(""),
            cookies: Mutex::default(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&self, r: reqwest::RequestBuilder) -> (u16, String) {
        let resp = r
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (k, v) = c.split(';').next().unwrap().split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            if v.is_empty() {
                jar.remove(k);
            } else {
                jar.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        self.send(self.http.post(format!("{}{path}", self.base)).form(form))
            .await
    }
}

/// First login through the console's forms: password, enrolment with a TOTP code computed
/// from the secret the page shows, a new password. Returns the client and its CSRF token.
pub async fn console_login(app: &App, user: &str, otp: &str) -> (Client, String) {
    let c = Client::new(app);
    let (s, page) = c.get("/console/login").await;
    assert_eq!(s, 200);
    let token = field(&page, "login_csrf");
    let (s, page) = c
        .post(
            "/console/login",
            &[("login_csrf", &token), ("user", user), ("password", otp)],
        )
        .await;
    assert_eq!(s, 200, "{page}");
    let secret = by_id(&page, "totp-secret");
    assert!(by_id(&page, "otpauth").starts_with("otpauth://totp/Postern:"));
    let (s, page) = c
        .post(
            "/console/enrol",
            &[
                ("login_csrf", &token),
                ("user", user),
                ("password", otp),
                ("code", &code(&secret)),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(s, 303, "{page}");
    let (s, page) = c.get("/console/overview").await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Queue depth"), "{page}");
    let csrf = field(&page, "csrf");
    (c, csrf)
}
