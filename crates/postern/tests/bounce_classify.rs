//! The bounce classifier, black-box: its score on the bounce corpus (when the corpus is there),
//! the `postern bounce classify` command line, and hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use postern::feedback::{Reading, Reason, classify};

/// The corpus lives next to the repository: `<repo>/../shared/corpora/bounces`, or wherever
/// `BOUNCE_CORPUS` points.
fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("BOUNCE_CORPUS") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = manifest.join("../..");
    repo.join("../shared/corpora/bounces")
}

struct Expected {
    file: String,
    index: usize,
    status: String,
    reason: String,
    hard_bounce: bool,
}

fn expected_rows(dir: &Path) -> Vec<Expected> {
    let tsv = std::fs::read_to_string(dir.join("expected.tsv")).expect("expected.tsv");
    tsv.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let col = |i: usize| c.get(i).copied().unwrap_or("").to_string();
            Expected {
                file: col(0),
                index: col(1).parse().unwrap_or(1),
                status: col(2),
                reason: col(4),
                hard_bounce: col(5) == "true",
            }
        })
        .collect()
}

/// Agreement floors on the corpus, in percent. The product targets are 97 (hard/soft), 92
/// (reason) and 100 (parsed); these floors are what the classifier reaches today, so a change
/// that makes it worse fails here. Raise them as the rules improve.
const MIN_FOUND: f64 = 99.5;
const MIN_HARD_SOFT: f64 = 98.5;
const MIN_REASON: f64 = 96.0;
const MIN_STATUS: f64 = 95.5;
const MIN_PARSED: f64 = 100.0;

#[test]
fn corpus_score_meets_the_floors() {
    let dir = corpus_dir();
    if !dir.join("expected.tsv").exists() {
        eprintln!(
            "bounce corpus not found at {} (set BOUNCE_CORPUS); skipping the corpus score",
            dir.display()
        );
        return;
    }
    let mut readings: HashMap<String, Vec<Reading>> = HashMap::new();
    let mut files = 0usize;
    let mut parsed = 0usize;
    for entry in std::fs::read_dir(dir.join("eml")).expect("eml/") {
        let path = entry.expect("entry").path();
        let raw = std::fs::read(&path).expect("read eml");
        files += 1;
        if let Ok(r) = classify(&raw) {
            parsed += 1;
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            readings.insert(name, r);
        }
    }
    let rows = expected_rows(&dir);
    let (mut found, mut hard, mut reason, mut status) = (0usize, 0usize, 0usize, 0usize);
    for row in &rows {
        let Some(r) = readings
            .get(&row.file)
            .and_then(|v| v.get(row.index.saturating_sub(1)))
        else {
            continue;
        };
        found += 1;
        hard += usize::from(r.hard_bounce == row.hard_bounce);
        reason += usize::from(r.reason.as_str() == row.reason);
        status += usize::from(r.status.as_deref().unwrap_or("") == row.status);
    }
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    let n = rows.len();
    let score = [
        ("recipient found", pct(found, n), MIN_FOUND),
        ("hard/soft", pct(hard, n), MIN_HARD_SOFT),
        ("reason", pct(reason, n), MIN_REASON),
        ("status", pct(status, n), MIN_STATUS),
        ("parsed", pct(parsed, files), MIN_PARSED),
    ];
    for (name, got, floor) in score {
        eprintln!("{name:16} {got:6.2}% (floor {floor}%)");
    }
    for (name, got, floor) in score {
        assert!(got >= floor, "{name}: {got:.2}% is below {floor}%");
    }
}

const DSN: &str = "From: MAILER-DAEMON@mx.example.org\r\n\
To: app@example.com\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
<bob@example.net>: host mx.example.net said: 552 5.2.2 Mailbox full\r\n\
--b\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.org\r\n\
\r\n\
Final-Recipient: rfc822; bob@example.net\r\n\
Action: failed\r\n\
Status: 5.2.2\r\n\
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n\
--b--\r\n";

const QMAIL: &str = "From: MAILER-DAEMON@mx.example.org\n\
To: app@example.com\n\
Subject: failure notice\n\
\n\
Hi. This is the qmail-send program at mx.example.org.\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\n\
\n\
<gone@example.net>:\n\
Sorry, no mailbox here by that name. (#5.1.1)\n\
\n\
--- Below this line is a copy of the message.\n\
\n\
Message-ID: <orig-1@example.com>\n\
X-Postern-Message: 0190aaaa\n\
Subject: hello\n";

fn write(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn cli_prints_one_json_line_per_recipient_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = write(dir.path(), "dsn.eml", DSN.as_bytes());
    let empty = write(dir.path(), "empty.eml", b"");
    let binary = write(
        dir.path(),
        "binary.eml",
        &[0u8, 159, 146, 150, 1, 2, 3, 0, 0, 7],
    );
    let qmail = write(dir.path(), "qmail.eml", QMAIL.as_bytes());
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["bounce", "classify"])
        .args([&dsn, &empty, &binary, &qmail])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "bad files must make the exit non-zero"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("empty.eml"), "{stderr}");
    assert!(stderr.contains("binary.eml"), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let first = &lines[0];
    assert_eq!(first["file"], dsn.display().to_string());
    assert_eq!(first["recipient"], "bob@example.net");
    assert_eq!(first["status"], "5.2.2");
    assert_eq!(first["reply_code"], "552");
    assert_eq!(first["reason"], "mailboxfull");
    assert_eq!(first["hard_bounce"], false);
    assert_eq!(first["feedback_type"], serde_json::Value::Null);
    assert_eq!(first["action"], "failed");
    let second = &lines[1];
    assert_eq!(second["recipient"], "gone@example.net");
    assert_eq!(second["reason"], "userunknown");
    assert_eq!(second["hard_bounce"], true);
    assert_eq!(second["status"], "5.1.1");
}

#[test]
fn cli_succeeds_when_every_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = write(dir.path(), "dsn.eml", DSN.as_bytes());
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["bounce", "classify"])
        .arg(&dsn)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
}

#[test]
fn returned_message_ids_are_kept() {
    let readings = classify(QMAIL.as_bytes()).unwrap();
    assert_eq!(readings.len(), 1);
    assert_eq!(
        readings[0].original_message_id.as_deref(),
        Some("orig-1@example.com")
    );
    assert_eq!(
        readings[0].postern_headers,
        vec![("x-postern-message".to_string(), "0190aaaa".to_string())]
    );
}

#[test]
fn complaints_and_auto_replies() {
    let arf = "From: feedback@isp.example\r\nTo: abuse@example.com\r\nSubject: Abuse report\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"x\"\r\n\r\n\
--x\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report\r\n\
--x\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\
User-Agent: isp/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: carol@isp.example\r\n\
--x\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <c1@example.com>\r\n--x--\r\n";
    let r = classify(arf.as_bytes()).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].recipient, "carol@isp.example");
    assert_eq!(r[0].reason, Reason::Feedback);
    assert_eq!(r[0].feedback_type.as_deref(), Some("abuse"));
    assert!(!r[0].hard_bounce);

    let ooo = "From: Dave <dave@example.net>\r\nTo: app@example.com\r\n\
Subject: Automatic reply: your order\r\nAuto-Submitted: auto-replied\r\n\r\n\
I am out of the office until Monday.\r\n";
    let r = classify(ooo.as_bytes()).unwrap();
    assert_eq!(r[0].recipient, "dave@example.net");
    assert_eq!(r[0].reason, Reason::Vacation);

    let ticket = "From: support@vendor.example\r\nTo: app@example.com\r\n\
Subject: [Ticket #4521] Ticket received\r\n\r\nWe have received your request.\r\n";
    let r = classify(ticket.as_bytes()).unwrap();
    assert_eq!(r[0].reason, Reason::Vacation);
}

/// Hostile input: nothing here may panic, whatever it returns.
#[test]
fn hostile_input_never_panics() {
    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\n\r\n".to_vec(),
        b"From:\r\n\r\n".to_vec(),
        b"Subject: no body".to_vec(),
        b"Content-Type: multipart/report; boundary=\"\"\r\n\r\n--\r\n--\r\n".to_vec(),
        (0..=255u8).cycle().take(100_000).collect(),
        "From: MAILER-DAEMON@x.example\r\n\r\n<\u{3000}@\u{3000}>:\r\n550 5.1.1 \u{1F4A5}@é.example"
            .as_bytes()
            .to_vec(),
    ];
    // Deeply nested multiparts.
    let mut nested = String::from("From: MAILER-DAEMON@x.example\r\nSubject: deep\r\n");
    for i in 0..2_000 {
        nested.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    nested.push_str("Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nStatus: 5.1.1\r\n");
    cases.push(nested.into_bytes());
    // Nested message/rfc822 parts.
    let mut rfc822 = String::new();
    for _ in 0..500 {
        rfc822 = format!(
            "From: MAILER-DAEMON@x.example\r\nContent-Type: message/rfc822\r\n\r\n{rfc822}"
        );
    }
    cases.push(rfc822.into_bytes());
    // A huge report: many recipients, long lines.
    let mut huge = String::from(
        "From: MAILER-DAEMON@x.example\r\nSubject: failure notice\r\n\r\nHi. This is the qmail-send program.\r\n",
    );
    for i in 0..20_000 {
        huge.push_str(&format!(
            "<user{i}@example.net>:\r\n550 {} 5.1.1\r\n",
            "x".repeat(i % 300)
        ));
    }
    cases.push(huge.into_bytes());
    // Delivery-status fields without values, codes cut short, lone continuation lines.
    cases.push(
        b"From: a@b.example\r\nContent-Type: multipart/report; boundary=z\r\n\r\n--z\r\n\
Content-Type: message/delivery-status\r\n\r\n Final-Recipient\r\nStatus:\r\n\
Diagnostic-Code: ;\r\nFinal-Recipient: ;;;@\r\nStatus: 5.\r\nDiagnostic-Code: smtp; 55\r\n--z--"
            .to_vec(),
    );
    for raw in cases {
        let _ = classify(&raw);
    }
}
