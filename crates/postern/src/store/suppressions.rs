//! Suppression lists: per tenant, addresses never to send to again (hard bounces, complaints,
//! operators' additions). Checked inside the accept transaction, so an accept never races an
//! addition.

use sqlx::Row;

use super::{Result, SqliteDb, Store, on_pool};

/// One suppressed address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Suppression {
    pub address: String,
    /// Why: `hard_bounce`, `complaint`, `manual`, or a bounce reason such as `userunknown`.
    pub reason: String,
    /// Where it came from: `delivery`, `feedback`, `cli`, `import`.
    pub source: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

/// The form every suppression lookup uses: the whole address, lowercased.
pub fn normalize(address: &str) -> String {
    address.trim().to_ascii_lowercase()
}

impl Store {
    /// Adds (or keeps) suppressions; returns how many were new.
    pub async fn suppress(&self, tenant_id: &str, list: &[Suppression]) -> Result<u64> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            let mut added = 0;
            for s in list {
                added += sqlx::query("INSERT INTO suppressions (tenant_id, address, reason, source, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, address) DO NOTHING")
                    .bind(tenant_id).bind(normalize(&s.address)).bind(&s.reason).bind(&s.source).bind(&s.detail).bind(s.created_at)
                    .execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(added)
        })
    }

    /// Removes suppressions; returns how many existed.
    pub async fn unsuppress(&self, tenant_id: &str, addresses: &[String]) -> Result<u64> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut removed = 0;
            for a in addresses {
                removed += sqlx::query("DELETE FROM suppressions WHERE tenant_id = $1 AND address = $2")
                    .bind(tenant_id).bind(normalize(a)).execute(p).await?.rows_affected();
            }
            Ok(removed)
        })
    }

    pub async fn suppressions(&self, tenant_id: &str) -> Result<Vec<Suppression>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT address, reason, source, detail, created_at FROM suppressions WHERE tenant_id = $1 ORDER BY address")
                .bind(tenant_id).fetch_all(p).await?;
            rows.iter().map(|r| Ok(Suppression {
                address: r.try_get("address")?, reason: r.try_get("reason")?, source: r.try_get("source")?,
                detail: r.try_get("detail")?, created_at: r.try_get("created_at")?,
            })).collect()
        })
    }
}
