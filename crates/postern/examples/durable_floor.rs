//! A second reference for bench/accept.sh: the cheapest durable accept, to tell what any design
//! could reach on the machine from what Postern's design reaches.
//!
//! Like `bare_axum` it parses the JSON body and answers 202 `{"id":"x","status":"queued"}`, but
//! only once the body is on the disk: each request hands its body to one writer thread, which
//! appends every body that arrived while the last flush ran to one file with a single `write`,
//! `fdatasync`s it, and answers them all (group commit, the least a durable accept must do). No
//! authentication, validation, MIME, index, checkpoint or database.
//!
//! With `--sqlite` the batch goes into an SQLite database instead (WAL, `synchronous = FULL`, one
//! transaction per batch, each body one row of a table with nothing but an integer key and the
//! body; SQLite's own checkpoints): the least a durable accept on SQLite must do, which is the
//! queue issue 3 asks for. With `--sqlite-messages` each body is stored the way Postern stores a
//! message: a row of Postern's `messages` table (text id, every column, the body as its MIME
//! text) with the same indexes, in a database with Postern's page size; still no
//! authentication, checks, MIME building, guard, counts or events. The three modes split the gap
//! between the bare handler and Postern: the disk, SQLite, the message table, and the rest.
//!
//! Usage: `durable_floor [--sqlite | --sqlite-messages] [ADDR] [FILE]`: ADDR as for `bare_axum` (default
//! 127.0.0.1:8098), FILE the log or database to write (default `durable_floor.log` or
//! `durable_floor.db` in the system's temporary directory; it is removed at start).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use tokio::sync::{mpsc, oneshot};

type Job = (Bytes, oneshot::Sender<()>);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    File,
    Sqlite,
    Messages,
}

/// Postern's `messages` table and its indexes on SQLite, as its migrations leave them
/// (`store/schema.sql` and the migrations that add columns and indexes).
const MESSAGES: &str = "
CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE);
INSERT INTO tenants VALUES ('0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', 'default');
CREATE TABLE messages (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants (id), key_id TEXT, source TEXT NOT NULL,
    mail_from TEXT NOT NULL, recipients TEXT NOT NULL, subject TEXT,
    message_id_header TEXT NOT NULL, raw BLOB NOT NULL, size BIGINT NOT NULL,
    status TEXT NOT NULL, attempts BIGINT NOT NULL, created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, next_attempt_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    claimed_by TEXT, lease_until BIGINT, in_doubt BIGINT NOT NULL, provider TEXT,
    last_error TEXT, held_by TEXT, tags TEXT
);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX messages_sending ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_by_time ON messages (created_at, tenant_id);
CREATE INDEX messages_by_header ON messages (message_id_header);
CREATE INDEX messages_by_key ON messages (key_id, created_at);
CREATE INDEX messages_held ON messages (held_by, created_at) WHERE status = 'held';
CREATE INDEX messages_deferred_by_provider ON messages (provider) WHERE status = 'deferred';
";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let mode = args
        .next_if(|a| a.starts_with("--"))
        .map_or(Ok(Mode::File), |a| match a.as_str() {
            "--sqlite" => Ok(Mode::Sqlite),
            "--sqlite-messages" => Ok(Mode::Messages),
            _ => Err(std::io::Error::other(format!("unknown option {a}"))),
        })?;
    let sqlite = mode != Mode::File;
    let arg = args.next().unwrap_or_else(|| "127.0.0.1:8098".into());
    let addr = if arg.contains(':') {
        arg
    } else {
        format!("127.0.0.1:{arg}")
    };
    let path = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(if sqlite {
                "durable_floor.db"
            } else {
                "durable_floor.log"
            })
        });
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let (tx, rx) = mpsc::channel::<Job>(4096);
    let thread = std::thread::Builder::new().name("floor-writer".into());
    if sqlite {
        let db = open_sqlite(&path, mode).map_err(std::io::Error::other)?;
        thread.spawn(move || sqlite_writer(db, mode, rx))?;
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        // The new file's directory entry is durable too before the first answer.
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        std::fs::File::open(dir.unwrap_or(std::path::Path::new(".")))?.sync_all()?;
        thread.spawn(move || writer(file, rx))?;
    }
    let app = axum::Router::new()
        .route(
            "/v1/messages",
            post(
                |State(tx): State<mpsc::Sender<Job>>, body: Bytes| async move {
                    if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
                        return Err(StatusCode::BAD_REQUEST);
                    }
                    let (done, wait) = oneshot::channel();
                    tx.send((body, done))
                        .await
                        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
                    wait.await.map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
                    Ok((
                        StatusCode::ACCEPTED,
                        Json(serde_json::json!({"id": "x", "status": "queued"})),
                    ))
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "durable_floor listening on {}, storing to {}",
        listener.local_addr()?,
        path.display()
    );
    axum::serve(listener, app).await
}

/// Appends each batch with one write and one `fdatasync`, then answers it. A failed write or
/// flush ends the thread, so every request still waiting gets 503 instead of a false 202.
fn writer(mut file: std::fs::File, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::new();
    let mut buf = Vec::new();
    while rx.blocking_recv_many(&mut jobs, 1024) > 0 {
        buf.clear();
        for (body, _) in &jobs {
            buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
            buf.extend_from_slice(body);
        }
        if let Err(e) = file.write_all(&buf).and_then(|()| file.sync_data()) {
            eprintln!("durable_floor: cannot append: {e}");
            return;
        }
        for (_, done) in jobs.drain(..) {
            let _ = done.send(());
        }
    }
}

fn open_sqlite(path: &std::path::Path, mode: Mode) -> rusqlite::Result<rusqlite::Connection> {
    let db = rusqlite::Connection::open(path)?;
    if mode == Mode::Messages {
        db.pragma_update(None, "page_size", 2048)?;
    }
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    // Postern's connection settings; the checkpoints stay SQLite's own (every 1,000 pages,
    // after a commit, on the writer thread), which Postern moves to a background task.
    db.pragma_update(None, "foreign_keys", "ON")?;
    db.pragma_update(None, "temp_store", "memory")?;
    db.pragma_update(None, "cache_size", -65536)?;
    db.execute_batch(if mode == Mode::Messages {
        MESSAGES
    } else {
        "CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"
    })?;
    Ok(db)
}

/// A header block of the size Postern writes above a composed body (From, To, Subject,
/// Message-ID, Date, MIME-Version, Content-Type, Content-Transfer-Encoding), so that a row's
/// text is about as long as Postern's for the same request.
const HEADERS: &[u8] = b"From: app@example.com\r\nSubject: Benchmark\r\n\
Message-ID: <01a251592fb97c4eb89f46320ba29362@postern.example>\r\nTo: bob@example.org\r\n\
MIME-Version: 1.0\r\nDate: Mon, 07 Dec 2026 16:32:09 +0000\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n";

/// One `messages` row for a body, with values shaped like Postern's: ids are UUID v7 text,
/// the Message-ID grows with time like Postern's, the body under a header block stands in for
/// the MIME text.
fn insert_message(tx: &rusqlite::Transaction<'_>, body: &[u8]) -> rusqlite::Result<usize> {
    const TENANT: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    const KEY: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";
    let id = uuid::Uuid::now_v7();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
    )
    .unwrap_or(i64::MAX);
    let raw = [HEADERS, body].concat();
    let size = i64::try_from(raw.len()).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "INSERT INTO messages (id, tenant_id, key_id, source, mail_from, recipients, subject,
           message_id_header, raw, size, status, attempts, created_at, updated_at,
           next_attempt_at, expires_at, in_doubt, held_by, tags)
         VALUES (?1, ?2, ?3, 'http', 'app@example.com', '[\"bob@example.org\"]', 'Benchmark',
           ?4, ?5, ?6, 'queued', 0, ?7, ?7, ?7, ?8, 0, NULL, NULL)",
    )?
    .execute(rusqlite::params![
        id.to_string(),
        TENANT,
        KEY,
        format!("<{}@postern.example>", id.simple()),
        raw,
        size,
        now,
        now + 86_400_000,
    ])
}

/// One transaction per batch; with `synchronous = FULL` its commit flushes the log.
fn sqlite_writer(mut db: rusqlite::Connection, mode: Mode, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::new();
    while rx.blocking_recv_many(&mut jobs, 1024) > 0 {
        let stored = db.transaction().and_then(|tx| {
            for (body, _) in &jobs {
                if mode == Mode::Messages {
                    insert_message(&tx, body)?;
                } else {
                    tx.prepare_cached("INSERT INTO bodies (body) VALUES (?1)")?
                        .execute([&body[..]])?;
                }
            }
            tx.commit()
        });
        if let Err(e) = stored {
            eprintln!("durable_floor: cannot store: {e}");
            return;
        }
        for (_, done) in jobs.drain(..) {
            let _ = done.send(());
        }
    }
}
