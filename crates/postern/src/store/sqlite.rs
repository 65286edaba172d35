//! SQLite: the embedded default. WAL journal with `synchronous = FULL`, so a commit has reached
//! the disk before an accept is answered; accepts are grouped into few commits upstream.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{CLAIM_COLUMNS, Claimed, Migration, Result, claimed_from_row};

fn migrations() -> Vec<Migration> {
    let schema = include_str!("schema.sql")
        .replace("{BLOB}", "BLOB")
        .replace("{SERIAL}", "INTEGER PRIMARY KEY");
    vec![Migration {
        version: 1,
        sql: Box::leak(schema.into_boxed_str()),
    }]
}

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
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await?;
    migrate(&pool).await?;
    Ok(pool)
}

async fn migrate(pool: &SqlitePool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        .fetch_one(&mut *tx)
        .await?
        .try_get("v")?;
    for m in migrations().into_iter().filter(|m| m.version > current) {
        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, strftime('%s','now'))",
        )
        .bind(m.version)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One node owns an SQLite file, so a plain UPDATE … RETURNING is an atomic claim.
pub(super) async fn claim_due(
    pool: &SqlitePool,
    node: &str,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Claimed>> {
    let sql = format!(
        "UPDATE messages SET status = 'sending', attempts = attempts + 1, claimed_by = $1, lease_until = $2, updated_at = $3 \
         WHERE id IN (SELECT id FROM messages WHERE status IN ('queued', 'deferred') AND next_attempt_at <= $3 \
                      ORDER BY next_attempt_at LIMIT $4) \
         RETURNING {CLAIM_COLUMNS}"
    );
    let rows = sqlx::query(&sql)
        .bind(node)
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let mut out: Vec<Claimed> = rows.iter().map(claimed_from_row).collect::<Result<_>>()?;
    out.sort_by_key(|c| c.created_at);
    Ok(out)
}
