//! The store on an SQLite file: its page size, the accepts' log flushes, and the checkpoints
//! that let the log start over.
#![allow(clippy::unwrap_used)]

mod common;

use postern::store::{Checkpointed, Inserted, NewMessage, Store};

use common::store::msg;

/// A store on an SQLite file at `path`.
async fn sqlite_file(path: &std::path::Path) -> Store {
    Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

/// The page size SQLite keeps in a database file's header (bytes 16-17, big-endian).
fn page_size_of(db: &std::path::Path) -> u32 {
    let header = std::fs::read(db).unwrap();
    u32::from(u16::from_be_bytes([header[16], header[17]]))
}

/// A new SQLite database is made with 2 KiB pages (fewer bytes written per commit); one made
/// before, with SQLite's default 4 KiB, keeps its pages and goes on accepting.
#[tokio::test]
async fn new_sqlite_databases_use_2_kib_pages_and_older_ones_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("new.db");
    let s = sqlite_file(&fresh).await;
    let t = s.create_tenant("acme", 1).await.unwrap();
    s.insert_messages(&[msg(&t.id, 1, None)]).await.unwrap();
    s.close().await;
    assert_eq!(page_size_of(&fresh), 2048);

    let old = dir.path().join("old.db");
    {
        use sqlx::Connection;
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&old)
            .create_if_missing(true)
            .page_size(4096)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::query("CREATE TABLE before_postern (x INTEGER)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    assert_eq!(page_size_of(&old), 4096);
    let s = sqlite_file(&old).await;
    let t = s.create_tenant("acme", 1).await.unwrap();
    let m = msg(&t.id, 2, None);
    s.insert_messages(std::slice::from_ref(&m)).await.unwrap();
    assert_eq!(s.message(&t.id, &m.id).await.unwrap().status, "queued");
    s.close().await;
    assert_eq!(page_size_of(&old), 4096);
}

/// Accepts on SQLite commit first and flush the write-ahead log after; the flush goes to the
/// log SQLite really writes (here behind a symlinked directory), and a log that is not there
/// is an error, never taken as flushed.
#[tokio::test]
async fn deferred_accepts_flush_the_log_sqlite_writes() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let s = sqlite_file(&link.join("t.db")).await;
    let t = s.create_tenant("acme", 1).await.unwrap();
    let m = msg(&t.id, 1, None);
    let (back, answers, pending) = s.insert_messages_deferred(vec![m.clone()]).await.unwrap();
    assert!(matches!(pending, postern::store::Pending::WalSync(..)));
    assert_eq!(back[0].id, m.id, "the batch comes back as it went");
    assert!(matches!(&answers[0], Inserted::New { id, .. } if *id == m.id));
    assert!(pending.wait().await.unwrap(), "nothing had flushed it yet");
    assert_eq!(s.message(&t.id, &m.id).await.unwrap().status, "queued");
    assert!(real.join("t.db-wal").exists());

    // Flushes are shared: waiting for the later of two commits flushes the log once, and that
    // flush covers the earlier one too. A commit made after it needs a flush of its own.
    let first = commit_one(&s, &t.id, 11).await;
    let second = commit_one(&s, &t.id, 12).await;
    assert!(
        second.wait().await.unwrap(),
        "the later commit's wait flushes"
    );
    assert!(!first.wait().await.unwrap(), "covered by that flush");
    let third = commit_one(&s, &t.id, 13).await;
    assert!(
        third.wait().await.unwrap(),
        "made after the flush, so not covered by it"
    );

    // The log gone from under the store: the flush must fail, not report success.
    std::fs::rename(real.join("t.db-wal"), real.join("moved")).unwrap();
    let pending = commit_one(&s, &t.id, 2).await;
    let err = pending.wait().await.unwrap_err();
    assert!(err.to_string().contains("write-ahead log"), "{err}");
    // And it stays failed: with the log back in place, a later commit is still not taken as
    // flushed (a second fdatasync after a write-back error can succeed without the data).
    std::fs::rename(real.join("moved"), real.join("t.db-wal")).unwrap();
    let pending = commit_one(&s, &t.id, 4).await;
    let err = pending.wait().await.unwrap_err();
    assert!(err.to_string().contains("an earlier flush"), "{err}");

    // PostgreSQL's commit is its flush.
    let pg = common::PgDb::create();
    let p = Store::connect(&pg.url).await.unwrap();
    let t = p.create_tenant("acme", 1).await.unwrap();
    let pending = commit_one(&p, &t.id, 3).await;
    assert!(matches!(pending, postern::store::Pending::Durable));
    assert!(!pending.wait().await.unwrap(), "nothing left to flush");
}

/// Commits one message without waiting for the disk: what is left to make it durable.
async fn commit_one(s: &Store, tenant: &str, n: usize) -> postern::store::Pending {
    let (_, _, pending) = s
        .insert_messages_deferred(vec![msg(tenant, n, None)])
        .await
        .unwrap();
    pending
}

/// The log SQLite reads as mxFrame: frames written since it last started over.
async fn log_frames(path: &std::path::Path) -> i64 {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let (_, log, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut c)
        .await
        .unwrap();
    log
}

/// Under a steady stream of commits, a checkpoint still lets the log start over: without
/// that, SQLite's log grows for as long as the writes go on (every frame ever written stays
/// in it) and each commit appends to new blocks.
#[tokio::test]
async fn checkpoint_restarts_the_log_while_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let s = sqlite_file(&path).await;
    let t = s.create_tenant("acme", 1).await.unwrap();
    let batch = |from: usize| -> Vec<NewMessage> {
        (from..from + 10)
            .map(|n| {
                let mut m = msg(&t.id, n, None);
                m.raw = vec![b'x'; 2048];
                m
            })
            .collect()
    };
    // The frames one batch writes, on a log that has just started over.
    s.checkpoint(true).await.unwrap();
    s.insert_messages(&batch(0)).await.unwrap();
    let per_batch = log_frames(&path).await;
    assert!(per_batch > 0);

    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s, written, stop) = (s.clone(), written.clone(), stop.clone());
        let batches: Vec<Vec<NewMessage>> = (1..5_000).map(|i| batch(i * 10)).collect();
        tokio::spawn(async move {
            for b in batches {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                s.insert_messages(&b).await.unwrap();
                written.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    let load = std::sync::atomic::Ordering::SeqCst;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for round in 1..=4 {
        while written.load(load) < round * 60 {
            assert!(
                !writer.is_finished() && std::time::Instant::now() < deadline,
                "the writer stopped after {} batches",
                written.load(load)
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert_eq!(
            s.checkpoint(true).await.unwrap().left,
            0,
            "no reader holds frames back"
        );
    }
    // What the log holds after a checkpoint, writes going on: the batches committed since it
    // returned (and what it could not see), not the hundreds before it. The commit after a
    // checkpoint starts the log over only if no connection's read mark is still on it; on a
    // loaded machine that can miss one checkpoint, so a few are allowed.
    let mut missed = Vec::new();
    for _ in 0..5 {
        let before = written.load(load);
        assert_eq!(s.checkpoint(true).await.unwrap().left, 0);
        while written.load(load) < before + 3 {
            assert!(
                !writer.is_finished() && std::time::Instant::now() < deadline,
                "the writer stopped"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let frames = log_frames(&path).await;
        let since = (written.load(load) - before + 2) as i64;
        if frames <= since * per_batch * 2 {
            missed.clear();
            break;
        }
        missed.push(format!(
            "{frames} frames in the log, {per_batch} per batch, {since} batches since the checkpoint"
        ));
    }
    stop.store(true, load);
    writer.await.unwrap();
    assert!(
        written.load(load) >= 240,
        "the writes went on during the checkpoints"
    );
    assert!(missed.is_empty(), "the log never started over: {missed:?}");

    // PostgreSQL has no such log to copy.
    let pg = common::PgDb::create();
    let p = Store::connect(&pg.url).await.unwrap();
    assert_eq!(p.checkpoint(true).await.unwrap(), Checkpointed::default());
}
