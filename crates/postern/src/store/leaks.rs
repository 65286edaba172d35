//! Holding a leaked key's mail that is still waiting to go.

use super::{Result, SqliteDb, Store, on_pool};
use crate::domain::EventKind;

const WAITING: &str = "key_id = $1 AND status IN ('queued', 'deferred')";

impl Store {
    /// Holds every message of `key_id` still waiting to be sent (queued or deferred), tagged
    /// `held_by`, with a `held` event saying why. Returns how many.
    pub async fn hold_key_queue(
        &self,
        key_id: &str,
        held_by: &str,
        why: &str,
        now: i64,
    ) -> Result<u64> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            sqlx::query(&format!("INSERT INTO message_events (message_id, at, kind, detail) SELECT id, $2, $3, $4 FROM messages WHERE {WAITING}"))
                .bind(key_id).bind(now).bind(EventKind::Held.as_str()).bind(why)
                .execute(&mut *tx).await?;
            let n = sqlx::query(&format!("UPDATE messages SET status = 'held', held_by = $2, updated_at = $3 WHERE {WAITING}"))
                .bind(key_id).bind(held_by).bind(now).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(n)
        })
    }
}
