//! SQLite: the embedded default. WAL journal with `synchronous = FULL`, so a commit has reached
//! the disk before an accept is answered; accepts are grouped into few commits upstream.

use std::path::PathBuf;
use std::str::FromStr;
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
        .connect_with(opts)
        .await?)
}

/// The accepts' connection to a database file, and the path of its write-ahead log. It
/// commits with `synchronous = NORMAL` (in WAL mode: no flush at commit, the log is still
/// synced around checkpoints and when it is reused) and the acceptor flushes the log itself
/// ([`super::Pending::wait`]) before it answers, which is FULL's durability with the flush
/// outside the write lock. `None` for an in-memory database.
pub(super) async fn connect_accept(url: &str) -> Result<Option<(SqlitePool, PathBuf)>> {
    let Some(path) = file_path(url) else {
        return Ok(None);
    };
    let opts = options(url)?.synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?;
    Ok(Some((pool, PathBuf::from(format!("{path}-wal")))))
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
        .pragma("wal_autocheckpoint", "0"))
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
