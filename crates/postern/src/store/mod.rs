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
mod sqlite_writes;
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
    writer: std::sync::Arc<WriteLock>,
    /// For a database file: the accepts' own connection and the write-ahead log it appends to.
    accept: Option<std::sync::Arc<sqlite::AcceptConn>>,
}

/// The write lock of an SQLite store, which counts the writers that took it: the maintenance
/// loop reads the count to tell an idle log from a busy one ([`Store::writes`]).
#[derive(Debug, Default)]
pub struct WriteLock {
    mutex: tokio::sync::Mutex<()>,
    taken: std::sync::atomic::AtomicU64,
}

impl WriteLock {
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.count();
        self.mutex.lock().await
    }

    /// [`WriteLock::lock`] for a thread outside the async runtime.
    pub fn blocking_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.count();
        self.mutex.blocking_lock()
    }

    /// The checkpoint's own hold, which writes no frame and is not counted.
    async fn lock_uncounted(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.mutex.lock().await
    }

    fn count(&self) {
        self.taken
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
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

    /// [`Pending::wait`] for the store's own callers, whose commit is theirs alone: a failed
    /// flush is their store error.
    async fn settle(self) -> Result<()> {
        self.wait()
            .await
            .map(drop)
            .map_err(|e| StoreError::Db(sqlx::Error::Io(e)))
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

mod keys;
mod messages;
mod migrate;

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
    /// The send request's tags (checked at the edge), stored with the message and shown by
    /// `GET /v1/messages/{id}`.
    pub tags: Vec<String>,
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
    pub tags: Vec<String>,
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

    /// An SQLite file's own write connection and the write lock, for the frequent writes that
    /// go through it ([`sqlite_writes`]); `None` on PostgreSQL and for an in-memory database.
    fn sqlite_file(
        &self,
    ) -> Option<(
        &std::sync::Arc<sqlite::AcceptConn>,
        &std::sync::Arc<WriteLock>,
    )> {
        match self {
            Store::Sqlite(SqliteDb {
                accept: Some(conn),
                writer,
                ..
            }) => Some((conn, writer)),
            _ => None,
        }
    }

    /// Held across a write transaction on SQLite; nothing on PostgreSQL.
    async fn write_lock(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self {
            Store::Sqlite(db) => Some(db.writer.lock().await),
            Store::Postgres(_) => None,
        }
    }

    /// How many times a writer of this process has taken the write lock: each commit on
    /// SQLite, counted as it begins. Always 0 on PostgreSQL. Writes by another process (a CLI
    /// command on the same file) are not in it.
    pub fn writes(&self) -> u64 {
        match self {
            Store::Sqlite(db) => db.writer.taken.load(std::sync::atomic::Ordering::Relaxed),
            Store::Postgres(_) => 0,
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
        let _w = db.writer.lock_uncounted().await;
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
}

/// What a [`Store::checkpoint`] found in SQLite's write-ahead log, in its last round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpointed {
    /// Frames in the log when the round began (0 on PostgreSQL, and when another process was
    /// checkpointing). The count starts again only when a commit restarts the log, so between
    /// two checkpoints with nothing written it stays the same.
    pub frames: i64,
    /// Of those, the frames the round left uncopied: 0 unless a reader's snapshot held some
    /// back; -1 if another process was checkpointing the log.
    pub left: i64,
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
        let writer = db.writer.clone();
        let commit = writer.lock().await;
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
