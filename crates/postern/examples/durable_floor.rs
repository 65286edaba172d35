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
//! queue issue 3 asks for.
//!
//! Usage: `durable_floor [--sqlite] [ADDR] [FILE]`: ADDR as for `bare_axum` (default
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

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let sqlite = args.next_if(|a| a == "--sqlite").is_some();
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
        let db = open_sqlite(&path).map_err(std::io::Error::other)?;
        thread.spawn(move || sqlite_writer(db, rx))?;
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
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
        "durable_floor listening on {}, appending to {}",
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

fn open_sqlite(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let db = rusqlite::Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    db.execute_batch("CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")?;
    Ok(db)
}

/// One transaction per batch; with `synchronous = FULL` its commit flushes the log.
fn sqlite_writer(mut db: rusqlite::Connection, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::new();
    while rx.blocking_recv_many(&mut jobs, 1024) > 0 {
        let stored = db.transaction().and_then(|tx| {
            {
                let mut insert = tx.prepare_cached("INSERT INTO bodies (body) VALUES (?1)")?;
                for (body, _) in &jobs {
                    insert.execute([&body[..]])?;
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
