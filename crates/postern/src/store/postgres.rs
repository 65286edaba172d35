//! PostgreSQL: for several nodes sharing one queue. Workers claim with
//! `FOR UPDATE SKIP LOCKED`, so two nodes never take the same message.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::{CLAIM_COLUMNS, Result};

pub(super) async fn connect(url: &str) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await?)
}

pub(super) fn claim_sql() -> String {
    let cols = CLAIM_COLUMNS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "UPDATE messages m SET status = 'sending', attempts = m.attempts + 1, claimed_by = $1, lease_until = $2, updated_at = $3 \
         FROM (SELECT id FROM messages WHERE status IN ('queued', 'deferred') AND next_attempt_at <= $3 \
               ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) due \
         WHERE m.id = due.id RETURNING {cols}"
    )
}

pub(super) const SCHEMA_TYPES: [(&str, &str); 2] =
    [("{BLOB}", "BYTEA"), ("{SERIAL}", "BIGSERIAL PRIMARY KEY")];

/// Nodes starting together must not run the same migration twice.
pub(super) const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7303725)";
