//! Operators: admin accounts (argon2id password hash, TOTP secret, lockout counters), their
//! one-time recovery codes and sessions (both stored as SHA-256 hashes), and admin API tokens.

use secrecy::SecretString;
use sqlx::Row;

use super::{Result, SqliteDb, Store, StoreError, is_unique_violation, on_pool};

/// An admin account. Neither the password hash nor the TOTP secret is serialized, and `Debug`
/// shows neither.
#[derive(Clone, serde::Serialize)]
pub struct AdminRecord {
    pub username: String,
    #[serde(skip)]
    pub password_hash: String,
    pub role: String,
    pub tenant_id: Option<String>,
    pub tenant: Option<String>,
    /// Still on its one-time password: TOTP not enrolled yet.
    pub pending: bool,
    #[serde(skip)]
    pub totp_secret: Option<SecretString>,
    #[serde(skip)]
    pub totp_last_step: i64,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

/// A login session; only the hash of its cookie value is stored.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub username: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
}

/// An admin API token (`pst_admin_…`); only its SHA-256 hash is stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdminTokenRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub secret_hash: String,
    pub role: String,
    pub tenant_id: Option<String>,
    pub tenant: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

const ADMIN_SELECT: &str = "SELECT a.username, a.password_hash, a.role, a.tenant_id, t.name AS tenant, a.must_change, a.totp_secret, \
    a.totp_last_step, a.failed_logins, a.locked_until, a.disabled_at, a.created_at, a.last_login_at \
    FROM admins a LEFT JOIN tenants t ON t.id = a.tenant_id";

const TOKEN_SELECT: &str = "SELECT k.id, k.name, k.secret_hash, k.role, k.tenant_id, t.name AS tenant, k.created_by, k.created_at, \
    k.expires_at, k.revoked_at, k.last_used_at FROM admin_tokens k LEFT JOIN tenants t ON t.id = k.tenant_id";

fn admin_from_row<R: Row>(r: &R) -> Result<AdminRecord>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AdminRecord {
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        role: r.try_get("role")?,
        tenant_id: r.try_get("tenant_id")?,
        tenant: r.try_get("tenant")?,
        pending: r.try_get::<i64, _>("must_change")? != 0,
        totp_secret: r
            .try_get::<Option<String>, _>("totp_secret")?
            .map(SecretString::from),
        totp_last_step: r.try_get("totp_last_step")?,
        failed_logins: r.try_get("failed_logins")?,
        locked_until: r.try_get("locked_until")?,
        disabled_at: r.try_get("disabled_at")?,
        created_at: r.try_get("created_at")?,
        last_login_at: r.try_get("last_login_at")?,
    })
}

fn token_from_row<R: Row>(r: &R) -> Result<AdminTokenRecord>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AdminTokenRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        secret_hash: r.try_get("secret_hash")?,
        role: r.try_get("role")?,
        tenant_id: r.try_get("tenant_id")?,
        tenant: r.try_get("tenant")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

impl Store {
    /// A new account on a one-time password (pending until it enrols TOTP).
    pub async fn insert_admin(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
        tenant_id: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let _w = self.write_lock().await;
        let r = on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO admins (username, password_hash, must_change, created_at, role, tenant_id) VALUES ($1, $2, 1, $3, $4, $5)")
                .bind(username).bind(password_hash).bind(now).bind(role).bind(tenant_id).execute(p).await.map(|_| ())
        });
        match r {
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(format!("admin {username:?}")))
            }
            r => Ok(r?),
        }
    }

    pub async fn admin(&self, username: &str) -> Result<AdminRecord> {
        let sql = format!("{ADMIN_SELECT} WHERE a.username = $1");
        on_pool!(self, p, Db => {
            let r = sqlx::query(&sql).bind(username).fetch_optional(p).await?.ok_or(StoreError::NotFound)?;
            admin_from_row(&r)
        })
    }

    pub async fn list_admins(&self) -> Result<Vec<AdminRecord>> {
        let sql = format!("{ADMIN_SELECT} ORDER BY a.username");
        on_pool!(self, p, Db => {
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            rows.iter().map(admin_from_row).collect()
        })
    }

    /// Disables an account and ends its sessions.
    pub async fn disable_admin(&self, username: &str, now: i64) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE admins SET disabled_at = COALESCE(disabled_at, $1) WHERE username = $2")
                .bind(now).bind(username).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM admin_sessions WHERE username = $1").bind(username).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Counts a failed login; at `max` failures in a row the account is locked until
    /// `locked_until` (and the count starts again). Returns the lock, if one was set.
    pub async fn admin_login_failed(
        &self,
        username: &str,
        max: i64,
        locked_until: i64,
    ) -> Result<Option<i64>> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let r = sqlx::query(
                "UPDATE admins SET locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END, \
                 failed_logins = CASE WHEN failed_logins + 1 >= $1 THEN 0 ELSE failed_logins + 1 END \
                 WHERE username = $3 RETURNING locked_until")
                .bind(max).bind(locked_until).bind(username).fetch_optional(p).await?;
            Ok(match r {
                Some(r) => r.try_get::<Option<i64>, _>("locked_until")?.filter(|t| *t == locked_until),
                None => None,
            })
        })
    }

    /// A successful login: the failure count starts again.
    pub async fn admin_login_succeeded(&self, username: &str, now: i64) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("UPDATE admins SET failed_logins = 0, locked_until = NULL, last_login_at = $1 WHERE username = $2")
                .bind(now).bind(username).execute(p).await?;
        });
        Ok(())
    }

    /// Claims a TOTP time step: false when this or a later step was used already (a code is
    /// good once).
    pub async fn claim_totp_step(&self, username: &str, step: i64) -> Result<bool> {
        let _w = self.write_lock().await;
        let n = on_pool!(self, p, Db => {
            sqlx::query("UPDATE admins SET totp_last_step = $1 WHERE username = $2 AND totp_last_step < $1")
                .bind(step).bind(username).execute(p).await?.rows_affected()
        });
        Ok(n == 1)
    }

    /// A pending account's enrolment: a fresh TOTP secret and recovery codes (hashes),
    /// replacing any earlier, unfinished one.
    pub async fn begin_enrolment(
        &self,
        username: &str,
        totp_secret: &str,
        recovery_hashes: &[String],
    ) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE admins SET totp_secret = $1, totp_last_step = 0 WHERE username = $2 AND must_change = 1")
                .bind(totp_secret).bind(username).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM admin_recovery_codes WHERE username = $1").bind(username).execute(&mut *tx).await?;
            for h in recovery_hashes {
                sqlx::query("INSERT INTO admin_recovery_codes (username, code_hash) VALUES ($1, $2)")
                    .bind(username).bind(h).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Ends enrolment: the new password replaces the one-time one and the account is active.
    pub async fn activate_admin(&self, username: &str, password_hash: &str) -> Result<()> {
        let _w = self.write_lock().await;
        let n = on_pool!(self, p, Db => {
            sqlx::query("UPDATE admins SET password_hash = $1, must_change = 0 WHERE username = $2 AND must_change = 1 AND totp_secret IS NOT NULL")
                .bind(password_hash).bind(username).execute(p).await?.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Uses a recovery code (by hash); false when unknown or used before.
    pub async fn use_recovery_code(
        &self,
        username: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<bool> {
        let _w = self.write_lock().await;
        let n = on_pool!(self, p, Db => {
            sqlx::query("UPDATE admin_recovery_codes SET used_at = $1 WHERE username = $2 AND code_hash = $3 AND used_at IS NULL")
                .bind(now).bind(username).bind(code_hash).execute(p).await?.rows_affected()
        });
        Ok(n == 1)
    }

    // ---- sessions ------------------------------------------------------------------------

    pub async fn insert_session(
        &self,
        id_hash: &str,
        username: &str,
        now: i64,
        expires_at: i64,
        source_ip: Option<&str>,
    ) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO admin_sessions (id_hash, username, created_at, expires_at, last_seen_at, source_ip) VALUES ($1, $2, $3, $4, $3, $5)")
                .bind(id_hash).bind(username).bind(now).bind(expires_at).bind(source_ip).execute(p).await?;
        });
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> Result<SessionRecord> {
        on_pool!(self, p, Db => {
            let r = sqlx::query("SELECT username, created_at, expires_at, last_seen_at FROM admin_sessions WHERE id_hash = $1")
                .bind(id_hash).fetch_optional(p).await?.ok_or(StoreError::NotFound)?;
            Ok(SessionRecord {
                username: r.try_get("username")?, created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?, last_seen_at: r.try_get("last_seen_at")?,
            })
        })
    }

    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("UPDATE admin_sessions SET last_seen_at = $1 WHERE id_hash = $2").bind(now).bind(id_hash).execute(p).await?;
        });
        Ok(())
    }

    /// Ends a session (logout, expiry); also drops every session that has run out.
    pub async fn end_session(&self, id_hash: &str, now: i64) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("DELETE FROM admin_sessions WHERE id_hash = $1 OR expires_at <= $2").bind(id_hash).bind(now).execute(p).await?;
        });
        Ok(())
    }

    // ---- admin tokens --------------------------------------------------------------------

    pub async fn insert_admin_token(&self, t: &AdminTokenRecord) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("INSERT INTO admin_tokens (id, name, secret_hash, role, tenant_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&t.id).bind(&t.name).bind(&t.secret_hash).bind(&t.role).bind(&t.tenant_id).bind(&t.created_by)
                .bind(t.created_at).bind(t.expires_at).execute(p).await?;
        });
        Ok(())
    }

    pub async fn admin_token(&self, id: &str) -> Result<AdminTokenRecord> {
        let sql = format!("{TOKEN_SELECT} WHERE k.id = $1");
        on_pool!(self, p, Db => {
            let r = sqlx::query(&sql).bind(id).fetch_optional(p).await?.ok_or(StoreError::NotFound)?;
            token_from_row(&r)
        })
    }

    pub async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenRecord>> {
        let sql = format!("{TOKEN_SELECT} ORDER BY k.created_at");
        on_pool!(self, p, Db => {
            let rows = sqlx::query(&sql).fetch_all(p).await?;
            rows.iter().map(token_from_row).collect()
        })
    }

    pub async fn revoke_admin_token(&self, id: &str, now: i64) -> Result<()> {
        let _w = self.write_lock().await;
        let n = on_pool!(self, p, Db => {
            sqlx::query("UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(now).bind(id).execute(p).await?.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn touch_admin_token(&self, id: &str, now: i64) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            sqlx::query("UPDATE admin_tokens SET last_used_at = $1 WHERE id = $2").bind(now).bind(id).execute(p).await?;
        });
        Ok(())
    }
}

impl std::fmt::Debug for AdminRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminRecord")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("tenant_id", &self.tenant_id)
            .field("pending", &self.pending)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub async fn upsert_admin(&self, username: &str, password_hash: &str, now: i64) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            // Back on a one-time password: an owner again, TOTP to be enrolled anew.
            sqlx::query("INSERT INTO admins (username, password_hash, must_change, created_at) VALUES ($1, $2, 1, $3) \
                         ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, must_change = 1, \
                         role = 'owner', tenant_id = NULL, totp_secret = NULL, totp_last_step = 0, failed_logins = 0, \
                         locked_until = NULL, disabled_at = NULL")
                .bind(username).bind(password_hash).bind(now).execute(p).await?;
        });
        Ok(())
    }
}
