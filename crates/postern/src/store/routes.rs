//! Routing tables: a tenant's own ordered provider list (when it has one) and the moves that
//! send one provider's traffic to another, for everyone or for one tenant.

use sqlx::Row;

use super::{Result, SqliteDb, Store, StoreError, on_pool};

/// "Send what would go to `from` to `to` instead", for one tenant or (no tenant) everyone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteMove {
    pub id: String,
    pub tenant_id: Option<String>,
    pub from: String,
    pub to: String,
    pub created_at: i64,
}

fn join(providers: &[String]) -> String {
    providers.join(",")
}

fn split(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Store {
    /// Sets (or with an empty list, removes) a tenant's route.
    pub async fn set_route(&self, tenant_id: &str, providers: &[String], now: i64) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM routes WHERE tenant_id = $1").bind(tenant_id).execute(&mut *tx).await?;
            if !providers.is_empty() {
                sqlx::query("INSERT INTO routes (tenant_id, providers, updated_at) VALUES ($1, $2, $3)")
                    .bind(tenant_id).bind(join(providers)).bind(now).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every tenant route, as (tenant id, providers in order).
    pub async fn routes(&self) -> Result<Vec<(String, Vec<String>)>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT tenant_id, providers FROM routes ORDER BY tenant_id").fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.try_get("tenant_id")?, split(&r.try_get::<String, _>("providers")?)))).collect()
        })
    }

    /// Records a move, or, when it is the reverse of an active move in the same scope,
    /// removes that one instead: moving back is undoing. Returns the move now in force, if any.
    pub async fn move_route(
        &self,
        tenant_id: Option<&str>,
        from: &str,
        to: &str,
        now: i64,
    ) -> Result<Option<RouteMove>> {
        if from == to {
            return Err(StoreError::Conflict(format!(
                "a move from {from:?} to itself"
            )));
        }
        let existing = self.route_moves().await?;
        let _w = self.write_lock().await;
        let reverse = existing
            .iter()
            .find(|m| m.tenant_id.as_deref() == tenant_id && m.from == to && m.to == from);
        if let Some(r) = reverse {
            on_pool!(self, p, Db => {
                sqlx::query("DELETE FROM route_moves WHERE id = $1").bind(&r.id).execute(p).await?;
            });
            return Ok(None);
        }
        if existing
            .iter()
            .any(|m| m.tenant_id.as_deref() == tenant_id && m.from == from)
        {
            return Err(StoreError::Conflict(format!(
                "a move away from {from:?} in this scope (move it back first)"
            )));
        }
        let m = RouteMove {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant_id.map(str::to_owned),
            from: from.to_owned(),
            to: to.to_owned(),
            created_at: now,
        };
        on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO route_moves (id, tenant_id, from_provider, to_provider, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&m.id).bind(&m.tenant_id).bind(&m.from).bind(&m.to).bind(m.created_at).execute(p).await?;
        });
        Ok(Some(m))
    }

    /// Active moves, oldest first.
    pub async fn route_moves(&self) -> Result<Vec<RouteMove>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT id, tenant_id, from_provider, to_provider, created_at FROM route_moves ORDER BY created_at, id")
                .fetch_all(p).await?;
            rows.iter().map(|r| Ok(RouteMove {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                from: r.try_get("from_provider")?,
                to: r.try_get("to_provider")?,
                created_at: r.try_get("created_at")?,
            })).collect()
        })
    }

    /// Makes deferred messages last tried on `provider` due now (optionally one tenant's), so
    /// that after it fails or is moved away from they go to the next provider at once instead
    /// of waiting out their backoff. Returns how many.
    pub async fn pull_forward(
        &self,
        provider: &str,
        tenant_id: Option<&str>,
        now: i64,
    ) -> Result<u64> {
        let _w = self.write_lock().await;
        let n = on_pool!(self, p, Db => {
            sqlx::query("UPDATE messages SET next_attempt_at = $1 WHERE status = 'deferred' AND provider = $2 \
                         AND next_attempt_at > $1 AND ($3 IS NULL OR tenant_id = $3)")
                .bind(now).bind(provider).bind(tenant_id).execute(p).await?.rows_affected()
        });
        Ok(n)
    }
}
