//! SMTP submission over the wire: a real client library (lettre) for the happy paths, raw
//! commands for everything a client can get wrong.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use common::{App, Backend, files_in};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A line-level SMTP client that shows exactly what the server answers.
struct Raw {
    r: BufReader<TcpStream>,
}

impl Raw {
    async fn connect(addr: &str) -> Self {
        let s = TcpStream::connect(addr).await.expect("connect");
        let mut raw = Self {
            r: BufReader::new(s),
        };
        let greet = raw.reply().await;
        assert!(greet.starts_with("220 "), "{greet}");
        raw
    }

    /// One complete (possibly multi-line) reply.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.r.read_line(&mut line))
                .await
                .expect("reply in time")
                .expect("read");
            assert!(n > 0, "connection closed; got so far: {all:?}");
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all.trim_end().to_owned();
            }
        }
    }

    async fn send(&mut self, data: &str) {
        self.r
            .get_mut()
            .write_all(data.as_bytes())
            .await
            .expect("write");
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    /// MAIL FROM app@example.com, RCPT TO `to`, DATA: each accepted.
    async fn open_data(&mut self, to: &str) {
        let r = self.cmd("MAIL FROM:<app@example.com>").await;
        assert!(r.starts_with("250"), "{r}");
        let r = self.cmd(&format!("RCPT TO:<{to}>")).await;
        assert!(r.starts_with("250"), "{r}");
        let r = self.cmd("DATA").await;
        assert!(r.starts_with("354"), "{r}");
    }

    async fn login(&mut self, key: &str) {
        assert!(self.cmd("EHLO client.test").await.starts_with("250"));
        let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0user\0{key}"));
        let r = self.cmd(&format!("AUTH PLAIN {plain}")).await;
        assert!(r.starts_with("235 "), "{r}");
    }
}

fn code(reply: &str) -> &str {
    &reply[..3]
}

#[tokio::test]
async fn starttls_auth_and_delivery_with_a_real_client() {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let app = App::spawn(Backend::Sqlite, &[]);
    let (host, port) = app.smtp.rsplit_once(':').unwrap();
    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port.parse().unwrap())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new("anyone".into(), app.key.clone()))
        .build();
    for i in 0..3 {
        let email = Message::builder()
            .from("app@example.com".parse().unwrap())
            .to(format!("user{i}@example.org").parse().unwrap())
            .subject(format!("over smtp {i}"))
            .body(String::from("hello over SMTP"))
            .unwrap();
        let resp = mailer.send(email).await.expect("accepted");
        assert!(resp.message().any(|l| l.contains("queued as")), "{resp:?}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while files_in(&app.outbox(), "eml").len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "SMTP messages were not delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all: String = files_in(&app.outbox(), "eml")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for i in 0..3 {
        assert!(all.contains(&format!("Subject: over smtp {i}")));
    }
}

#[tokio::test]
async fn smtp_and_http_share_one_queue() {
    let app = App::spawn(Backend::Postgres(common::PgDb::create()), &[]);
    let mut s = Raw::connect(&app.smtp).await;
    s.login(&app.key).await;
    // Pipelined: MAIL, RCPT, DATA in one write, answered in order.
    s.send("MAIL FROM:<app@example.com>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n")
        .await;
    assert_eq!(code(&s.reply().await), "250");
    assert_eq!(code(&s.reply().await), "250");
    assert_eq!(code(&s.reply().await), "354");
    let r = s
        .cmd("From: app@example.com\r\nSubject: pipelined\r\n\r\n..leading dot\r\n.")
        .await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    let id = r.rsplit(' ').next().unwrap().to_owned();
    let m = app.wait_status(&id, "delivered", 10).await;
    assert_eq!(m["events"][0]["detail"], "accepted via smtp");
    let eml = std::fs::read_to_string(app.outbox().join(format!("{id}.eml"))).unwrap();
    assert!(
        eml.contains("\r\n.leading dot\r\n"),
        "dot-stuffing undone: {eml}"
    );
    assert!(eml.contains("Message-ID: <"), "Message-ID added: {eml}");
    let (code_http, _) = app
        .send(&app.key, common::simple_message("b@example.org"))
        .await;
    assert_eq!(code_http, 202);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("postern_messages_accepted_total{source=\"smtp\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("postern_messages_accepted_total{source=\"http\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn commands_out_of_order_and_bad_input() {
    let app = App::spawn(
        Backend::Sqlite,
        &[("POSTERN_SMTP_MAX_MESSAGE_BYTES", "2000")],
    );
    let mut s = Raw::connect(&app.smtp).await;
    assert!(
        s.cmd("MAIL FROM:<a@example.com>")
            .await
            .starts_with("503 5.5.1")
    );
    assert!(s.cmd("EHLO").await.starts_with("501"));
    assert!(s.cmd("BOGUS").await.starts_with("500 5.5.2"));
    let long = format!("NOOP {}", "x".repeat(5000));
    assert!(s.cmd(&long).await.starts_with("500 5.5.6"), "line too long");
    let ehlo = s.cmd("EHLO client.test").await;
    assert!(
        ehlo.contains("PIPELINING") && ehlo.contains("SIZE 2000") && ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    assert!(
        s.cmd("MAIL FROM:<a@example.com>")
            .await
            .starts_with("530 5.7.0"),
        "auth required"
    );
    assert!(s.cmd("AUTH CRAM-MD5").await.starts_with("504"));
    assert!(s.cmd("AUTH PLAIN !!!notbase64").await.starts_with("501"));
    let bad = base64::engine::general_purpose::STANDARD.encode("\0u\0pst_live_AAAAAAAAAAAA_bad");
    assert!(
        s.cmd(&format!("AUTH PLAIN {bad}"))
            .await
            .starts_with("535 5.7.8")
    );
    // AUTH LOGIN works too.
    assert!(s.cmd("AUTH LOGIN").await.starts_with("334 VXNlcm5hbWU6"));
    assert!(
        s.cmd(&base64::engine::general_purpose::STANDARD.encode("user"))
            .await
            .starts_with("334 UGFzc3dvcmQ6")
    );
    let r = s
        .cmd(&base64::engine::general_purpose::STANDARD.encode(&app.key))
        .await;
    assert!(r.starts_with("235"), "{r}");
    assert!(
        s.cmd("RCPT TO:<a@example.org>")
            .await
            .starts_with("503 5.5.1"),
        "RCPT before MAIL"
    );
    assert!(
        s.cmd("DATA").await.starts_with("503 5.5.1"),
        "DATA before MAIL"
    );
    assert!(s.cmd("MAIL FROM:<not-an-address>").await.starts_with("553"));
    assert!(
        s.cmd("MAIL FROM:<a@example.com> SIZE=999999")
            .await
            .starts_with("552 5.3.4")
    );
    assert!(s.cmd("MAIL FROM:<a@example.com>").await.starts_with("250"));
    assert!(
        s.cmd("MAIL FROM:<a@example.com>").await.starts_with("503"),
        "nested MAIL"
    );
    assert!(
        s.cmd("DATA").await.starts_with("503 5.5.1"),
        "DATA before RCPT"
    );
    assert!(
        s.cmd("RCPT TO:<bad address@x.org>")
            .await
            .starts_with("501")
    );
    assert!(s.cmd("RCPT TO:<a@example.org>").await.starts_with("250"));
    // Oversized content is read to its end, refused, and the session goes on.
    assert_eq!(code(&s.cmd("DATA").await), "354");
    let body = format!(
        "From: a@example.com\r\nSubject: big\r\n\r\n{}\r\n.",
        "y".repeat(3000)
    );
    assert!(s.cmd(&body).await.starts_with("552 5.3.4"));
    // Not a message at all: refused, nothing queued.
    assert!(s.cmd("MAIL FROM:<a@example.com>").await.starts_with("250"));
    assert!(s.cmd("RCPT TO:<a@example.org>").await.starts_with("250"));
    assert_eq!(code(&s.cmd("DATA").await), "354");
    assert!(s.cmd("no headers here\r\n.").await.starts_with("550 5.6.0"));
    assert!(s.cmd("RSET").await.starts_with("250"));
    assert!(s.cmd("QUIT").await.starts_with("221"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = app.metrics().await;
    assert_eq!(
        common::stored_messages(&metrics),
        0,
        "nothing stored: {metrics}"
    );
}

#[tokio::test]
async fn too_many_errors_closes_and_starttls_discards_pipelined_plaintext() {
    let app = App::spawn(Backend::Sqlite, &[]);
    let mut s = Raw::connect(&app.smtp).await;
    for _ in 0..19 {
        assert!(s.cmd("BOGUS").await.starts_with("500"));
    }
    let last = s.cmd("BOGUS").await;
    assert!(last.starts_with("500"), "{last}");
    assert!(
        s.cmd("NOOP").await.starts_with("421"),
        "closes after too many errors"
    );

    // Commands pipelined after STARTTLS in clear text must never run (CVE-2011-0411).
    let mut s = Raw::connect(&app.smtp).await;
    assert!(s.cmd("EHLO client.test").await.starts_with("250"));
    s.send("STARTTLS\r\nNOOP\r\n").await;
    assert!(s.reply().await.starts_with("220"));
    let mut buf = [0u8; 64];
    // The server now waits for a TLS ClientHello; it must not answer the injected NOOP.
    let r = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::io::AsyncReadExt::read(s.r.get_mut(), &mut buf),
    )
    .await;
    match r {
        Err(_) => {}    // silence: good
        Ok(Ok(0)) => {} // closed: also good
        Ok(Ok(n)) => assert!(
            !String::from_utf8_lossy(&buf[..n]).starts_with("250"),
            "injected command was executed"
        ),
        Ok(Err(_)) => {}
    }
}

#[tokio::test]
async fn a_keys_domain_policy_applies_to_smtp_too() {
    let app = App::spawn(Backend::Sqlite, &[]);
    let out = app.cli(&[
        "--json",
        "keys",
        "create",
        "--tenant",
        "default",
        "--from-domain",
        "example.com",
        "--rcpt-domain",
        "customers.example",
    ]);
    let key: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut s = Raw::connect(&app.smtp).await;
    s.login(key["secret"].as_str().unwrap()).await;
    let r = s.cmd("MAIL FROM:<app@evil.example>").await;
    assert!(
        r.starts_with("550 5.7.1") && r.contains("example.com"),
        "{r}"
    );
    assert!(
        s.cmd("MAIL FROM:<app@example.com>")
            .await
            .starts_with("250")
    );
    let r = s.cmd("RCPT TO:<bob@gmail.example>").await;
    assert!(r.starts_with("550 5.7.1"), "{r}");
    assert!(
        s.cmd("RCPT TO:<bob@customers.example>")
            .await
            .starts_with("250")
    );
    assert!(s.cmd("DATA").await.starts_with("354"));
    let r = s
        .cmd("From: app@example.com\r\nTo: bob@customers.example\r\nSubject: hi\r\n\r\nhello\r\n.")
        .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let allowed = r.rsplit(' ').next().unwrap().to_owned();

    // The From header is bound too: providers with an HTTP API send as its address.
    for (from, want) in [
        ("From: CEO <ceo@bank.example>", "550 5.7.1"),
        ("From: undisclosed-recipients:;", "550 5.7.1"),
        ("From: app@example.com, ceo@bank.example", "550 5.7.1"),
        // Two From fields (RFC 5322 allows one): either could be the one a reader takes.
        (
            "From: ceo@bank.example\r\nFrom: app@example.com",
            "550 5.6.0",
        ),
        ("From: App <app@example.com>", "250 2.0.0"),
    ] {
        s.open_data("bob@customers.example").await;
        let r = s.cmd(&format!("{from}\r\nSubject: x\r\n\r\nhi\r\n.")).await;
        assert!(r.starts_with(want), "{from}: {r}");
        if want.starts_with("250") {
            let id = r.rsplit(' ').next().unwrap().to_owned();
            app.wait_status(&id, "delivered", 10).await;
        }
    }
    app.wait_status(&allowed, "delivered", 10).await;
    assert_eq!(
        files_in(&app.outbox(), "eml").len(),
        2,
        "only the two allowed were queued"
    );
}

#[tokio::test]
async fn mail_data_ends_only_at_crlf_dot_crlf_and_keeps_its_bytes() {
    let app = App::spawn(Backend::Sqlite, &[]);
    let mut s = Raw::connect(&app.smtp).await;
    s.login(&app.key).await;
    s.open_data("a@example.org").await;
    // A bare-LF "." line, and a "." after a bare LF, are data; so is what follows them, which
    // a lax reader would run as a second transaction (SMTP smuggling). Latin-1 "é" is one
    // byte that is not UTF-8.
    let mut data: Vec<u8> = b"From: app@example.com\r\nSubject: smuggle\r\n\r\ncaf".to_vec();
    data.push(0xE9);
    data.extend_from_slice(
        b"\r\nline one\n.\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n\
          From: app@example.com\r\n\r\nsmuggled\n.\r\nstill data\r\n.\r\n",
    );
    s.r.get_mut().write_all(&data).await.unwrap();
    let r = s.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    let id = r.rsplit(' ').next().unwrap().to_owned();
    // The next reply is to this command: nothing smuggled was run.
    assert_eq!(s.cmd("NOOP").await, "250 2.0.0 Ok");
    app.wait_status(&id, "delivered", 10).await;
    assert_eq!(
        files_in(&app.outbox(), "eml").len(),
        1,
        "one message, not two"
    );
    let eml = std::fs::read(app.outbox().join(format!("{id}.eml"))).unwrap();
    let want: &[u8] = b"caf\xE9\r\nline one\r\n.\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.org>\r\nDATA\r\nFrom: app@example.com\r\n\r\nsmuggled\r\n.\r\nstill data\r\n";
    assert!(
        eml.windows(want.len()).any(|w| w == want),
        "8-bit bytes kept, bare LFs stored as CRLF: {}",
        String::from_utf8_lossy(&eml)
    );
}

#[tokio::test]
async fn a_silent_client_is_closed_in_data_and_in_auth() {
    let app = App::spawn(Backend::Sqlite, &[("POSTERN_SMTP_IDLE_TIMEOUT_SECS", "1")]);
    let mut s = Raw::connect(&app.smtp).await;
    s.login(&app.key).await;
    s.open_data("a@example.org").await;
    s.send("From: app@example.com\r\n\r\nhalf a message\r\n")
        .await;
    let r = s.reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r}");
    let mut rest = String::new();
    let n = s.r.read_line(&mut rest).await.unwrap();
    assert_eq!(n, 0, "closed after 421: {rest:?}");
    assert!(
        files_in(&app.outbox(), "eml").is_empty(),
        "nothing accepted"
    );

    let mut s = Raw::connect(&app.smtp).await;
    assert!(s.cmd("EHLO client.test").await.starts_with("250"));
    assert!(s.cmd("AUTH LOGIN").await.starts_with("334"));
    let r = s.reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r}");
}

/// A key revoked while a session it opened stays connected sends no more through it.
#[tokio::test]
async fn a_key_revoked_during_a_session_sends_no_more() {
    let app = App::spawn(Backend::Sqlite, &[]);
    let key = app.new_key("default");
    let mut s = Raw::connect(&app.smtp).await;
    s.login(&key).await;
    s.open_data("a@example.org").await;
    let r = s
        .cmd("From: app@example.com\r\nSubject: 1\r\n\r\nhi\r\n.")
        .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let id = key.split('_').nth(2).unwrap();
    app.cli(&["keys", "revoke", id]);
    // Another process revoked it: this one's cached record lasts at most two seconds.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let r = s.cmd("MAIL FROM:<app@example.com>").await;
    assert!(r.starts_with("530 5.7.0") && r.contains("revoked"), "{r}");
    // The session must authenticate again, and the revoked key is refused.
    let r = s.cmd("RCPT TO:<a@example.org>").await;
    assert!(r.starts_with("503"), "{r}");
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0user\0{key}"));
    let r = s.cmd(&format!("AUTH PLAIN {plain}")).await;
    assert!(r.starts_with("535"), "{r}");
}
