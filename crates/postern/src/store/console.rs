//! What the web console reads besides the admin API's queries: event counts over time (its
//! charts and rates), queue depth, a sample of held messages, one held message in full.
//! Read-only; no table of its own.

use sqlx::Row;

use super::pauses::HELD_WHERE;
use super::{HeldFilter, Result, SqliteDb, Store, StoreError, on_pool, parse_recipients};

/// Events of one kind in one time bucket, for one tenant and provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCount {
    /// Bucket number from `since` (0 = the oldest).
    pub bucket: i64,
    pub kind: String,
    pub provider: Option<String>,
    pub tenant_id: String,
    pub n: i64,
}

/// A held message with its recipients and raw content, for a preview.
#[derive(Debug, Clone)]
pub struct HeldDetail {
    pub id: String,
    pub tenant_id: String,
    pub key_id: Option<String>,
    pub held_by: Option<String>,
    pub subject: Option<String>,
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub created_at: i64,
    pub raw: Vec<u8>,
}

/// The event kinds the console counts.
const COUNTED: &str = "'delivered', 'bounced', 'complained', 'auto_replied', 'held', 'deferred'";

impl Store {
    /// Counted events since `since`, in buckets of `bucket_ms`, optionally for one tenant.
    /// Scans the events table (there is no index on their time); the console asks for a day
    /// at most. Accepts ('queued') are counted from the messages' rows, which stand for that
    /// event ([`super::accept::accept_event`]), out of `messages_by_time` alone.
    pub async fn event_counts(
        &self,
        since: i64,
        bucket_ms: i64,
        tenant_id: Option<&str>,
    ) -> Result<Vec<EventCount>> {
        let sql = format!(
            "SELECT (e.at - $1) / $2 AS b, e.kind, e.provider, m.tenant_id, COUNT(*) AS n \
             FROM message_events e JOIN messages m ON m.id = e.message_id \
             WHERE e.at >= $1 AND ($3 IS NULL OR m.tenant_id = $3) AND e.kind IN ({COUNTED}) \
             GROUP BY b, e.kind, e.provider, m.tenant_id \
             UNION ALL \
             SELECT (m.created_at - $1) / $2 AS b, 'queued' AS kind, NULL AS provider, m.tenant_id, COUNT(*) AS n \
             FROM messages m WHERE m.created_at >= $1 AND ($3 IS NULL OR m.tenant_id = $3) \
             GROUP BY b, m.tenant_id"
        );
        on_pool!(self, p, Db => {
            let rows = sqlx::query(&sql).bind(since).bind(bucket_ms.max(1)).bind(tenant_id).fetch_all(p).await?;
            rows.iter().map(|r| Ok(EventCount {
                bucket: r.try_get("b")?, kind: r.try_get("kind")?, provider: r.try_get("provider")?,
                tenant_id: r.try_get("tenant_id")?, n: r.try_get("n")?,
            })).collect()
        })
    }

    /// Messages waiting (queued, sending, deferred, held) by status, optionally for one tenant,
    /// from the counts the database keeps (`message_counts`; see [`Store::count_by_status`]).
    pub async fn queue_depth(&self, tenant_id: Option<&str>) -> Result<Vec<(String, i64)>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM message_counts WHERE status IN ('queued', 'sending', 'deferred', 'held') AND ($1 IS NULL OR tenant_id = $1) GROUP BY status HAVING SUM(n) <> 0 ORDER BY status")
                .bind(tenant_id).fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.try_get("status")?, r.try_get("n")?))).collect()
        })
    }

    /// The first `limit` held messages' recipients and subjects (for a summary).
    pub async fn held_sample(
        &self,
        f: &HeldFilter,
        limit: i64,
    ) -> Result<Vec<(Vec<String>, Option<String>)>> {
        let sql = format!(
            "SELECT id, recipients, subject FROM messages WHERE {HELD_WHERE} ORDER BY created_at, id LIMIT $4"
        );
        on_pool!(self, p, Db => {
            let rows = sqlx::query(&sql).bind(&f.tenant_id).bind(&f.key_id).bind(&f.held_by).bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| {
                let id: String = r.try_get("id")?;
                let rcpts = parse_recipients(&id, &r.try_get::<String, _>("recipients")?)?;
                Ok((rcpts.into_iter().map(|r| r.address).collect(), r.try_get("subject")?))
            }).collect()
        })
    }

    /// One held message in full.
    pub async fn held_message(&self, id: &str) -> Result<HeldDetail> {
        on_pool!(self, p, Db => {
            let r = sqlx::query("SELECT id, tenant_id, key_id, held_by, subject, mail_from, recipients, created_at, raw FROM messages WHERE id = $1 AND status = 'held'")
                .bind(id).fetch_optional(p).await?.ok_or(StoreError::NotFound)?;
            let rcpts = parse_recipients(id, &r.try_get::<String, _>("recipients")?)?;
            Ok(HeldDetail {
                id: r.try_get("id")?, tenant_id: r.try_get("tenant_id")?, key_id: r.try_get("key_id")?,
                held_by: r.try_get("held_by")?, subject: r.try_get("subject")?, mail_from: r.try_get("mail_from")?,
                recipients: rcpts.into_iter().map(|r| r.address).collect(),
                created_at: r.try_get("created_at")?, raw: r.try_get("raw")?,
            })
        })
    }
}
