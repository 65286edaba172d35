//! SQLite: the embedded default. WAL journal with `synchronous = FULL`, so a commit has reached
//! the disk when it returns; accepts, grouped into few commits upstream, commit on a connection
//! of their own and flush the log after the write lock is released ([`AcceptConn`]).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{CLAIM_COLUMNS, Inserted, NewMessage, Result, StoreError};

pub(super) async fn connect(url: &str) -> Result<SqlitePool> {
    let opts = options(url)?;
    if let Some(path) = file_path(url)
        && let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
    }
    // No ping before handing out a connection (`test_before_acquire`): a connection to a
    // local file has no peer to lose, and the ping is one more round trip to the
    // connection's worker thread on every query.
    Ok(SqlitePoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect_with(opts)
        .await?)
}

/// The accepts' own connection to a database file, and its write-ahead log.
///
/// It commits with `synchronous = NORMAL` (in WAL mode: no flush at commit; the log is still
/// synced around checkpoints) and the acceptor flushes the log itself ([`super::Pending::wait`])
/// before it answers: FULL's durability, with the flush outside the write lock.
///
/// rusqlite rather than sqlx here: sqlx runs each connection's statements on a thread of its
/// own, and every statement of a group commit (begin, the idempotency claims, the suppression
/// reads, the inserts, commit) is a round trip to that thread. At 12,000 accepts/s those
/// thread switches were about a fifth of the server's CPU. Here a batch runs start to finish
/// on the blocking thread that calls [`AcceptConn::insert`]. Both use the same libsqlite3-sys,
/// so the process has one SQLite library and its locks see each other.
pub struct AcceptConn {
    /// `None` once the store is closed. Never closed before that: SQLite removes the log
    /// when its last connection closes, and [`Wal`]'s descriptor must keep naming the live one.
    conn: Mutex<Option<rusqlite::Connection>>,
    wal: Arc<Wal>,
    /// The database file, for [`AcceptConn::sync_database`].
    database: std::fs::File,
}

impl std::fmt::Debug for AcceptConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptConn")
            .field("wal", &self.wal)
            .finish()
    }
}

/// Opens [`AcceptConn`] on the file `pool` has open (the path SQLite itself resolved:
/// percent-decoding, symlinks, the working directory), after the migrations ran. `None` for an
/// in-memory database.
pub(super) async fn connect_accept(
    pool: &SqlitePool,
    url: &str,
) -> Result<Option<Arc<AcceptConn>>> {
    if file_path(url).is_none() {
        return Ok(None);
    }
    let db: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(pool)
            .await?;
    Ok(Some(Arc::new(blocking(move || open_accept(&db)).await?)))
}

fn open_accept(db: &str) -> Result<AcceptConn> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    for (k, v) in PRAGMAS {
        conn.pragma_update(None, k, v)?;
    }
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "{db}: journal mode is {mode}, not wal"
        )));
    }
    conn.set_prepared_statement_cache_capacity(16);
    // A read transaction in WAL mode opens (creates) the log.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    let wal = Wal::open(PathBuf::from(format!("{db}-wal"))).map_err(sqlx::Error::Io)?;
    let database = std::fs::OpenOptions::new()
        .write(true)
        .open(db)
        .map_err(sqlx::Error::Io)?;
    Ok(AcceptConn {
        conn: Mutex::new(Some(conn)),
        wal: Arc::new(wal),
        database,
    })
}

impl AcceptConn {
    pub(super) fn wal(&self) -> Arc<Wal> {
        self.wal.clone()
    }

    /// Flushes the database file: what checkpoints copied into it reaches the disk before the
    /// checkpoint under the write lock, whose own flush then has little left to write.
    pub(super) async fn sync_database(self: &Arc<Self>) -> Result<()> {
        let this = self.clone();
        blocking(move || Ok(this.database.sync_data().map_err(sqlx::Error::Io)?)).await
    }

    pub(super) fn close(&self) {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// One write transaction on this connection (`BEGIN IMMEDIATE` … `COMMIT`, blocking; the
    /// caller holds the store's write lock): the group commits of accepts, and delivery's claims
    /// and outcomes ([`super::sqlite_writes`]). Returns what `body` returned and the commit's
    /// number for [`Wal::flush_through`]: committed, not yet durable.
    pub(super) fn write<T>(
        &self,
        body: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<(T, u64)> {
        let mut held = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let conn = held
            .as_mut()
            .ok_or_else(|| StoreError::Db(sqlx::Error::PoolClosed))?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = body(&tx)?;
        tx.commit()?;
        Ok((out, self.wal.committed()))
    }

    /// [`AcceptConn::write`] on a blocking thread, holding the store's write lock for the
    /// transaction only; returns what is left to make it durable. The flush runs after the lock
    /// is released, shared with every commit made meanwhile.
    pub(super) async fn write_locked<T: Send + 'static>(
        self: &Arc<Self>,
        writer: &Arc<super::WriteLock>,
        body: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<(T, super::Pending)> {
        let (this, writer) = (self.clone(), writer.clone());
        blocking(move || {
            let _w = writer.blocking_lock();
            let (out, commit) = this.write(body)?;
            Ok((out, super::Pending::WalSync(this.wal(), commit)))
        })
        .await
    }

    /// One group commit, the contract of [`super::Store::insert_messages`] without the flush;
    /// returns the commit's number for [`Wal::flush_through`]. Blocking; the caller holds the
    /// store's write lock.
    pub(super) fn insert(&self, batch: &[NewMessage]) -> Result<(Vec<Inserted>, u64)> {
        self.write(|tx| insert_batch(tx, batch))
    }
}

/// The statements of one group commit, inside [`AcceptConn::write`]'s transaction.
pub(super) fn insert_batch(
    tx: &rusqlite::Transaction<'_>,
    batch: &[NewMessage],
) -> Result<Vec<Inserted>> {
    let mut answers: Vec<Option<Inserted>> = vec![None; batch.len()];
    {
        let mut claim = tx.prepare_cached(super::accept::CLAIM_IDEMPOTENCY)?;
        let mut first = tx.prepare_cached(super::accept::FIRST_ANSWER)?;
        for i in super::accept::claim_order(batch) {
            let m = &batch[i];
            let Some((key, hash)) = &m.idempotency else {
                continue;
            };
            let won = claim.execute(rusqlite::params![
                m.tenant_id,
                key,
                m.id,
                hash,
                super::accept::initial_status(m),
                m.created_at
            ])? == 1;
            if !won {
                answers[i] = Some(first.query_row(rusqlite::params![m.tenant_id, key], |r| {
                    let (id, first_hash, status): (String, String, String) =
                        (r.get(0)?, r.get(1)?, r.get(2)?);
                    Ok(super::accept::repeat_answer(
                        id,
                        &first_hash == hash,
                        status,
                    ))
                })?);
            }
        }
    }
    let fresh: Vec<&NewMessage> = batch
        .iter()
        .zip(&answers)
        .filter(|(_, a)| a.is_none())
        .map(|(m, _)| m)
        .collect();
    // Suppressed recipients, read in this transaction so an accept never races an addition.
    let mut suppressed = std::collections::HashSet::new();
    {
        let mut q =
            tx.prepare_cached("SELECT 1 FROM suppressions WHERE tenant_id = ?1 AND address = ?2")?;
        for m in &fresh {
            for a in &m.recipients {
                let address = super::suppressions::normalize(a);
                if q.exists(rusqlite::params![m.tenant_id, address])? {
                    suppressed.insert((m.tenant_id.clone(), address));
                }
            }
        }
    }
    let planned: Vec<super::accept::Planned> = fresh
        .iter()
        .map(|m| super::accept::Planned::new(m, &suppressed))
        .collect();
    {
        let mut message = tx.prepare_cached(super::accept::INSERT_MESSAGE_ROW)?;
        let mut event = tx.prepare_cached(super::accept::INSERT_EVENT_ROW)?;
        for p in &planned {
            let m = p.msg;
            message.execute(rusqlite::params![
                m.id,
                m.tenant_id,
                m.key_id,
                m.source,
                m.mail_from,
                super::recipients_json(&p.recipients),
                m.subject,
                m.message_id_header,
                m.raw,
                m.raw.len() as i64,
                p.status,
                0_i64,
                m.created_at,
                m.created_at,
                m.created_at,
                m.expires_at,
                0_i64,
                p.held_by(),
                super::accept::tags_json(&m.tags),
            ])?;
            for e in p.events() {
                event.execute(rusqlite::params![
                    e.message_id,
                    e.at,
                    e.kind.as_str(),
                    e.recipient,
                    e.detail
                ])?;
            }
        }
        let mut mark = tx.prepare_cached(super::accept::MARK_KEY_SUPPRESSED)?;
        for p in planned.iter().filter(|p| p.status == "suppressed") {
            if let Some((key, _)) = &p.msg.idempotency {
                mark.execute(rusqlite::params![p.msg.tenant_id, key])?;
            }
        }
        let mut count = tx.prepare_cached(super::accept::COUNT_ACCEPTED_SQLITE)?;
        for (tenant, status, n) in super::accept::accepted_counts(&planned) {
            count.execute(rusqlite::params![tenant, status, n])?;
        }
    }
    Ok(super::accept::answers_of(batch, answers, &planned))
}

/// A descriptor on the write-ahead log, opened once: Linux reports a write-back error to the
/// descriptors open when it happened, so one opened just to flush could miss an error that
/// SQLite's own descriptor already consumed.
pub struct Wal {
    path: PathBuf,
    file: std::fs::File,
    /// The log's inode when it was opened: SQLite keeps the same file while any connection is
    /// open, so another file at the path means something outside replaced it.
    inode: u64,
    /// Commits made on the accepts' connection, numbered as they return.
    commits: std::sync::atomic::AtomicU64,
    /// Held while a flush runs: what the last successful flush covered, or why one failed.
    flushed: Mutex<Flushed>,
    /// Least time between the starts of two flushes, in microseconds (0: none). See
    /// [`Wal::set_pacing`].
    pace_us: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Flushed {
    /// The number of the last commit the last successful flush covered.
    through: u64,
    /// When the last flush began.
    started: Option<std::time::Instant>,
    /// Set by a failed flush, and never cleared. Linux reports a write-back error once and
    /// marks the pages clean, so a retry on the same descriptor would succeed without having
    /// written them: after one failure no commit may be taken as durable.
    failed: Option<String>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("path", &self.path).finish()
    }
}

impl Wal {
    fn open(path: PathBuf) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        let inode = file.metadata()?.ino();
        Ok(Self {
            path,
            file,
            inode,
            commits: std::sync::atomic::AtomicU64::new(0),
            flushed: Mutex::new(Flushed::default()),
            pace_us: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Sets the least time between the starts of two flushes. A flush asked for sooner waits
    /// out the rest, and then covers every commit that returned meanwhile too. Idle, the last
    /// flush is long past and nothing waits (a flush asked for within the pace of the one
    /// before waits at most the pace); under load, flushes otherwise
    /// run back to back, each covering the one or two small commits made during the one
    /// before, and every flush and commit costs CPU (a flush ~80 us here, whatever it covers).
    /// Pacing them makes fewer, larger ones. The wait is a thread sleep (microsecond
    /// precision), not a tokio timer (whole milliseconds).
    pub fn set_pacing(&self, pace: std::time::Duration) {
        self.pace_us.store(
            u64::try_from(pace.as_micros()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Numbers a commit that has just returned on the accepts' connection.
    fn committed(&self) -> u64 {
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// Makes commit number `commit` durable (blocking); true if this call flushed the log.
    ///
    /// One flush at a time, each covering every commit that had returned when it began. A
    /// batch whose commit an earlier flush covered returns without flushing: while one flush
    /// runs, the batches committed behind it wait and then share the next one, instead of each
    /// sending a flush of its own to the disk. A commit is counted only after it returned, so
    /// a flush never claims one whose frames it may not have seen. Once a flush has failed,
    /// every later call fails too (see [`Flushed::failed`]).
    pub fn flush_through(&self, commit: u64) -> std::io::Result<bool> {
        self.flush_through_with(commit, || self.flush())
    }

    /// [`Wal::flush_through`] with the flush itself given (a test stages a commit inside it).
    fn flush_through_with(
        &self,
        commit: u64,
        flush: impl FnOnce() -> std::io::Result<()>,
    ) -> std::io::Result<bool> {
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = &flushed.failed {
            return Err(std::io::Error::other(format!(
                "an earlier flush of the write-ahead log failed: {why}"
            )));
        }
        if flushed.through >= commit {
            return Ok(false);
        }
        let pace = self.pace_us.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(last) = flushed.started
            && pace > 0
        {
            let due = last.checked_add(std::time::Duration::from_micros(pace));
            let now = std::time::Instant::now();
            if let Some(due) = due.filter(|d| *d > now) {
                std::thread::sleep(due - now);
            }
        }
        // Read after the wait: every commit that returned before this point is in the log
        // before the flush begins.
        let covered = self.commits.load(std::sync::atomic::Ordering::SeqCst);
        flushed.started = Some(std::time::Instant::now());
        if let Err(e) = flush() {
            flushed.failed = Some(e.to_string());
            return Err(e);
        }
        flushed.through = covered;
        Ok(true)
    }

    /// Flushes the log to the disk (blocking).
    fn flush(&self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&self.path) {
            Ok(m) if m.ino() == self.inode => self.file.sync_data(),
            Ok(_) => Err(std::io::Error::other(format!(
                "the write-ahead log {} was replaced by another file: commits written to the old one cannot be recovered from the new one",
                self.path.display()
            ))),
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("the write-ahead log {} is gone: {e}", self.path.display()),
            )),
        }
    }
}

fn file_path(url: &str) -> Option<&str> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .filter(|p| !p.is_empty() && !p.starts_with(':'))?;
    let path = path.split('?').next().unwrap_or(path);
    (!url.contains("mode=memory")).then_some(path)
}

fn options(url: &str) -> Result<SqliteConnectOptions> {
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .page_size(PAGE_SIZE);
    Ok(PRAGMAS.iter().fold(opts, |o, (k, v)| o.pragma(*k, *v)))
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The page size of a new database file (one made before this keeps its own: a WAL database
/// changes it only by `VACUUM` after leaving WAL mode). Each commit writes to the log every
/// page it changed, whole: the last leaf page of each index on `messages`, the table's last
/// leaf page and its parent, `message_counts` and the header, 13-18 pages whatever the
/// commit's size. At half load a commit holds ~5 accepts, so at SQLite's default of 4 KiB
/// those fixed pages were most of the 17-18 KB written per accept. At 2 KiB: 11-13 KB per
/// accept at 11,500/s and 6.4 KB against 7.6 KB at full load, at the same CPU per accept
/// (a message's text, which no longer fits a leaf beside the others, goes to an overflow page
/// of its own); the open loop's p99 at 11,500/s was 4.1 / 7.5 / 5.1 ms against 34.6 / 22.9 /
/// 3.8 ms. 1 KiB wrote less again (5.7 KB per accept at full load) but cost 40 % more CPU
/// per accept: most messages then span several overflow pages.
const PAGE_SIZE: u32 = 2048;

/// Every connection's settings, the sqlx pool's and the accepts' alike.
const PRAGMAS: [(&str, &str); 5] = [
    ("foreign_keys", "ON"),
    ("temp_store", "memory"),
    ("cache_size", "-65536"),
    // Checkpoints run from a background task (Store::checkpoint), so the fsync of the
    // database file never lands inside an accept's commit.
    ("wal_autocheckpoint", "0"),
    // A log that grew past this (a burst while a long read held its frames) is cut back to it
    // when it restarts; in steady use it stays below, reused from its start.
    ("journal_size_limit", "268435456"),
];

/// Runs blocking SQLite or file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Db(sqlx::Error::Io(std::io::Error::other(e))))?
}

/// One node owns an SQLite file, so a plain UPDATE … RETURNING is an atomic claim.
pub(super) fn claim_sql() -> String {
    format!(
        "UPDATE messages SET status = 'sending', attempts = attempts + 1, claimed_by = $1, lease_until = $2, updated_at = $3 \
         WHERE id IN (SELECT id FROM messages WHERE status IN ('queued', 'deferred') AND next_attempt_at <= $3 \
                      ORDER BY next_attempt_at LIMIT $4) \
         RETURNING {CLAIM_COLUMNS}"
    )
}

pub(super) const SCHEMA_TYPES: [(&str, &str); 2] =
    [("{BLOB}", "BLOB"), ("{SERIAL}", "INTEGER PRIMARY KEY")];

#[cfg(test)]
mod tests {
    use super::Wal;

    /// A `Wal` on an empty log file in a directory of its own (kept alive by the caller).
    fn empty_log() -> (tempfile::TempDir, Wal) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db-wal");
        std::fs::write(&path, b"").expect("log file");
        let wal = Wal::open(path).expect("open");
        (dir, wal)
    }

    /// A commit that returns while a flush runs is not counted as covered by it: the flush may
    /// have begun before its frames were written.
    #[test]
    fn a_flush_covers_only_the_commits_that_returned_before_it_began() {
        let (_dir, wal) = empty_log();
        let first = wal.committed();
        let mut during = 0;
        let flushed = wal.flush_through_with(first, || {
            during = wal.committed();
            Ok(())
        });
        assert!(
            flushed.expect("flush"),
            "nothing had flushed the first commit"
        );
        assert!(!wal.flush_through(first).expect("flush"), "covered");
        assert!(
            wal.flush_through(during).expect("flush"),
            "returned after the flush began, so it needs one of its own"
        );

        // A failed flush fails every later one, even when the disk would now say yes.
        let next = wal.committed();
        let failed = wal.flush_through_with(next, || Err(std::io::Error::other("EIO")));
        assert!(failed.is_err());
        let again = wal.flush_through(next).expect_err("stays failed");
        assert!(again.to_string().contains("an earlier flush"), "{again}");
    }

    /// Paced, a flush begins no sooner than the pace after the one before, and covers the
    /// commits that returned while it waited.
    #[test]
    fn paced_flushes_begin_apart_and_cover_the_commits_made_while_waiting() {
        use std::time::{Duration, Instant};
        let (_dir, wal) = empty_log();
        let pace = Duration::from_secs(1);
        wal.set_pacing(pace);

        let mut began = Vec::new();
        let first = wal.committed();
        assert!(
            wal.flush_through_with(first, || {
                began.push(Instant::now());
                Ok(())
            })
            .expect("flush")
        );
        let second = wal.committed();
        let during = std::thread::scope(|s| {
            // Returns while the second flush waits out the pace (a tenth of it in).
            let late = s.spawn(|| {
                std::thread::sleep(pace / 10);
                wal.committed()
            });
            assert!(
                wal.flush_through_with(second, || {
                    began.push(Instant::now());
                    Ok(())
                })
                .expect("flush")
            );
            late.join().expect("commit thread")
        });
        assert!(
            // (each instant is read a little after the one the pacing goes by)
            began[1] - began[0] >= pace - Duration::from_millis(1),
            "the second flush began {:?} after the first",
            began[1] - began[0]
        );
        assert!(
            !wal.flush_through(during).expect("flush"),
            "a commit that returned while the paced flush waited is covered by it"
        );
    }
}
