//! The store on both backends, for the store's contract tests (`store.rs`, `store_counts.rs`).

use postern::store::{NewMessage, Store};

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
    }
}
