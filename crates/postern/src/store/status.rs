//! Storage for the status page and incident broadcasts: incidents with their updates, the
//! provider health the delivering nodes last recorded, tenants' contacts, and the deliveries of
//! each broadcast.

use sqlx::Row;

use super::{Result, SqliteDb, Store, StoreError, on_pool};

/// An incident as stored; `updates` oldest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IncidentRecord {
    pub id: String,
    pub title: String,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub resolved_at: Option<i64>,
    pub updates: Vec<IncidentUpdateRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IncidentUpdateRecord {
    pub at: i64,
    pub state: String,
    pub body: String,
}

/// A provider's health as a delivering node last saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderHealthRecord {
    pub provider: String,
    /// The provider type (`smtp`, `twilio`, `webhook`, ...).
    pub kind: String,
    /// The channel it carries (`email`, `sms`, `social`).
    pub channel: String,
    pub state: String,
    pub since: i64,
    pub reason: String,
    pub updated_at: i64,
}

/// One way to reach a tenant: `email`, `sms` or `webhook`, and the address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Contact {
    pub tenant_id: String,
    pub channel: String,
    pub address: String,
}

/// What one broadcast did on one channel for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BroadcastDelivery {
    pub broadcast_id: String,
    pub incident_id: String,
    pub tenant_id: String,
    pub channel: String,
    pub address: String,
    pub provider: Option<String>,
    /// `sent` or `failed`.
    pub outcome: String,
    pub detail: String,
    pub at: i64,
}

impl Store {
    /// Opens an incident with its first update.
    pub async fn insert_incident(
        &self,
        id: &str,
        title: &str,
        state: &str,
        body: &str,
        now: i64,
    ) -> Result<()> {
        let _w = self.write_lock().await;
        let resolved = (state == "resolved").then_some(now);
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO incidents (id, title, state, created_at, updated_at, resolved_at) VALUES ($1, $2, $3, $4, $4, $5)")
                .bind(id).bind(title).bind(state).bind(now).bind(resolved).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO incident_updates (incident_id, seq, at, state, body) VALUES ($1, 1, $2, $3, $4)")
                .bind(id).bind(now).bind(state).bind(body).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Adds an update and moves the incident to its state. `NotFound` for an unknown id.
    pub async fn add_incident_update(
        &self,
        id: &str,
        state: &str,
        body: &str,
        now: i64,
    ) -> Result<()> {
        let _w = self.write_lock().await;
        let resolved = (state == "resolved").then_some(now);
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE incidents SET state = $2, updated_at = $3, resolved_at = $4 WHERE id = $1")
                .bind(id).bind(state).bind(now).bind(resolved).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("INSERT INTO incident_updates (incident_id, seq, at, state, body) \
                         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM incident_updates WHERE incident_id = $1")
                .bind(id).bind(now).bind(state).bind(body).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Incidents updated last first, at most `limit`, each with its updates.
    pub async fn incidents(&self, limit: i64) -> Result<Vec<IncidentRecord>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT id, title, state, created_at, updated_at, resolved_at FROM incidents ORDER BY updated_at DESC, id DESC LIMIT $1")
                .bind(limit).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let id: String = r.try_get("id")?;
                let updates = sqlx::query("SELECT at, state, body FROM incident_updates WHERE incident_id = $1 ORDER BY seq")
                    .bind(&id).fetch_all(p).await?
                    .iter().map(|u| Ok(IncidentUpdateRecord { at: u.try_get("at")?, state: u.try_get("state")?, body: u.try_get("body")? }))
                    .collect::<Result<Vec<_>>>()?;
                out.push(IncidentRecord {
                    title: r.try_get("title")?, state: r.try_get("state")?, created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?, resolved_at: r.try_get("resolved_at")?, updates, id,
                });
            }
            Ok(out)
        })
    }

    pub async fn incident(&self, id: &str) -> Result<IncidentRecord> {
        // Few incidents exist; reading the recent ones keeps one query shape.
        self.incidents(10_000)
            .await?
            .into_iter()
            .find(|i| i.id == id)
            .ok_or(StoreError::NotFound)
    }

    /// Records a provider's health (called by delivering nodes on start and on every change).
    pub async fn record_provider_health(&self, h: &ProviderHealthRecord) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO provider_health (provider, kind, channel, state, since, reason, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (provider) DO UPDATE SET kind = excluded.kind, channel = excluded.channel, state = excluded.state, \
                         since = excluded.since, reason = excluded.reason, updated_at = excluded.updated_at")
                .bind(&h.provider).bind(&h.kind).bind(&h.channel).bind(&h.state).bind(h.since).bind(&h.reason).bind(h.updated_at)
                .execute(p).await?;
        });
        Ok(())
    }

    /// Forgets providers that are no longer configured.
    pub async fn retain_provider_health(&self, configured: &[String]) -> Result<()> {
        let stored = self.provider_health().await?;
        let _w = self.write_lock().await;
        for h in stored.iter().filter(|h| !configured.contains(&h.provider)) {
            on_pool!(self, p, Db => {
                sqlx::query("DELETE FROM provider_health WHERE provider = $1").bind(&h.provider).execute(p).await?;
            });
        }
        Ok(())
    }

    pub async fn provider_health(&self) -> Result<Vec<ProviderHealthRecord>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT provider, kind, channel, state, since, reason, updated_at FROM provider_health ORDER BY provider")
                .fetch_all(p).await?;
            rows.iter().map(|r| Ok(ProviderHealthRecord {
                provider: r.try_get("provider")?, kind: r.try_get("kind")?, channel: r.try_get("channel")?, state: r.try_get("state")?,
                since: r.try_get("since")?, reason: r.try_get("reason")?, updated_at: r.try_get("updated_at")?,
            })).collect()
        })
    }

    /// Sets a tenant's contact on one channel (replacing the one it had).
    pub async fn set_contact(&self, c: &Contact, now: i64) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO tenant_contacts (tenant_id, channel, address, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (tenant_id, channel) DO UPDATE SET address = excluded.address, updated_at = excluded.updated_at")
                .bind(&c.tenant_id).bind(&c.channel).bind(&c.address).bind(now).execute(p).await?;
        });
        Ok(())
    }

    /// Removes a tenant's contact on one channel; false when it had none.
    pub async fn remove_contact(&self, tenant_id: &str, channel: &str) -> Result<bool> {
        let _w = self.write_lock().await;
        let n = on_pool!(self, p, Db => {
            sqlx::query("DELETE FROM tenant_contacts WHERE tenant_id = $1 AND channel = $2")
                .bind(tenant_id).bind(channel).execute(p).await?.rows_affected()
        });
        Ok(n == 1)
    }

    /// Contacts of one tenant or of all, by tenant then channel.
    pub async fn contacts(&self, tenant_id: Option<&str>) -> Result<Vec<Contact>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT tenant_id, channel, address FROM tenant_contacts WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY tenant_id, channel")
                .bind(tenant_id).fetch_all(p).await?;
            rows.iter().map(|r| Ok(Contact { tenant_id: r.try_get("tenant_id")?, channel: r.try_get("channel")?, address: r.try_get("address")? })).collect()
        })
    }

    pub async fn record_broadcast_delivery(&self, d: &BroadcastDelivery) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO broadcast_deliveries (broadcast_id, incident_id, tenant_id, channel, address, provider, outcome, detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&d.broadcast_id).bind(&d.incident_id).bind(&d.tenant_id).bind(&d.channel).bind(&d.address)
                .bind(&d.provider).bind(&d.outcome).bind(&d.detail).bind(d.at).execute(p).await?;
        });
        Ok(())
    }

    pub async fn broadcast_deliveries(&self, broadcast_id: &str) -> Result<Vec<BroadcastDelivery>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT broadcast_id, incident_id, tenant_id, channel, address, provider, outcome, detail, at FROM broadcast_deliveries WHERE broadcast_id = $1 ORDER BY tenant_id, channel")
                .bind(broadcast_id).fetch_all(p).await?;
            rows.iter().map(|r| Ok(BroadcastDelivery {
                broadcast_id: r.try_get("broadcast_id")?, incident_id: r.try_get("incident_id")?, tenant_id: r.try_get("tenant_id")?,
                channel: r.try_get("channel")?, address: r.try_get("address")?, provider: r.try_get("provider")?,
                outcome: r.try_get("outcome")?, detail: r.try_get("detail")?, at: r.try_get("at")?,
            })).collect()
        })
    }
}
