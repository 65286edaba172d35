//! Tenants and API keys: keys stored as SHA-256 hashes with their policy, rotation grace and
//! last use.

use super::*;

impl Store {
    const KEY_SELECT: &str = "SELECT k.id, k.tenant_id, t.name AS tenant, k.secret_hash, k.scopes, k.description, k.created_at, k.revoked_at, \
        k.policy, k.expires_at, k.grace_until, k.successor_id, k.last_used_at, k.last_ip FROM api_keys k JOIN tenants t ON t.id = k.tenant_id";

    pub async fn create_tenant(&self, name: &str, now: i64) -> Result<Tenant> {
        let t = Tenant {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_owned(),
            created_at: now,
        };
        let _w = self.write_lock().await;
        let r = on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&t.id).bind(&t.name).bind(t.created_at).execute(p).await.map(|_| ())
        });
        match r {
            Ok(_) => Ok(t),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(format!("tenant {name:?}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY name").fetch_all(p).await?;
            rows.iter().map(|r| Ok(Tenant { id: r.try_get("id")?, name: r.try_get("name")?, created_at: r.try_get("created_at")? })).collect()
        })
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Tenant> {
        on_pool!(self, p, Db => {
            let r = sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = $1")
                .bind(name).fetch_optional(p).await?.ok_or(StoreError::NotFound)?;
            Ok(Tenant { id: r.try_get("id")?, name: r.try_get("name")?, created_at: r.try_get("created_at")? })
        })
    }

    pub async fn insert_key(&self, k: &KeyRecord) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO api_keys (id, tenant_id, secret_hash, scopes, description, created_at, policy, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&k.id).bind(&k.tenant_id).bind(&k.secret_hash).bind(&k.scopes).bind(&k.description).bind(k.created_at)
                .bind(policy_json(&k.policy)).bind(k.expires_at)
                .execute(p).await?;
        });
        Ok(())
    }

    /// Issues `new` as the successor of `old_id`, which keeps working until `grace_until`.
    pub async fn rotate_key(&self, old_id: &str, new: &KeyRecord, grace_until: i64) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE api_keys SET grace_until = $1, successor_id = $2 WHERE id = $3 AND revoked_at IS NULL AND successor_id IS NULL")
                .bind(grace_until).bind(&new.id).bind(old_id).execute(&mut *tx).await?.rows_affected();
            if n != 1 {
                return Err(StoreError::Conflict(format!("a successor of key {old_id} (or the key is revoked)")));
            }
            sqlx::query("INSERT INTO api_keys (id, tenant_id, secret_hash, scopes, description, created_at, policy, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&new.id).bind(&new.tenant_id).bind(&new.secret_hash).bind(&new.scopes).bind(&new.description).bind(new.created_at)
                .bind(policy_json(&new.policy)).bind(new.expires_at)
                .execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records when and from where keys were last used (batched by the caller).
    pub async fn record_key_usage(&self, uses: &[(String, i64, Option<String>)]) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            for (id, at, ip) in uses {
                sqlx::query("UPDATE api_keys SET last_used_at = $1, last_ip = COALESCE($2, last_ip) WHERE id = $3")
                    .bind(at).bind(ip).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Messages accepted from a key since `since` (for its daily limit).
    pub async fn key_messages_since(&self, key_id: &str, since: i64) -> Result<i64> {
        on_pool!(self, p, Db => {
            Ok(sqlx::query("SELECT COUNT(*) AS n FROM messages WHERE key_id = $1 AND created_at >= $2")
                .bind(key_id).bind(since).fetch_one(p).await?.try_get("n")?)
        })
    }

    pub async fn key(&self, id: &str) -> Result<KeyRecord> {
        let sql = format!("{} WHERE k.id = $1", Self::KEY_SELECT);
        on_pool!(self, p, Db => {
            let r = sqlx::query(&sql).bind(id).fetch_optional(p).await?.ok_or(StoreError::NotFound)?;
            key_from_row(&r)
        })
    }

    pub async fn list_keys(&self, tenant_id: Option<&str>) -> Result<Vec<KeyRecord>> {
        let sql = format!(
            "{} WHERE ($1 IS NULL OR k.tenant_id = $1) ORDER BY t.name, k.created_at",
            Self::KEY_SELECT
        );
        on_pool!(self, p, Db => {
            let rows = sqlx::query(&sql).bind(tenant_id).fetch_all(p).await?;
            rows.iter().map(key_from_row).collect()
        })
    }

    /// Revokes a key; revoking twice keeps the first time.
    pub async fn revoke_key(&self, id: &str, now: i64) -> Result<()> {
        let _w = self.write_lock().await;
        let n = on_pool!(self, p, Db => {
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(now).bind(id).execute(p).await?.rows_affected()
        });
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }
}

fn key_from_row<R: Row>(r: &R) -> Result<KeyRecord>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(KeyRecord {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        tenant: r.try_get("tenant")?,
        secret_hash: r.try_get("secret_hash")?,
        scopes: r.try_get("scopes")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        policy: match r.try_get::<Option<String>, _>("policy")? {
            Some(j) => serde_json::from_str(&j)
                .map_err(|e| StoreError::Corrupt(format!("key policy: {e}")))?,
            None => Default::default(),
        },
        expires_at: r.try_get("expires_at")?,
        grace_until: r.try_get("grace_until")?,
        successor_id: r.try_get("successor_id")?,
        last_used_at: r.try_get("last_used_at")?,
        last_ip: r.try_get("last_ip")?,
    })
}

fn policy_json(p: &crate::domain::KeyPolicy) -> Option<String> {
    (*p != crate::domain::KeyPolicy::default())
        .then(|| serde_json::to_string(p).unwrap_or_default())
}
