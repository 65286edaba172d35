//! Alert notices: what operators were told (see alerts/), one row per deduplicated alert.

use sqlx::Row;

use super::{Alert, Result, SqliteDb, Store, StoreError, on_pool};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Notice {
    pub id: String,
    pub dedup_key: String,
    pub scope: String,
    pub target: String,
    pub signal: String,
    pub action: String,
    pub first_at: i64,
    pub last_at: i64,
    /// Alerts folded into this notice.
    pub count: i64,
    /// Highest escalation level told so far.
    pub level: i64,
    /// When that level was told.
    pub notified_at: i64,
    /// Channels told, e.g. `webhook,email via backup`.
    pub sent: String,
    pub acked_at: Option<i64>,
    pub acked_by: Option<String>,
}

const COLUMNS: &str = "id, dedup_key, scope, target, signal, action, first_at, last_at, count, level, notified_at, sent, acked_at, acked_by";

fn notice(r: &impl NoticeRow) -> Result<Notice> {
    r.notice()
}

trait NoticeRow {
    fn notice(&self) -> Result<Notice>;
}

macro_rules! notice_row {
    ($row:ty) => {
        impl NoticeRow for $row {
            fn notice(&self) -> Result<Notice> {
                Ok(Notice {
                    id: self.try_get("id")?,
                    dedup_key: self.try_get("dedup_key")?,
                    scope: self.try_get("scope")?,
                    target: self.try_get("target")?,
                    signal: self.try_get("signal")?,
                    action: self.try_get("action")?,
                    first_at: self.try_get("first_at")?,
                    last_at: self.try_get("last_at")?,
                    count: self.try_get("count")?,
                    level: self.try_get("level")?,
                    notified_at: self.try_get("notified_at")?,
                    sent: self.try_get("sent")?,
                    acked_at: self.try_get("acked_at")?,
                    acked_by: self.try_get("acked_by")?,
                })
            }
        }
    };
}
notice_row!(sqlx::sqlite::SqliteRow);
notice_row!(sqlx::postgres::PgRow);

impl Store {
    /// Guard alerts recorded after the notifier's cursor, oldest first.
    pub async fn alerts_after_cursor(&self, limit: i64) -> Result<Vec<Alert>> {
        on_pool!(self, p, Db => {
            let cur = sqlx::query("SELECT at, alert_id FROM alert_cursor WHERE name = 'notifier'")
                .fetch_optional(p).await?;
            let (at, id): (i64, String) = match cur {
                Some(r) => (r.try_get("at")?, r.try_get("alert_id")?),
                None => (i64::MIN, String::new()),
            };
            let rows = sqlx::query("SELECT id, at, scope, target, signal, evidence, action FROM guard_alerts WHERE at > $1 OR (at = $1 AND id > $2) ORDER BY at, id LIMIT $3")
                .bind(at).bind(&id).bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| Ok(Alert {
                id: r.try_get("id")?, at: r.try_get("at")?, scope: r.try_get("scope")?, target: r.try_get("target")?,
                signal: r.try_get("signal")?,
                evidence: serde_json::from_str(&r.try_get::<String, _>("evidence")?).unwrap_or(serde_json::Value::Null),
                action: r.try_get("action")?,
            })).collect()
        })
    }

    /// Moves the notifier's cursor past `alert`.
    pub async fn advance_alert_cursor(&self, alert: &Alert) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO alert_cursor (name, at, alert_id) VALUES ('notifier', $1, $2) ON CONFLICT (name) DO UPDATE SET at = excluded.at, alert_id = excluded.alert_id")
                .bind(alert.at).bind(&alert.id).execute(p).await?;
        });
        Ok(())
    }

    /// The latest notice with this key whose last alert is at or after `since`.
    pub async fn open_notice(&self, dedup_key: &str, since: i64) -> Result<Option<Notice>> {
        on_pool!(self, p, Db => {
            let r = sqlx::query(&format!("SELECT {COLUMNS} FROM alert_notices WHERE dedup_key = $1 AND last_at >= $2 ORDER BY last_at DESC LIMIT 1"))
                .bind(dedup_key).bind(since).fetch_optional(p).await?;
            r.as_ref().map(notice).transpose()
        })
    }

    pub async fn insert_notice(&self, n: &Notice) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query(&format!("INSERT INTO alert_notices ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"))
                .bind(&n.id).bind(&n.dedup_key).bind(&n.scope).bind(&n.target).bind(&n.signal).bind(&n.action)
                .bind(n.first_at).bind(n.last_at).bind(n.count).bind(n.level).bind(n.notified_at).bind(&n.sent)
                .bind(n.acked_at).bind(&n.acked_by)
                .execute(p).await?;
        });
        Ok(())
    }

    /// Folds one more alert into a notice.
    pub async fn bump_notice(&self, id: &str, at: i64) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("UPDATE alert_notices SET count = count + 1, last_at = $2 WHERE id = $1")
                .bind(id).bind(at).execute(p).await?;
        });
        Ok(())
    }

    /// Records that `level` was told at `at` through `sent`.
    pub async fn escalate_notice(&self, id: &str, level: i64, at: i64, sent: &str) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("UPDATE alert_notices SET level = $2, notified_at = $3, sent = $4 WHERE id = $1")
                .bind(id).bind(level).bind(at).bind(sent).execute(p).await?;
        });
        Ok(())
    }

    /// Unacknowledged notices told at `level` or below before `before`.
    pub async fn notices_to_escalate(&self, before: i64) -> Result<Vec<Notice>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM alert_notices WHERE acked_at IS NULL AND notified_at <= $1 ORDER BY first_at, id"))
                .bind(before).fetch_all(p).await?;
            rows.iter().map(notice).collect()
        })
    }

    /// Newest first; only unacknowledged ones unless `all`.
    pub async fn notices(&self, all: bool, limit: i64) -> Result<Vec<Notice>> {
        on_pool!(self, p, Db => {
            let filter = if all { "" } else { "WHERE acked_at IS NULL" };
            let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM alert_notices {filter} ORDER BY last_at DESC, id DESC LIMIT $1"))
                .bind(limit).fetch_all(p).await?;
            rows.iter().map(notice).collect()
        })
    }

    /// Acknowledges a notice (stops its escalation); `NotFound` for an unknown id.
    pub async fn ack_notice(&self, id: &str, actor: &str, at: i64) -> Result<Notice> {
        {
            let _w = self.write_lock().await;
            on_pool!(self, p, Db => {
                let done = sqlx::query("UPDATE alert_notices SET acked_at = COALESCE(acked_at, $2), acked_by = COALESCE(acked_by, $3) WHERE id = $1")
                    .bind(id).bind(at).bind(actor).execute(p).await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
            });
        }
        on_pool!(self, p, Db => {
            let r = sqlx::query(&format!("SELECT {COLUMNS} FROM alert_notices WHERE id = $1"))
                .bind(id).fetch_one(p).await?;
            notice(&r)
        })
    }
}
