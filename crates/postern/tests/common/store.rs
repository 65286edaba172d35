//! The store on both backends, for the store's contract tests (`store.rs`, `store_counts.rs`).

use postern::domain::{EventKind, MessageStatus, RecipientState};
use postern::store::{Completion, NewEvent, NewMessage, Recipient, Store};

pub struct Db {
    pub store: Store,
    pub url: String,
    /// Kept for the store's lifetime: dropping it drops the database or removes the file.
    pub _pg: Option<super::PgDb>,
    pub _dir: tempfile::TempDir,
}

pub async fn backends() -> Vec<Db> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite_url = format!("sqlite://{}", dir.path().join("t.db").display());
    let sqlite = Store::connect(&sqlite_url).await.expect("SQLite store");
    let pg = super::PgDb::create();
    let postgres = Store::connect(&pg.url).await.expect("PostgreSQL store");
    vec![
        Db {
            store: sqlite,
            url: sqlite_url,
            _pg: None,
            _dir: dir,
        },
        Db {
            store: postgres,
            url: pg.url.clone(),
            _pg: Some(pg),
            _dir: tempfile::tempdir().expect("temp dir"),
        },
    ]
}

pub fn msg(tenant: &str, n: usize, idem: Option<(&str, &str)>) -> NewMessage {
    NewMessage {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.to_owned(),
        key_id: None,
        source: "http",
        mail_from: "a@example.com".into(),
        recipients: vec![format!("r{n}@example.org"), format!("s{n}@example.org")],
        subject: Some(format!("m{n}")),
        message_id_header: format!("<{n}@test>"),
        raw: format!("Subject: m{n}\r\n\r\nbody").into_bytes(),
        created_at: 1_000 + n as i64,
        expires_at: 1_000_000,
        idempotency: idem.map(|(k, h)| (k.to_owned(), h.to_owned())),
        held: None,
        tags: Vec::new(),
    }
}

/// The outcome of a message delivered to every recipient, at 3,000, through "local".
pub fn delivered(id: &str, created_at: i64, recipients: &[Recipient]) -> Completion {
    Completion {
        id: id.to_owned(),
        created_at,
        held_by: None,
        suppress: vec![],
        status: MessageStatus::Delivered,
        recipients: recipients
            .iter()
            .map(|r| Recipient {
                address: r.address.clone(),
                state: RecipientState::Delivered,
            })
            .collect(),
        next_attempt_at: 3_000,
        provider: Some("local".into()),
        last_error: None,
        at: 3_000,
        events: vec![NewEvent {
            message_id: id.to_owned(),
            at: 3_000,
            kind: EventKind::Delivered,
            recipient: None,
            provider: Some("local".into()),
            detail: Some("ok".into()),
        }],
    }
}
