//! SQLite: the embedded default. WAL journal with `synchronous = FULL`, so a commit has reached
//! the disk before an accept is answered; accepts are grouped into few commits upstream.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{CLAIM_COLUMNS, Result};

pub(super) async fn connect(url: &str) -> Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-65536")
        // Checkpoints run from a background task (Store::checkpoint), so the fsync of the
        // database file never lands inside an accept's commit.
        .pragma("wal_autocheckpoint", "0");
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .filter(|p| !p.starts_with(':'))
    {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
    }
    Ok(SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await?)
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
