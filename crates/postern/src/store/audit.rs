//! The audit log's storage. Appends serialize on the one `audit_head` row: the first statement
//! of the transaction updates it, which takes SQLite's write lock (across processes too) and
//! PostgreSQL's row lock, so two appends never read the same head.

use sqlx::Row;

use super::{Result, SqliteDb, Store, StoreError, on_pool};
use crate::audit::{AuditEntry, AuditEvent, entry_hash};

const ENTRY_COLUMNS: &str =
    "seq, at, actor, source_ip, action, target, reason, detail, prev_hash, hash";

impl Store {
    /// Appends one entry after the current head; returns its sequence number.
    pub(crate) async fn audit_append(&self, at: i64, ev: &AuditEvent<'_>) -> Result<u64> {
        let detail = ev.detail.to_string();
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
                .fetch_optional(&mut *tx).await?
                .ok_or_else(|| StoreError::Corrupt("the audit head row is missing".into()))?;
            let seq: i64 = head.try_get("seq")?;
            let prev_hash: String = head.try_get("hash")?;
            let mut entry = AuditEntry {
                seq: seq as u64,
                at,
                actor: ev.actor.to_owned(),
                source_ip: ev.source_ip.map(str::to_owned),
                action: ev.action.to_owned(),
                target: ev.target.to_owned(),
                reason: ev.reason.map(str::to_owned),
                detail,
                prev_hash,
                hash: String::new(),
            };
            entry.hash = entry_hash(&entry);
            sqlx::query("INSERT INTO audit_log (seq, at, actor, source_ip, action, target, reason, detail, prev_hash, hash) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                .bind(seq).bind(at).bind(&entry.actor).bind(&entry.source_ip).bind(&entry.action).bind(&entry.target)
                .bind(&entry.reason).bind(&entry.detail).bind(&entry.prev_hash).bind(&entry.hash)
                .execute(&mut *tx).await?;
            sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(&entry.hash).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(seq as u64)
        })
    }

    /// The last sequence number and hash (`0` and the zero hash for an empty log).
    pub async fn audit_head(&self) -> Result<(u64, String)> {
        on_pool!(self, p, Db => {
            let r = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_optional(p).await?
                .ok_or_else(|| StoreError::Corrupt("the audit head row is missing".into()))?;
            Ok((r.try_get::<i64, _>("seq")? as u64, r.try_get("hash")?))
        })
    }

    /// Up to `limit` entries with `seq > after` and `at >= since`, in sequence order.
    pub async fn audit_entries(
        &self,
        after: u64,
        since: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT $3"
        );
        on_pool!(self, p, Db => {
            let rows = sqlx::query(&sql).bind(after as i64).bind(since).bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| Ok(AuditEntry {
                seq: r.try_get::<i64, _>("seq")? as u64, at: r.try_get("at")?, actor: r.try_get("actor")?,
                source_ip: r.try_get("source_ip")?, action: r.try_get("action")?, target: r.try_get("target")?,
                reason: r.try_get("reason")?, detail: r.try_get("detail")?, prev_hash: r.try_get("prev_hash")?,
                hash: r.try_get("hash")?,
            })).collect()
        })
    }
}
