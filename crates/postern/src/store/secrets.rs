//! Encrypted secrets: rows of ciphertext only (see `crate::secrets` for the envelope).

use sqlx::Row;

use super::{Result, SqliteDb, Store, StoreError, on_pool};

/// A stored secret: the value and its data key, both sealed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretRow {
    pub name: String,
    pub version: i64,
    pub kek_id: String,
    #[serde(skip)]
    pub wrapped_key: String,
    #[serde(skip)]
    pub ciphertext: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "name, version, kek_id, wrapped_key, ciphertext, created_at, updated_at";

fn secret_from_row<R: Row>(r: &R) -> Result<SecretRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(SecretRow {
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        kek_id: r.try_get("kek_id")?,
        wrapped_key: r.try_get("wrapped_key")?,
        ciphertext: r.try_get("ciphertext")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Stores a sealed secret; a new version when the name exists. Returns the version.
    pub async fn put_secret(
        &self,
        name: &str,
        kek_id: &str,
        wrapped_key: &str,
        ciphertext: &str,
        now: i64,
    ) -> Result<i64> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let r = sqlx::query("INSERT INTO secrets (name, version, kek_id, wrapped_key, ciphertext, created_at, updated_at) VALUES ($1, 1, $2, $3, $4, $5, $5) \
                                 ON CONFLICT (name) DO UPDATE SET version = secrets.version + 1, kek_id = excluded.kek_id, wrapped_key = excluded.wrapped_key, \
                                 ciphertext = excluded.ciphertext, updated_at = excluded.updated_at RETURNING version")
                .bind(name).bind(kek_id).bind(wrapped_key).bind(ciphertext).bind(now).fetch_one(p).await?;
            Ok(r.try_get("version")?)
        })
    }

    pub async fn secret(&self, name: &str) -> Result<Option<SecretRow>> {
        let sql = format!("SELECT {COLUMNS} FROM secrets WHERE name = $1");
        on_pool!(self, p, Db => {
            match sqlx::query(&sql).bind(name).fetch_optional(p).await? {
                Some(r) => Ok(Some(secret_from_row(&r)?)),
                None => Ok(None),
            }
        })
    }

    /// Every secret's row (names, versions, KEK ids; values still sealed).
    pub async fn list_secrets(&self) -> Result<Vec<SecretRow>> {
        let sql = format!("SELECT {COLUMNS} FROM secrets ORDER BY name");
        on_pool!(self, p, Db => {
            sqlx::query(&sql).fetch_all(p).await?.iter().map(secret_from_row).collect()
        })
    }

    /// Replaces every row's wrapped data key with `rewrap(row)` = (kek_id, wrapped), in one
    /// transaction that holds the table against concurrent writers: all rows or none.
    pub async fn rewrap_secrets<E>(
        &self,
        now: i64,
        rewrap: impl Fn(&SecretRow) -> std::result::Result<(String, String), E>,
    ) -> std::result::Result<u64, E>
    where
        E: From<StoreError>,
    {
        let lock = match self {
            Store::Postgres(_) => " FOR UPDATE",
            Store::Sqlite(_) => "",
        };
        let sql = format!("SELECT {COLUMNS} FROM secrets ORDER BY name{lock}");
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await.map_err(StoreError::from)?;
            // A write first: SQLite takes its write lock here, before the rows are read.
            sqlx::query("UPDATE secrets SET version = version WHERE 1 = 0").execute(&mut *tx).await.map_err(StoreError::from)?;
            let rows = sqlx::query(&sql).fetch_all(&mut *tx).await.map_err(StoreError::from)?;
            let mut n = 0;
            for r in &rows {
                let row = secret_from_row(r)?;
                let (kek_id, wrapped) = rewrap(&row)?;
                sqlx::query("UPDATE secrets SET kek_id = $1, wrapped_key = $2, updated_at = $3 WHERE name = $4")
                    .bind(kek_id).bind(wrapped).bind(now).bind(&row.name)
                    .execute(&mut *tx).await.map_err(StoreError::from)?;
                n += 1;
            }
            tx.commit().await.map_err(StoreError::from)?;
            Ok(n)
        })
    }
}
