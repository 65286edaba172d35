//! The kill switch's storage: active pauses, and the held messages they (or the guard) hold.
//! Releasing puts a message back in line at its accept time, so the queue keeps its order;
//! purging is final and names the operator.

use sqlx::Row;

use super::{Result, SqliteDb, Store, on_pool};
use crate::domain::EventKind;
use crate::guard::{Pause, PauseScope};

/// Which held messages an operation applies to; empty means all.
#[derive(Debug, Clone, Default)]
pub struct HeldFilter {
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    /// Only those held by this pause or action (`pause:all`, `pause:tenant:ID`, ...).
    pub held_by: Option<String>,
}

/// A held message, as `held list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeldMessage {
    pub id: String,
    pub tenant_id: String,
    pub key_id: Option<String>,
    pub held_by: Option<String>,
    pub subject: Option<String>,
    pub mail_from: String,
    pub created_at: i64,
}

pub(super) const HELD_WHERE: &str = "status = 'held' AND ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR key_id = $2) AND ($3 IS NULL OR held_by = $3)";

impl Store {
    pub async fn pauses(&self) -> Result<Vec<Pause>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT scope, target, reason, actor, created_at FROM pauses ORDER BY created_at, scope, target")
                .fetch_all(p).await?;
            Ok(rows.iter().filter_map(|r| {
                let scope = PauseScope::from_parts(r.try_get("scope").ok()?, r.try_get("target").ok()?)?;
                Some(Pause { scope, reason: r.try_get("reason").ok()?, actor: r.try_get("actor").ok()?, created_at: r.try_get("created_at").ok()? })
            }).collect())
        })
    }

    /// Records a pause; false when that scope was already paused.
    pub async fn pause(&self, pause: &Pause) -> Result<bool> {
        let _w = self.write_lock().await;
        let n = on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO pauses (scope, target, reason, actor, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, target) DO NOTHING")
                .bind(pause.scope.kind()).bind(pause.scope.target()).bind(&pause.reason).bind(&pause.actor).bind(pause.created_at)
                .execute(p).await?.rows_affected()
        });
        self.announce_pauses().await?;
        Ok(n == 1)
    }

    /// Lifts a pause and releases what it held. Returns whether it was active and how many
    /// messages were released.
    pub async fn resume(&self, scope: &PauseScope, actor: &str, now: i64) -> Result<(bool, u64)> {
        let removed = {
            let _w = self.write_lock().await;
            on_pool!(self, p, Db => {
                sqlx::query("DELETE FROM pauses WHERE scope = $1 AND target = $2")
                    .bind(scope.kind()).bind(scope.target()).execute(p).await?.rows_affected()
            })
        };
        let filter = HeldFilter {
            held_by: Some(scope.tag()),
            ..Default::default()
        };
        let released = self
            .release_held(&filter, actor, &format!("{} resumed", scope.tag()), now)
            .await?;
        self.announce_pauses().await?;
        Ok((removed == 1, released))
    }

    /// Tells every node on PostgreSQL to reload its pauses now. SQLite nodes poll.
    async fn announce_pauses(&self) -> Result<()> {
        if let Store::Postgres(p) = self {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(crate::guard::pause::CHANNEL)
                .execute(p)
                .await?;
        }
        Ok(())
    }

    pub async fn held(&self, f: &HeldFilter, limit: i64) -> Result<(i64, Vec<HeldMessage>)> {
        on_pool!(self, p, Db => {
            let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM messages WHERE {HELD_WHERE}"))
                .bind(&f.tenant_id).bind(&f.key_id).bind(&f.held_by).fetch_one(p).await?.try_get("n")?;
            let rows = sqlx::query(&format!(
                "SELECT id, tenant_id, key_id, held_by, subject, mail_from, created_at FROM messages WHERE {HELD_WHERE} ORDER BY created_at, id LIMIT $4"))
                .bind(&f.tenant_id).bind(&f.key_id).bind(&f.held_by).bind(limit).fetch_all(p).await?;
            let list = rows.iter().map(|r| Ok(HeldMessage {
                id: r.try_get("id")?, tenant_id: r.try_get("tenant_id")?, key_id: r.try_get("key_id")?,
                held_by: r.try_get("held_by")?, subject: r.try_get("subject")?, mail_from: r.try_get("mail_from")?,
                created_at: r.try_get("created_at")?,
            })).collect::<Result<Vec<_>>>()?;
            Ok((total, list))
        })
    }

    /// Releases messages held by a pause that no longer exists. A worker that held a message
    /// just as its pause was lifted writes `held` after the release ran; this sweep (run every
    /// second by each node) puts such messages back in line. Returns how many.
    pub async fn release_orphaned_holds(&self, now: i64) -> Result<u64> {
        const ORPHANED: &str = "status = 'held' AND held_by LIKE 'pause:%' AND NOT EXISTS (SELECT 1 FROM pauses p \
             WHERE 'pause:' || p.scope || CASE WHEN p.target = '' THEN '' ELSE ':' || p.target END = messages.held_by)";
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            sqlx::query(&format!("INSERT INTO message_events (message_id, at, kind, detail) SELECT id, $1, $2, $3 FROM messages WHERE {ORPHANED}"))
                .bind(now).bind(EventKind::Released.as_str()).bind("released: the pause that held it was lifted")
                .execute(&mut *tx).await?;
            let n = sqlx::query(&format!("UPDATE messages SET status = 'queued', held_by = NULL, next_attempt_at = created_at, updated_at = $1 WHERE {ORPHANED}"))
                .bind(now).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Puts held messages back in line, at their accept time, with a `released` event.
    pub async fn release_held(
        &self,
        f: &HeldFilter,
        actor: &str,
        why: &str,
        now: i64,
    ) -> Result<u64> {
        self.end_hold(
            f,
            EventKind::Released,
            &format!("released by {actor}: {why}"),
            now,
            "queued",
        )
        .await
    }

    /// Ends held messages for good (status `purged`), naming the operator and the reason.
    pub async fn purge_held(
        &self,
        f: &HeldFilter,
        actor: &str,
        why: &str,
        now: i64,
    ) -> Result<u64> {
        self.end_hold(
            f,
            EventKind::Purged,
            &format!("purged by {actor}: {why}"),
            now,
            "purged",
        )
        .await
    }

    async fn end_hold(
        &self,
        f: &HeldFilter,
        kind: EventKind,
        detail: &str,
        now: i64,
        status: &str,
    ) -> Result<u64> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            sqlx::query(&format!(
                "INSERT INTO message_events (message_id, at, kind, detail) SELECT id, $4, $5, $6 FROM messages WHERE {HELD_WHERE}"))
                .bind(&f.tenant_id).bind(&f.key_id).bind(&f.held_by).bind(now).bind(kind.as_str()).bind(detail)
                .execute(&mut *tx).await?;
            let n = sqlx::query(&format!(
                "UPDATE messages SET status = $4, held_by = NULL, next_attempt_at = created_at, updated_at = $5 WHERE {HELD_WHERE}"))
                .bind(&f.tenant_id).bind(&f.key_id).bind(&f.held_by).bind(status).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(n)
        })
    }
}
