//! Guard alerts: every detection and the action taken, with its evidence.

use sqlx::Row;

use super::{Result, SqliteDb, Store, on_pool};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    pub id: String,
    pub at: i64,
    /// `key`, `tenant`, `provider` or `all`.
    pub scope: String,
    pub target: String,
    /// The signal whose finding reached the action (`volume`, `novelty`, `new_network`,
    /// `bounce_rate`, `ledger`, `orphan_feedback`, ... as in `[guard.policy.scores]`).
    pub signal: String,
    /// The scope's score, the trigger and every finding behind it (signal, value, threshold,
    /// window and figures), as JSON.
    pub evidence: serde_json::Value,
    /// `alert` (recorded only), `throttle`, `hold` (a pause by the guard), `revoke` or
    /// `provider_out`.
    pub action: String,
}

impl Store {
    pub async fn record_alert(&self, a: &Alert) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO guard_alerts (id, at, scope, target, signal, evidence, action) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&a.id).bind(a.at).bind(&a.scope).bind(&a.target).bind(&a.signal).bind(a.evidence.to_string()).bind(&a.action)
                .execute(p).await?;
        });
        Ok(())
    }

    pub async fn alerts(&self, limit: i64) -> Result<Vec<Alert>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT id, at, scope, target, signal, evidence, action FROM guard_alerts ORDER BY at DESC, id DESC LIMIT $1")
                .bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| Ok(Alert {
                id: r.try_get("id")?, at: r.try_get("at")?, scope: r.try_get("scope")?, target: r.try_get("target")?,
                signal: r.try_get("signal")?,
                evidence: serde_json::from_str(&r.try_get::<String, _>("evidence")?).unwrap_or(serde_json::Value::Null),
                action: r.try_get("action")?,
            })).collect()
        })
    }
}
