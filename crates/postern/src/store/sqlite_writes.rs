//! Delivery's two frequent writes on an SQLite file, claiming due messages and writing back
//! outcomes, on the accepts' connection ([`super::sqlite::AcceptConn::write`]) rather than
//! through the sqlx pool.
//!
//! Through the pool each was a `synchronous = FULL` commit: the log flushed inside the commit,
//! with the store's write lock held, and a thread round trip per statement (one UPDATE per
//! outcome). While delivery ran, the group commit of accepts waited behind those holds: at
//! 3,000 accepts/s delivered into the file provider, the accepts' median latency was 1.6 ms
//! with delivery off and 7-10 ms with it on, and in slower minutes the accepts fell behind the
//! offered rate altogether (bench/README.md, "Delivery's writes off the write lock"). Here a
//! claim or a batch of outcomes runs start to finish on one blocking thread, commits without a
//! flush, and is made durable after the lock is released by the same log flush the accepts
//! share ([`super::sqlite::Wal::flush_through`]): FULL's durability, with the write lock held
//! only for the statements.
//!
//! The statements are those of the sqlx path ([`super::messages`]) with SQLite's `?N`
//! parameters, which bind by number wherever they appear.

use std::sync::LazyLock;

use super::{
    Claimed, Completion, Result, StoreError, parse_recipients, recipients_json, suppressions,
};

/// The sqlx path's statements with SQLite's own `?N` for `$N`.
static CLAIM: LazyLock<String> = LazyLock::new(|| numbered(&super::sqlite::claim_sql()));
static COMPLETE: LazyLock<String> = LazyLock::new(|| numbered(super::messages::COMPLETE));
static SUPPRESS: LazyLock<String> =
    LazyLock::new(|| numbered(super::messages::SUPPRESS_FROM_DELIVERY));

/// `$N` as `?N`: rusqlite binds by position, and SQLite numbers `$N` parameters in the order
/// they first appear, whatever their digits (`held_by = $9` before `id = $7` would take `$9` as
/// the seventh), while `?N` is parameter N wherever it stands.
fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

const EVENT: &str = "INSERT INTO message_events (message_id, at, kind, recipient, provider, detail) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// [`super::Store::claim_due`]'s statement, inside a write transaction.
pub(super) fn claim(
    tx: &rusqlite::Transaction<'_>,
    node: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<Claimed>> {
    let mut q = tx.prepare_cached(&CLAIM)?;
    let mut rows = q.query(rusqlite::params![node, lease_until, now, limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let recipients = parse_recipients(&id, &r.get::<_, String>(4)?)?;
        // Stored as a BLOB by every writer; read as text too rather than refuse a row.
        let raw = match r.get_ref(5)? {
            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
            other => {
                return Err(StoreError::Corrupt(format!(
                    "message {id}: raw is {:?}, not a blob",
                    other.data_type()
                )));
            }
        };
        out.push(Claimed {
            tenant_id: r.get(1)?,
            key_id: r.get(2)?,
            mail_from: r.get(3)?,
            recipients,
            raw,
            message_id_header: r.get(6)?,
            attempts: r.get(7)?,
            created_at: r.get(8)?,
            expires_at: r.get(9)?,
            in_doubt: r.get::<_, i64>(10)? != 0,
            id,
        });
    }
    Ok(out)
}

/// [`super::Store::complete`]'s statements, inside a write transaction: an outcome applies
/// only while `node` still holds the claim; its suppressions and events go with it.
pub(super) fn complete(
    tx: &rusqlite::Transaction<'_>,
    node: &str,
    batch: &[Completion],
) -> Result<()> {
    let mut update = tx.prepare_cached(&COMPLETE)?;
    let mut suppress = tx.prepare_cached(&SUPPRESS)?;
    let mut event = tx.prepare_cached(EVENT)?;
    for c in batch {
        let applied = update.execute(rusqlite::params![
            c.status.as_str(),
            recipients_json(&c.recipients),
            c.next_attempt_at,
            c.provider,
            c.last_error,
            c.at,
            c.id,
            node,
            c.held_by,
        ])? == 1;
        if !applied {
            continue;
        }
        for (address, reason) in &c.suppress {
            suppress.execute(rusqlite::params![
                c.id,
                suppressions::normalize(address),
                reason,
                format!("message {}", c.id),
                c.at
            ])?;
        }
        for e in &c.events {
            event.execute(rusqlite::params![
                e.message_id,
                e.at,
                e.kind.as_str(),
                e.recipient,
                e.provider,
                e.detail
            ])?;
        }
    }
    Ok(())
}
