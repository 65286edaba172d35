//! The one place that talks SQL. [`Store`] is an enum over the two backends; the queries that
//! read the same on both are written once, through [`on_pool!`], and each backend file holds
//! only what differs (connection setup, schema, claiming).

mod accept;
mod admins;
mod alerts;
mod audit;
mod console;
mod feedback;
mod guard_memory;
mod held_summary;
mod leaks;
mod notices;
mod pauses;
mod postgres;
mod routes;
mod secrets;
mod sqlite;
mod status;
pub mod suppressions;

pub use accept::AcceptCommitter;
pub use admins::{AdminRecord, AdminTokenRecord, SessionRecord};
pub use alerts::Alert;
pub use console::{EventCount, HeldDetail};
pub use feedback::{FeedbackRecord, SentMessage};
pub use held_summary::HeldSummary;
pub use notices::Notice;
pub use pauses::{HeldFilter, HeldMessage};
pub use routes::RouteMove;
pub use secrets::SecretRow;
pub use status::{
    BroadcastDelivery, Contact, IncidentRecord, IncidentUpdateRecord, ProviderHealthRecord,
};
pub use suppressions::Suppression;

use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row, SqlitePool};

use crate::domain::{EventKind, RecipientState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("not found")]
    NotFound,
    #[error("{0} already exists")]
    Conflict(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("unsupported database url {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

/// SQLite allows one writer at a time. Writers of this process queue on an async mutex rather
/// than on SQLite's busy handler, which sleeps in steps of up to 100 ms and would turn lock
/// contention between the acceptor and the workers into latency.
#[derive(Clone, Debug)]
pub struct SqliteDb {
    pool: SqlitePool,
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// For a database file: the accepts' own connection and the write-ahead log it appends to.
    accept: Option<std::sync::Arc<sqlite::AcceptConn>>,
}

/// Checkpoint rounds while writes go on, at most, before the flush of the database file (and,
/// on a restart, the last round under the write lock).
const CHECKPOINT_ROUNDS: usize = 3;
/// A round this short left little behind it: the flush (and the locked round) follow at once.
const CHECKPOINT_SHORT_ROUND: std::time::Duration = std::time::Duration::from_millis(2);

/// What is left to do before a commit from [`Store::insert_messages_deferred`] is durable.
#[derive(Debug)]
#[must_use = "the messages are not durable until the sync has been waited for"]
pub enum Pending {
    /// The commit already reached the disk (PostgreSQL, an in-memory SQLite database).
    Durable,
    /// The commit is in SQLite's write-ahead log, not yet flushed.
    /// The number is the commit's own ([`sqlite::Wal::flush_through`]).
    WalSync(std::sync::Arc<sqlite::Wal>, u64),
}

impl Pending {
    /// Returns once the commit is on the disk: true if this wait flushed the write-ahead log
    /// itself, false if an earlier flush covered it (or it was durable already). SQLite's
    /// `synchronous = FULL` would flush inside the commit, with the write lock held, so that
    /// no other commit could start while the disk works; done here, after the lock is
    /// released, the next group commits run while this one flushes.
    pub async fn wait(self) -> std::io::Result<bool> {
        if let Pending::Durable = self {
            return Ok(false);
        }
        tokio::task::spawn_blocking(move || self.wait_blocking())
            .await
            .map_err(std::io::Error::other)?
    }

    /// [`Pending::wait`] on the calling thread (blocking; never on an async thread).
    pub fn wait_blocking(self) -> std::io::Result<bool> {
        match self {
            Pending::WalSync(wal, commit) => wal.flush_through(commit),
            Pending::Durable => Ok(false),
        }
    }
}

/// Runs the same body against whichever pool this store holds. `$db` names the backend's
/// `sqlx::Database` type inside the body.
macro_rules! on_pool {
    ($store:expr, $pool:ident, $db:ident => $body:expr) => {
        match $store {
            Store::Sqlite(SqliteDb { pool: $pool, .. }) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
            Store::Postgres($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct KeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub tenant: String,
    #[serde(skip)]
    pub secret_hash: String,
    pub scopes: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub policy: crate::domain::KeyPolicy,
    pub expires_at: Option<i64>,
    /// Set when the key was rotated: it keeps working until then.
    pub grace_until: Option<i64>,
    pub successor_id: Option<String>,
    pub last_used_at: Option<i64>,
    pub last_ip: Option<String>,
}

/// A recipient and where its delivery stands; stored as JSON with the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    pub state: RecipientState,
}

/// A message ready to be made durable.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub tenant_id: String,
    pub key_id: Option<String>,
    pub source: &'static str,
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub subject: Option<String>,
    pub message_id_header: String,
    pub raw: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
    /// `(key, hash of the request)`: a repeat of the key returns the first answer.
    pub idempotency: Option<(String, String)>,
    /// Accepted as held: `(tag of the pause or action holding it, why)`.
    pub held: Option<(String, String)>,
}

/// What [`Store::insert_messages`] did with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Newly durable.
    New { id: String, status: String },
    /// The idempotency key was seen before with the same request: the first answer.
    Replay { id: String, status: String },
    /// The idempotency key was seen before with a different request.
    KeyReused { id: String },
}

/// A message claimed by a worker for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub tenant_id: String,
    pub key_id: Option<String>,
    pub mail_from: String,
    pub recipients: Vec<Recipient>,
    pub raw: Vec<u8>,
    pub message_id_header: String,
    pub attempts: i64,
    pub created_at: i64,
    pub expires_at: i64,
    /// The previous attempt may have reached the provider before a crash.
    pub in_doubt: bool,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub message_id: String,
    pub at: i64,
    pub kind: EventKind,
    pub recipient: Option<String>,
    pub provider: Option<String>,
    pub detail: Option<String>,
}

/// The result of one attempt, written back in batches.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: String,
    /// When the message was accepted: a retry that should jump the queue is due at this time,
    /// so it goes before messages accepted after it.
    pub created_at: i64,
    pub status: crate::domain::MessageStatus,
    /// For a held outcome: the tag of the pause or action that holds it.
    pub held_by: Option<String>,
    pub recipients: Vec<Recipient>,
    pub next_attempt_at: i64,
    pub provider: Option<String>,
    pub last_error: Option<String>,
    pub at: i64,
    pub events: Vec<NewEvent>,
    /// Recipients to add to the tenant's suppression list: (address, reason).
    pub suppress: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub at: i64,
    pub kind: String,
    pub recipient: Option<String>,
    pub provider: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub id: String,
    pub tenant_id: String,
    pub status: String,
    pub mail_from: String,
    pub recipients: Vec<Recipient>,
    pub subject: Option<String>,
    pub message_id_header: String,
    pub attempts: i64,
    pub created_at: i64,
    pub events: Vec<StoredEvent>,
}

/// Splits rows into chunks of 64, 16, 4 and 1, so multi-row statements come in four shapes
/// only and stay in the prepared-statement cache, instead of one new statement to prepare for
/// every batch size.
fn cacheable_chunks<T>(rows: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let n = [64, 16, 4, 1]
            .into_iter()
            .find(|&n| rest.len() >= n)
            .unwrap_or(1);
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

fn recipients_json(r: &[Recipient]) -> String {
    serde_json::to_string(r).unwrap_or_else(|_| "[]".into())
}

fn parse_recipients(id: &str, s: &str) -> Result<Vec<Recipient>> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Corrupt(format!("message {id} recipients: {e}")))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

const CLAIM_COLUMNS: &str = "id, tenant_id, key_id, mail_from, recipients, raw, message_id_header, attempts, created_at, expires_at, in_doubt";

fn claimed_from_row<R: Row>(row: &R) -> Result<Claimed>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let recipients = parse_recipients(&id, &row.try_get::<String, _>("recipients")?)?;
    Ok(Claimed {
        tenant_id: row.try_get("tenant_id")?,
        key_id: row.try_get("key_id")?,
        mail_from: row.try_get("mail_from")?,
        recipients,
        raw: row.try_get("raw")?,
        message_id_header: row.try_get("message_id_header")?,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        in_doubt: row.try_get::<i64, _>("in_doubt")? != 0,
        id,
    })
}

impl Store {
    /// Connects and runs migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let store = if url.starts_with("sqlite:") {
            Store::Sqlite(SqliteDb {
                pool: sqlite::connect(url).await?,
                writer: Default::default(),
                accept: None,
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Store::Postgres(postgres::connect(url).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        store.migrate().await?;
        Ok(match store {
            Store::Sqlite(mut db) => {
                db.accept = sqlite::connect_accept(&db.pool, url).await?;
                Store::Sqlite(db)
            }
            pg => pg,
        })
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Least time between the starts of two flushes of SQLite's log for accepts
    /// ([`sqlite::Wal::set_pacing`]); nothing on PostgreSQL or in-memory SQLite.
    pub fn set_flush_pacing(&self, pace: std::time::Duration) {
        if let Store::Sqlite(SqliteDb {
            accept: Some(accept),
            ..
        }) = self
        {
            accept.wal().set_pacing(pace);
        }
    }

    /// Held across a write transaction on SQLite; nothing on PostgreSQL.
    async fn write_lock(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self {
            Store::Sqlite(db) => Some(db.writer.lock().await),
            Store::Postgres(_) => None,
        }
    }

    /// Copies the SQLite write-ahead log into the database and, with `restart`, makes sure
    /// the log starts over from its beginning. A no-op on PostgreSQL.
    ///
    /// SQLite reuses the log from its start only when a write begins with every frame in it
    /// already copied. A PASSIVE checkpoint never blocks the writer, so under a steady stream
    /// of accepts it never catches up: it copies the frames that were there when it began
    /// while new ones arrive behind it, the log grows for as long as the load lasts (about
    /// 1 GB in 12 s at 10,000 accepts/s), and every commit appends to new blocks. So: copy in
    /// bulk while writes go on, again for what arrived meanwhile (each round is shorter, so
    /// less arrives during it), flush the database file (SQLite flushes it only in a round
    /// no commit overlapped, so under load that would be the last round, with the writer
    /// waiting), and copy the last few frames holding the write lock (about a millisecond's
    /// worth). The next commit then restarts the log, unless a reader still holds a snapshot
    /// of the old frames; the next checkpoint tries again.
    ///
    /// Without `restart`, the checkpoint stops before the write lock: it copies and flushes
    /// but never holds up a commit. The locked round is the one part of a checkpoint that
    /// does (1-2.5 ms here, most of it the flush of the database file that makes the copy
    /// final), so the maintenance loop asks for it only on every 20th tick: between two
    /// restarts the log grows by what was committed meanwhile, and each tick still copies
    /// and flushes what is new, so the locked round has little left to do.
    ///
    /// Returns what the last round found ([`Checkpointed`]).
    pub async fn checkpoint(&self, restart: bool) -> Result<Checkpointed> {
        let Store::Sqlite(db) = self else {
            return Ok(Checkpointed::default());
        };
        async fn checkpoint(c: &mut sqlx::SqliteConnection) -> Result<Checkpointed> {
            let (busy, log, done): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(c)
                    .await?;
            Ok(Checkpointed {
                frames: log.max(0),
                left: if busy != 0 { -1 } else { (log - done).max(0) },
            })
        }
        // The connection is taken before the lock, so the writer never waits for the pool.
        let mut c = db.pool.acquire().await?;
        let mut last = Checkpointed::default();
        for _ in 0..CHECKPOINT_ROUNDS {
            let round = std::time::Instant::now();
            last = checkpoint(&mut c).await?;
            if last.left < 0 {
                return Ok(last);
            }
            if round.elapsed() < CHECKPOINT_SHORT_ROUND {
                break;
            }
        }
        if let Some(accept) = &db.accept {
            accept.sync_database().await?;
        }
        if !restart {
            return Ok(last);
        }
        let _w = db.writer.lock().await;
        checkpoint(&mut c).await
    }

    pub async fn close(&self) {
        if let Store::Sqlite(SqliteDb {
            accept: Some(accept),
            ..
        }) = self
        {
            accept.close();
        }
        on_pool!(self, p, Db => p.close().await)
    }

    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, p, Db => { sqlx::query("SELECT 1").execute(p).await?; });
        Ok(())
    }

    // ---- tenants -------------------------------------------------------------------------

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

    // ---- API keys ------------------------------------------------------------------------

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

    const KEY_SELECT: &str = "SELECT k.id, k.tenant_id, t.name AS tenant, k.secret_hash, k.scopes, k.description, k.created_at, k.revoked_at, \
        k.policy, k.expires_at, k.grace_until, k.successor_id, k.last_used_at, k.last_ip FROM api_keys k JOIN tenants t ON t.id = k.tenant_id";

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

    // ---- admins --------------------------------------------------------------------------

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

    pub async fn message(&self, tenant_id: &str, id: &str) -> Result<MessageRecord> {
        on_pool!(self, p, Db => {
            let r = sqlx::query("SELECT id, tenant_id, status, mail_from, recipients, subject, message_id_header, attempts, created_at FROM messages WHERE id = $1 AND tenant_id = $2")
                .bind(id).bind(tenant_id).fetch_optional(p).await?.ok_or(StoreError::NotFound)?;
            let evs = sqlx::query("SELECT at, kind, recipient, provider, detail FROM message_events WHERE message_id = $1 ORDER BY id")
                .bind(id).fetch_all(p).await?;
            let events = evs.iter().map(|e| Ok(StoredEvent {
                at: e.try_get("at")?, kind: e.try_get("kind")?, recipient: e.try_get("recipient")?,
                provider: e.try_get("provider")?, detail: e.try_get("detail")?,
            })).collect::<Result<Vec<_>>>()?;
            let id: String = r.try_get("id")?;
            Ok(MessageRecord {
                recipients: parse_recipients(&id, &r.try_get::<String, _>("recipients")?)?,
                tenant_id: r.try_get("tenant_id")?, status: r.try_get("status")?, mail_from: r.try_get("mail_from")?,
                subject: r.try_get("subject")?, message_id_header: r.try_get("message_id_header")?,
                attempts: r.try_get("attempts")?, created_at: r.try_get("created_at")?, events, id,
            })
        })
    }

    // ---- messages: deliver ---------------------------------------------------------------

    /// Claims up to `limit` due messages for this node; the attempt is counted before any
    /// provider is called.
    pub async fn claim_due(
        &self,
        node: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>> {
        let sql = match self {
            Store::Sqlite(_) => sqlite::claim_sql(),
            Store::Postgres(_) => postgres::claim_sql(),
        };
        let _w = self.write_lock().await;
        let mut out = on_pool!(self, p, Db => {
            let rows = sqlx::query(&sql).bind(node).bind(now + lease_ms).bind(now).bind(limit).fetch_all(p).await?;
            rows.iter().map(claimed_from_row).collect::<Result<Vec<_>>>()?
        });
        out.sort_by_key(|c| c.created_at);
        Ok(out)
    }

    /// Applies the schema migrations not yet applied, in one transaction.
    async fn migrate(&self) -> Result<()> {
        let (types, lock) = match self {
            Store::Sqlite(_) => (sqlite::SCHEMA_TYPES, None),
            Store::Postgres(_) => (postgres::SCHEMA_TYPES, Some(postgres::MIGRATION_LOCK)),
        };
        let schema = types
            .iter()
            .fold(include_str!("schema.sql").to_owned(), |s, (k, v)| {
                s.replace(k, v)
            });
        let migrations = [
            Migration {
                version: 1,
                sql: schema,
            },
            Migration {
                version: 2,
                sql: include_str!("routes.sql").to_owned(),
            },
            Migration {
                version: 3,
                sql: include_str!("pauses.sql").to_owned(),
            },
            Migration {
                version: 4,
                sql: include_str!("suppressions.sql").to_owned(),
            },
            Migration {
                version: 5,
                sql: include_str!("keys.sql").to_owned(),
            },
            Migration {
                version: 6,
                sql: include_str!("feedback.sql").to_owned(),
            },
            Migration {
                version: 7,
                sql: include_str!("guard.sql").to_owned(),
            },
            Migration {
                version: 8,
                sql: include_str!("audit.sql").to_owned(),
            },
            Migration {
                version: 9,
                sql: include_str!("secrets.sql").to_owned(),
            },
            Migration {
                version: 10,
                sql: include_str!("admins.sql").to_owned(),
            },
            Migration {
                version: 11,
                sql: include_str!("guard_memory.sql").to_owned(),
            },
            Migration {
                version: 12,
                sql: include_str!("notices.sql").to_owned(),
            },
            Migration {
                version: 14,
                sql: include_str!("status.sql").to_owned(),
            },
        ];
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            if let Some(lock) = lock {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                .execute(&mut *tx).await?;
            // Versions are handed out in blocks, so a lower one can arrive after a higher one
            // was applied: every version not applied yet runs, in order.
            let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
                .fetch_all(&mut *tx).await?.iter().map(|r| r.try_get("version")).collect::<std::result::Result<_, _>>()?;
            let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock) / 1000;
            let mut migrations = migrations;
            migrations.sort_by_key(|m| m.version);
            for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
                sqlx::raw_sql(&m.sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(m.version).bind(now).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Puts back claims that can no longer finish: this node's own (after a crash or restart)
    /// and any whose lease ran out. They are marked in doubt, since the provider may have
    /// taken them before the crash. Returns how many.
    pub async fn recover_claims(&self, node: &str, now: i64, all_local: bool) -> Result<u64> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            let rows = sqlx::query(
                "UPDATE messages SET status = 'queued', in_doubt = 1, claimed_by = NULL, lease_until = NULL, next_attempt_at = $1, updated_at = $1 \
                 WHERE status = 'sending' AND ($2 = 1 OR claimed_by = $3 OR lease_until < $1) RETURNING id")
                .bind(now).bind(all_local as i64).bind(node).fetch_all(&mut *tx).await?;
            if !rows.is_empty() {
                let mut qb = sqlx::QueryBuilder::<Db>::new("INSERT INTO message_events (message_id, at, kind, detail) ");
                qb.push_values(rows.iter(), |mut b, r| {
                    b.push_bind(r.try_get::<String, _>("id").unwrap_or_default()).push_bind(now)
                        .push_bind(EventKind::Recovered.as_str())
                        .push_bind("claim released after a restart or an expired lease; the last attempt may have reached the provider");
                });
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(rows.len() as u64)
        })
    }

    /// Writes a batch of attempt results in one transaction. A completion only applies while
    /// this node still holds the claim, so a worker whose lease was taken over cannot
    /// overwrite the newer attempt.
    pub async fn complete(&self, node: &str, batch: &[Completion]) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            let mut applied = Vec::with_capacity(batch.len());
            for c in batch {
                let n = sqlx::query(
                    "UPDATE messages SET status = $1, recipients = $2, next_attempt_at = $3, provider = COALESCE($4, provider), \
                     last_error = $5, updated_at = $6, claimed_by = NULL, lease_until = NULL, in_doubt = 0, held_by = $9 \
                     WHERE id = $7 AND status = 'sending' AND claimed_by = $8")
                    .bind(c.status.as_str()).bind(recipients_json(&c.recipients)).bind(c.next_attempt_at)
                    .bind(&c.provider).bind(&c.last_error).bind(c.at).bind(&c.id).bind(node).bind(&c.held_by)
                    .execute(&mut *tx).await?.rows_affected();
                if n == 1 { applied.push(c); }
            }
            for c in &applied {
                for (address, reason) in &c.suppress {
                    sqlx::query("INSERT INTO suppressions (tenant_id, address, reason, source, detail, created_at) \
                                 SELECT tenant_id, $2, $3, 'delivery', $4, $5 FROM messages WHERE id = $1 ON CONFLICT (tenant_id, address) DO NOTHING")
                        .bind(&c.id).bind(suppressions::normalize(address)).bind(reason)
                        .bind(format!("message {}", c.id)).bind(c.at).execute(&mut *tx).await?;
                }
            }
            let events: Vec<&NewEvent> = applied.iter().flat_map(|c| c.events.iter()).collect();
            for chunk in cacheable_chunks(&events) {
                let mut qb = sqlx::QueryBuilder::<Db>::new("INSERT INTO message_events (message_id, at, kind, recipient, provider, detail) ");
                qb.push_values(chunk.iter(), |mut b, e| {
                    b.push_bind(e.message_id.clone()).push_bind(e.at).push_bind(e.kind.as_str())
                        .push_bind(e.recipient.clone()).push_bind(e.provider.clone()).push_bind(e.detail.clone());
                });
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Message counts by status, for metrics and `readyz`.
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM messages GROUP BY status").fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.try_get("status")?, r.try_get("n")?))).collect()
        })
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

/// What a [`Store::checkpoint`] found in SQLite's write-ahead log, in its last round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpointed {
    /// Frames in the log when the round began (0 on PostgreSQL). The count restarts from 0
    /// only when a commit restarts the log, so between two checkpoints with nothing written
    /// it stays the same.
    pub frames: i64,
    /// Of those, the frames the round left uncopied: 0 unless a reader's snapshot held some
    /// back; -1 if another process was checkpointing the log.
    pub left: i64,
}

/// Schema migrations, applied in order at start; each runs once, recorded in
/// `schema_migrations`. (sqlx's `migrate!` would pull in its proc-macro stack, which builds
/// the SQLite C library a second time, for a loop of a dozen lines.)
struct Migration {
    version: i64,
    sql: String,
}

#[cfg(test)]
mod tests {
    use super::Store;

    /// The checkpoint between two restarts copies while a commit holds the write lock; the
    /// restart waits for the lock and finishes once it is free.
    #[tokio::test]
    async fn only_the_restart_waits_for_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        s.create_tenant("acme", 1).await.unwrap();
        let Store::Sqlite(db) = &s else {
            unreachable!("a file URL opens SQLite")
        };
        let commit = db.writer.clone().lock_owned().await;
        let copied = tokio::time::timeout(std::time::Duration::from_secs(10), s.checkpoint(false))
            .await
            .expect("the checkpoint without a restart waited for the write lock")
            .unwrap();
        assert_eq!(copied.left, 0, "every frame in the log was copied");
        assert!(copied.frames > 0, "the tenant's insert is in the log");
        let restart = tokio::spawn({
            let s = s.clone();
            async move { s.checkpoint(true).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            !restart.is_finished(),
            "the restart took the write lock a commit held"
        );
        drop(commit);
        let left = tokio::time::timeout(std::time::Duration::from_secs(10), restart)
            .await
            .expect("the restart finished once the lock was free")
            .unwrap()
            .unwrap();
        assert_eq!(left.left, 0);
    }

    #[test]
    fn chunks_cover_every_row_in_few_shapes() {
        for n in 0..300 {
            let rows: Vec<usize> = (0..n).collect();
            let chunks = super::cacheable_chunks(&rows);
            assert_eq!(chunks.concat(), rows);
            assert!(chunks.iter().all(|c| [64, 16, 4, 1].contains(&c.len())));
        }
    }
}
