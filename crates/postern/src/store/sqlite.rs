//! SQLite: the embedded default. WAL journal with `synchronous = FULL`, so a commit has reached
//! the disk when it returns; accepts, grouped into few commits upstream, commit on a connection
//! of their own and flush the log after the write lock is released ([`connect_accept`]).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{CLAIM_COLUMNS, Result};

pub(super) async fn connect(url: &str) -> Result<SqlitePool> {
    let opts = options(url)?;
    if let Some(path) = file_path(url)
        && let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
    }
    Ok(SqlitePoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect_with(opts)
        .await?)
}

/// The accepts' connection to a database file, and its write-ahead log. It commits with
/// `synchronous = NORMAL` (in WAL mode: no flush at commit; the log is still synced around
/// checkpoints and when it is reused) and the acceptor flushes the log itself
/// ([`super::Pending::wait`]) before it answers: FULL's durability, with the flush outside the
/// write lock. `None` for an in-memory database.
pub(super) async fn connect_accept(url: &str) -> Result<Option<(SqlitePool, Arc<Wal>)>> {
    if file_path(url).is_none() {
        return Ok(None);
    }
    let opts = options(url)?.synchronous(SqliteSynchronous::Normal);
    // Never closed while the store is open: SQLite removes the log when its last connection
    // closes, and the descriptor below must keep naming the live one.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .test_before_acquire(false)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts)
        .await?;
    // The path SQLite itself resolved (percent-decoding, symlinks, the working directory).
    let db: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&pool)
            .await?;
    // A read transaction in WAL mode opens (creates) the log.
    sqlx::query("SELECT count(*) FROM sqlite_master")
        .execute(&pool)
        .await?;
    let wal = Wal::open(PathBuf::from(format!("{db}-wal"))).map_err(sqlx::Error::Io)?;
    Ok(Some((pool, Arc::new(wal))))
}

/// A descriptor on the write-ahead log, opened once: Linux reports a write-back error to the
/// descriptors open when it happened, so one opened just to flush could miss an error that
/// SQLite's own descriptor already consumed. Reopened only if the log is a new file (its
/// inode changed).
pub struct Wal {
    path: PathBuf,
    file: Mutex<Arc<std::fs::File>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("path", &self.path).finish()
    }
}

impl Wal {
    fn open(path: PathBuf) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        Ok(Self {
            path,
            file: Mutex::new(Arc::new(file)),
        })
    }

    /// Flushes the log to the disk (blocking).
    pub fn flush(&self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match std::fs::metadata(&self.path) {
            Ok(m) if m.ino() == file.metadata()?.ino() => file.sync_data(),
            Ok(_) => {
                let fresh = Arc::new(std::fs::OpenOptions::new().write(true).open(&self.path)?);
                tracing::warn!(path = %self.path.display(), "the write-ahead log is a new file; flushing through a new descriptor");
                *self.file.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
                // The old one may hold the frames of a commit made before the switch.
                file.sync_data()?;
                fresh.sync_data()
            }
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

// Both pools skip sqlx's ping before handing out a connection (`test_before_acquire`): a
// connection to a local file has no peer to lose, and the ping is one more round trip to the
// connection's worker thread on every query, a sixth of an accept batch's.

fn options(url: &str) -> Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-65536")
        // Checkpoints run from a background task (Store::checkpoint), so the fsync of the
        // database file never lands inside an accept's commit.
        .pragma("wal_autocheckpoint", "0")
        // A log that grew past this (a burst while a long read held its frames) is cut back
        // to it when it restarts; in steady use it stays below, reused from its start.
        .pragma("journal_size_limit", "268435456"))
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
