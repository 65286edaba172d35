//! What the guard rebuilds or checks from the store: the recipients each tenant mailed (its
//! novelty memory, at start) and the ledger of deliveries per provider (against the
//! provider's own counters).

use sqlx::Row;

use super::{Result, SqliteDb, Store, on_pool, parse_recipients};

impl Store {
    /// Recipients a provider took from Postern since `since` (`delivered` events).
    pub async fn delivered_via(&self, provider: &str, since: i64) -> Result<u64> {
        on_pool!(self, p, Db => {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM message_events WHERE kind = 'delivered' AND provider = $1 AND at >= $2")
                .bind(provider).bind(since).fetch_one(p).await?.try_get("n")?;
            Ok(n.max(0) as u64)
        })
    }

    /// (tenant id, recipient addresses) of the newest `limit` messages accepted since
    /// `since`, newest first.
    pub async fn recent_recipients(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<(String, Vec<String>)>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT id, tenant_id, recipients FROM messages WHERE created_at >= $1 ORDER BY created_at DESC LIMIT $2")
                .bind(since).bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| {
                let id: String = r.try_get("id")?;
                let list = parse_recipients(&id, &r.try_get::<String, _>("recipients")?)?;
                Ok((r.try_get("tenant_id")?, list.into_iter().map(|x| x.address).collect()))
            }).collect()
        })
    }
}
