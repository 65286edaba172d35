//! TLS on the wire: HTTPS for the HTTP API from certificate files, STARTTLS for SMTP, both
//! reloaded on SIGHUP without a restart (a client sees the new certificate's serial), a
//! broken pair on reload keeps the one in use; plain HTTP is refused on a non-loopback address.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::TestCa;
use common::{App, BIN, Backend, run_blocking};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Writes `name-cert.pem` and `name-key.pem` (a certificate for 127.0.0.1 with `serial`);
/// returns their paths and the certificate's DER serial.
fn write_pair(dir: &Path, ca: &TestCa, name: &str, serial: u64) -> (PathBuf, PathBuf, Vec<u8>) {
    let (cert, key) = ca.issue(&["127.0.0.1"], serial, None);
    let (cp, kp) = (
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&kp, key).unwrap();
    std::fs::write(&cp, &cert).unwrap();
    let der = rustls_pemfile::certs(&mut cert.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    (cp, kp, serial_of(der.as_ref()))
}

fn serial_of(der: &[u8]) -> Vec<u8> {
    let der = CertificateDer::from(der);
    webpki::EndEntityCert::try_from(&der)
        .unwrap()
        .serial()
        .to_vec()
}

/// GET over HTTPS trusting only the test CA, on a fresh connection: (status, server serial).
async fn https_get(url: &str, ca_pem: &str) -> (u16, Vec<u8>) {
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = client.get(url).send().await.unwrap();
    let info = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .cloned()
        .unwrap();
    (
        r.status().as_u16(),
        serial_of(info.peer_certificate().unwrap()),
    )
}

async fn reply(s: &mut BufReader<TcpStream>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        s.read_line(&mut line).await.unwrap();
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return all;
        }
    }
}

/// EHLO, STARTTLS, handshake trusting only the test CA: the server certificate's serial.
async fn starttls_serial(addr: &str, ca_pem: &str) -> Vec<u8> {
    let mut s = BufReader::new(TcpStream::connect(addr).await.unwrap());
    reply(&mut s).await;
    s.get_mut()
        .write_all(b"EHLO client.example\r\n")
        .await
        .unwrap();
    assert!(reply(&mut s).await.contains("STARTTLS"));
    s.get_mut().write_all(b"STARTTLS\r\n").await.unwrap();
    let r = reply(&mut s).await;
    assert!(r.starts_with("220"), "{r}");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), s.into_inner())
        .await
        .unwrap();
    let (_, conn) = tls.get_ref();
    serial_of(conn.peer_certificates().unwrap()[0].as_ref())
}

/// Polls `probe` until it returns `want` (30 s at most).
async fn eventually<F, Fut>(want: &[u8], what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<u8>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = probe().await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: serial {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn https_and_starttls_reload_their_certificates_on_sighup() {
    run_blocking(async {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let ca_pem = ca.pem();
        let (hc, hk, h1) = write_pair(dir.path(), &ca, "http", 100);
        let (sc, sk, s1) = write_pair(dir.path(), &ca, "smtp", 200);
        let mut app = App::spawn(
            Backend::Sqlite,
            &[
                ("POSTERN_HTTP_TLS_CERT", hc.to_str().unwrap()),
                ("POSTERN_HTTP_TLS_KEY", hk.to_str().unwrap()),
            ],
        );
        // `init` writes its own certificate where [smtp] tls_cert points: name ours for serve
        // only.
        app.terminate();
        app.env.extend([
            (
                "POSTERN_SMTP_TLS_CERT".to_owned(),
                sc.to_str().unwrap().to_owned(),
            ),
            (
                "POSTERN_SMTP_TLS_KEY".to_owned(),
                sk.to_str().unwrap().to_owned(),
            ),
        ]);
        app.start();
        let https = app.url("/healthz").replacen("http://", "https://", 1);
        let smtp = app.smtp.clone();
        assert_eq!(https_get(&https, &ca_pem).await, (200, h1.clone()));
        assert_eq!(starttls_serial(&smtp, &ca_pem).await, s1);
        // The API does not answer plain HTTP on the TLS port.
        let plain = reqwest::Client::new().get(app.url("/healthz")).send().await;
        assert!(plain.is_err() || !plain.unwrap().status().is_success());

        // New certificates in the same files, then SIGHUP: new connections see them.
        let (_, _, h2) = write_pair(dir.path(), &ca, "http", 101);
        let (_, _, s2) = write_pair(dir.path(), &ca, "smtp", 201);
        assert_ne!((&h1, &s1), (&h2, &s2));
        app.signal("HUP");
        eventually(&h2, "HTTPS after SIGHUP", || async {
            https_get(&https, &ca_pem).await.1
        })
        .await;
        eventually(&s2, "STARTTLS after SIGHUP", || {
            starttls_serial(&smtp, &ca_pem)
        })
        .await;

        // A broken pair on reload leaves the certificate in use; the server keeps serving.
        std::fs::write(&hc, "not a certificate").unwrap();
        app.signal("HUP");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(https_get(&https, &ca_pem).await, (200, h2));
        assert_eq!(starttls_serial(&smtp, &ca_pem).await, s2);
    });
}

/// `postern serve` with `env` and no config file, in a fresh directory: (success, stderr).
fn serve_refusal(env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("postern.toml"), "data_dir = \"data\"\n").unwrap();
    let mut c = std::process::Command::new(BIN);
    c.arg("--config")
        .arg(dir.path().join("postern.toml"))
        .arg("serve")
        .env("POSTERN_SMTP_LISTEN", "127.0.0.1:0")
        .env("POSTERN_LOG", "warn")
        .envs(env.iter().copied());
    let mut child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("postern serve did not refuse within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plain_http_on_a_non_loopback_address_is_refused() {
    // 0.0.0.0 is only named in the config: the check runs before anything listens.
    let (ok, err) = serve_refusal(&[("POSTERN_HTTP_LISTEN", "0.0.0.0:0")]);
    assert!(!ok);
    assert!(
        err.contains("[http] listen")
            && err.contains("allow_plaintext")
            && err.contains("tls_cert"),
        "{err}"
    );
    let (ok, err) = serve_refusal(&[
        ("POSTERN_HTTP_LISTEN", "127.0.0.1:0"),
        ("POSTERN_HTTP_TLS_CERT", "/nonexistent/cert.pem"),
    ]);
    assert!(!ok);
    assert!(
        err.contains("http.tls_cert") && err.contains("tls_key"),
        "{err}"
    );
    let (ok, err) = serve_refusal(&[
        ("POSTERN_HTTP_LISTEN", "127.0.0.1:0"),
        ("POSTERN_HTTP_TLS_CERT", "/nonexistent/cert.pem"),
        ("POSTERN_HTTP_TLS_KEY", "/nonexistent/key.pem"),
    ]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}
