//! Property tests for the parsers that read input from outside: the feedback classifier (MIME,
//! DSN, ARF, SES JSON) on arbitrary bytes and on mutated corpus messages (truncated, nested,
//! huge, corrupted), the SMTP command parser, and the domain parsers (addresses, API keys).
//! None may panic; each must answer with a result.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use postern::domain::{ApiKeySecret, EmailAddress, KeyError, KeyMode};
use postern::feedback::{Reading, classify};
use postern::smtp::{Command, parse};
use proptest::prelude::*;

/// The bounce corpus (`<repo>/../shared/corpora/bounces/eml`, or `BOUNCE_CORPUS`), read once;
/// a few built-in messages when it is not there.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = std::env::var("BOUNCE_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/bounces")
            });
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("eml"))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        let mut out: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
        out.push(BUILT_IN_DSN.as_bytes().to_vec());
        out
    })
}

const BUILT_IN_DSN: &str = "From: MAILER-DAEMON@mx.example.org\r\nTo: app@example.com\r\n\
Subject: Undelivered Mail\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n--b1--\r\n";

/// A reading that came out of the classifier is well formed.
fn check_readings(result: Result<Vec<Reading>, postern::feedback::ClassifyError>) {
    if let Ok(readings) = result {
        assert!(!readings.is_empty(), "Ok with no reading");
        for r in readings {
            assert!(!r.recipient.is_empty(), "a reading without a recipient");
        }
    }
}

/// Ways a message gets mangled on its way back.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    /// A slice repeated many times (huge parts, long lines).
    Repeat(usize, usize, usize),
    /// Wrapped in multipart/report or message/rfc822 layers.
    Nest(usize),
    /// Line endings changed to bare LF or bare CR.
    LineEndings(bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..64)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..512).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), 1usize..80, 1usize..2000).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
        (1usize..40).prop_map(Mutation::Nest),
        any::<bool>().prop_map(Mutation::LineEndings),
    ]
}

fn apply(mut m: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match mutation {
        Mutation::Truncate(i) => m.truncate(at(*i, m.len())),
        Mutation::Flip(i, b) => {
            if !m.is_empty() {
                let i = i % m.len();
                m[i] ^= b | 1;
            }
        }
        Mutation::Insert(i, bytes) => {
            let i = at(*i, m.len());
            m.splice(i..i, bytes.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let i = at(*i, m.len());
            let end = (i + n).min(m.len());
            m.drain(i..end);
        }
        Mutation::Repeat(i, n, k) => {
            let i = at(*i, m.len());
            let end = (i + n).min(m.len());
            let slice = m[i..end].to_vec();
            let repeated: Vec<u8> = slice
                .iter()
                .copied()
                .cycle()
                .take(slice.len() * k)
                .collect();
            m.splice(end..end, repeated);
        }
        Mutation::Nest(depth) => {
            for d in 0..*depth {
                let mut outer = format!(
                    "From: MAILER-DAEMON@example.org\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"n{d}\"\r\n\r\n\
--n{d}\r\nContent-Type: message/rfc822\r\n\r\n"
                )
                .into_bytes();
                outer.extend_from_slice(&m);
                outer.extend_from_slice(format!("\r\n--n{d}--\r\n").as_bytes());
                m = outer;
            }
        }
        Mutation::LineEndings(lf) => {
            let text = String::from_utf8_lossy(&m).replace("\r\n", if *lf { "\n" } else { "\r" });
            m = text.into_bytes();
        }
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn classify_never_panics_on_bytes(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check_readings(classify(&raw));
    }

    #[test]
    fn classify_never_panics_on_header_like_text(
        raw in "([A-Za-z-]{1,20}: [ -~]{0,80}\r\n){0,20}\r\n[ -~\r\n]{0,2000}"
    ) {
        check_readings(classify(raw.as_bytes()));
    }

    #[test]
    fn classify_never_panics_on_mutated_corpus(
        pick in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..5),
    ) {
        let corpus = corpus();
        let mut m = corpus[pick % corpus.len()].clone();
        for mu in &mutations {
            m = apply(m, mu);
        }
        check_readings(classify(&m));
    }

    #[test]
    fn ses_notifications_never_panic(doc in ses_json()) {
        let _ = postern::feedback::ses::classify_notification(&doc);
    }

    #[test]
    fn smtp_parser_never_panics(line in "\\PC{0,300}") {
        let _ = parse(&line);
    }

    #[test]
    fn smtp_parser_never_panics_on_commands(
        verb in "(?i)(ehlo|helo|mail|rcpt|data|rset|noop|quit|vrfy|help|auth|starttls)",
        rest in "[ -~]{0,200}",
    ) {
        let _ = parse(&format!("{verb} {rest}"));
        let _ = parse(&format!("{verb}{rest}"));
    }

    #[test]
    fn smtp_mail_and_rcpt_round_trip(
        local in "[a-z0-9][a-z0-9.+_-]{0,30}",
        domain in "[a-z0-9]{1,20}\\.(com|org|example)",
        size in proptest::option::of(0usize..100_000_000),
        upper in any::<bool>(),
    ) {
        let addr = format!("{local}@{domain}");
        let verb = |v: &str| if upper { v.to_ascii_uppercase() } else { v.to_ascii_lowercase() };
        let size_param = size.map(|s| format!(" SIZE={s}")).unwrap_or_default();
        prop_assert_eq!(
            parse(&format!("{}:<{addr}>{size_param}", verb("MAIL FROM"))),
            Ok(Command::Mail { from: addr.clone(), size })
        );
        prop_assert_eq!(
            parse(&format!("{}:<{addr}>", verb("RCPT TO"))),
            Ok(Command::Rcpt { to: addr })
        );
    }

    #[test]
    fn email_address_never_panics_and_holds_its_invariants(raw in "\\PC{0,300}") {
        if let Ok(a) = EmailAddress::parse(&raw) {
            let s = a.as_str();
            prop_assert!(s.len() <= 254);
            prop_assert!(!s.chars().any(|c| c.is_control() || c.is_whitespace()));
            prop_assert!(s.contains('@') && !a.domain().is_empty());
            prop_assert_eq!(EmailAddress::parse(s).map(|b| b.as_str().to_owned()), Ok(s.to_owned()));
        }
    }

    #[test]
    fn generated_addresses_parse(
        local in "[a-zA-Z0-9][a-zA-Z0-9.+_-]{0,40}[a-zA-Z0-9]",
        domain in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\\.[a-z]{2,8}",
    ) {
        prop_assume!(!local.contains(".."));
        let raw = format!("{local}@{domain}");
        let a = EmailAddress::parse(&raw).expect("a plain address parses");
        prop_assert_eq!(a.domain(), domain.as_str());
    }

    #[test]
    fn api_key_parser_never_panics(raw in "(pst_(live|test)_)?\\PC{0,80}") {
        let _ = ApiKeySecret::parse(&raw);
    }

    #[test]
    fn api_keys_round_trip_and_any_changed_character_is_caught(
        test_mode in any::<bool>(),
        pos in any::<usize>(),
        replacement in "[0-9A-Za-z_]",
    ) {
        let mode = if test_mode { KeyMode::Test } else { KeyMode::Live };
        let key = ApiKeySecret::generate(mode);
        let token = key.expose().to_owned();
        let back = ApiKeySecret::parse(&token).expect("a generated key parses");
        prop_assert_eq!(back.id(), key.id());
        prop_assert_eq!(back.mode(), mode);
        let i = pos % token.len();
        prop_assume!(token.as_bytes()[i] != replacement.as_bytes()[0]);
        let mut changed = token.into_bytes();
        changed[i] = replacement.as_bytes()[0];
        let changed = String::from_utf8(changed).unwrap();
        let err = ApiKeySecret::parse(&changed).err();
        prop_assert!(
            matches!(err, Some(KeyError::Malformed | KeyError::Checksum)),
            "{changed} was accepted"
        );
    }
}

/// SES notifications with arbitrary shapes: right and wrong types in every field.
fn ses_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,40}".prop_map(Value::from),
        Just(Value::from("bob@example.org")),
        Just(Value::from("Bounce")),
    ];
    let value = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("emailAddress".to_owned()),
                    Just("bouncedRecipients".to_owned()),
                    Just("status".to_owned()),
                    Just("diagnosticCode".to_owned()),
                    "[a-zA-Z]{1,12}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    (
        prop_oneof![
            Just("Bounce"),
            Just("Complaint"),
            Just("Delivery"),
            Just("Other")
        ],
        value.clone(),
        value,
    )
        .prop_map(|(kind, body, mail)| {
            json!({"notificationType": kind, "bounce": body.clone(), "complaint": body.clone(),
                   "delivery": body, "mail": mail})
        })
}
