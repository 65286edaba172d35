//! PostgreSQL: for several nodes sharing one queue. Workers claim with
//! `FOR UPDATE SKIP LOCKED`, so two nodes never take the same message.

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use super::{CLAIM_COLUMNS, Claimed, Migration, Result, claimed_from_row};

fn migrations() -> Vec<Migration> {
    let schema = include_str!("schema.sql")
        .replace("{BLOB}", "BYTEA")
        .replace("{SERIAL}", "BIGSERIAL PRIMARY KEY");
    vec![Migration {
        version: 1,
        sql: Box::leak(schema.into_boxed_str()),
    }]
}

pub(super) async fn connect(url: &str) -> Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await?;
    migrate(&pool).await?;
    Ok(pool)
}

async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    // Nodes starting together must not run the same migration twice.
    sqlx::query("SELECT pg_advisory_xact_lock(7303725)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let current: i64 =
        sqlx::query("SELECT COALESCE(MAX(version), 0)::BIGINT AS v FROM schema_migrations")
            .fetch_one(&mut *tx)
            .await?
            .try_get("v")?;
    for m in migrations().into_iter().filter(|m| m.version > current) {
        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, EXTRACT(EPOCH FROM now())::BIGINT)")
            .bind(m.version)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn claim_due(
    pool: &PgPool,
    node: &str,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Claimed>> {
    let cols = CLAIM_COLUMNS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE messages m SET status = 'sending', attempts = m.attempts + 1, claimed_by = $1, lease_until = $2, updated_at = $3 \
         FROM (SELECT id FROM messages WHERE status IN ('queued', 'deferred') AND next_attempt_at <= $3 \
               ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) due \
         WHERE m.id = due.id RETURNING {cols}"
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
