//! Group commit: a batch of accepted messages made durable in one transaction. Idempotency
//! keys are claimed, suppressed recipients marked, and messages inserted (with the events of
//! a suppressed recipient or a hold; the accept itself is the row, [`accept_event`]), through
//! sqlx (PostgreSQL, in-memory SQLite) or through SQLite's accept connection
//! ([`super::sqlite::AcceptConn`]), with the same statements and the same plan.

use sqlx::Row;

use super::{
    Inserted, NewEvent, NewMessage, Pending, Recipient, Result, SqliteDb, Store, StoredEvent,
    cacheable_chunks, on_pool, recipients_json, suppressions,
};
use crate::domain::{EventKind, RecipientState};

/// A fresh message as it will be stored: suppressed recipients marked, and the status that
/// follows (suppressed when every recipient is).
pub(super) struct Planned<'a> {
    pub(super) msg: &'a NewMessage,
    pub(super) recipients: Vec<Recipient>,
    pub(super) status: &'static str,
}

impl<'a> Planned<'a> {
    pub(super) fn new(
        msg: &'a NewMessage,
        suppressed: &std::collections::HashSet<(String, String)>,
    ) -> Self {
        let recipients: Vec<Recipient> = msg
            .recipients
            .iter()
            .map(|a| {
                let key = (msg.tenant_id.clone(), suppressions::normalize(a));
                let state = if suppressed.contains(&key) {
                    RecipientState::Suppressed
                } else {
                    RecipientState::Pending
                };
                Recipient {
                    address: a.clone(),
                    state,
                }
            })
            .collect();
        let status = if recipients
            .iter()
            .all(|r| r.state == RecipientState::Suppressed)
        {
            "suppressed"
        } else {
            initial_status(msg)
        };
        Self {
            msg,
            recipients,
            status,
        }
    }

    /// The pause holding the message, when it is stored as held.
    pub(super) fn held_by(&self) -> Option<String> {
        self.msg
            .held
            .as_ref()
            .filter(|_| self.status == "held")
            .map(|h| h.0.clone())
    }

    /// The events stored with the message. Its first event, the accept itself, is not among
    /// them: the message row stands for it ([`accept_event`]), which spares every accept a
    /// statement, an event row and its index entry, for one entry in `messages_by_time` (2,275
    /// bytes stored per message instead of 2,351; bench/README.md).
    pub(super) fn events(&self) -> Vec<NewEvent> {
        let m = self.msg;
        let ev = |kind: EventKind, recipient: Option<&str>, detail: String| NewEvent {
            message_id: m.id.clone(),
            at: m.created_at,
            kind,
            recipient: recipient.map(str::to_owned),
            provider: None,
            detail: Some(detail),
        };
        let mut out = Vec::new();
        for r in self
            .recipients
            .iter()
            .filter(|r| r.state == RecipientState::Suppressed)
        {
            out.push(ev(
                EventKind::Suppressed,
                Some(&r.address),
                "on the tenant's suppression list; not sent".into(),
            ));
        }
        if let (Some((_, why)), "held") = (&m.held, self.status) {
            out.push(ev(EventKind::Held, None, why.clone()));
        }
        out
    }
}

/// A message's first event, read from its row: every message was queued when it was accepted,
/// at its `created_at`, through its `source`. Stored events follow it.
pub(super) fn accept_event(created_at: i64, source: &str) -> StoredEvent {
    StoredEvent {
        at: created_at,
        kind: EventKind::Queued.as_str().to_owned(),
        recipient: None,
        provider: None,
        detail: Some(format!("accepted via {source}")),
    }
}

/// A message's tags as stored: a JSON array, or NULL for none (most messages).
pub(super) fn tags_json(tags: &[String]) -> Option<String> {
    (!tags.is_empty()).then(|| serde_json::to_string(tags).unwrap_or_default())
}

/// Stored tags read back; NULL (or a value no version wrote) is none.
pub(super) fn tags_from(stored: Option<String>) -> Vec<String> {
    stored
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub(super) fn initial_status(m: &NewMessage) -> &'static str {
    if m.held.is_some() { "held" } else { "queued" }
}

// One group commit's statements, shared by the sqlx path (PostgreSQL, in-memory SQLite) and
// SQLite's accept connection (sqlite::AcceptConn). `$n` numbers the parameters in order, which
// both drivers bind by position.
pub(super) const CLAIM_IDEMPOTENCY: &str = "INSERT INTO idempotency (tenant_id, key, message_id, request_hash, status, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, key) DO NOTHING";
pub(super) const FIRST_ANSWER: &str =
    "SELECT message_id, request_hash, status FROM idempotency WHERE tenant_id = $1 AND key = $2";
pub(super) const MARK_KEY_SUPPRESSED: &str =
    "UPDATE idempotency SET status = 'suppressed' WHERE tenant_id = $1 AND key = $2";
macro_rules! message_row {
    () => {
        "id, tenant_id, key_id, source, mail_from, recipients, subject, message_id_header, raw, size, status, attempts, created_at, updated_at, next_attempt_at, expires_at, in_doubt, held_by, tags"
    };
}
macro_rules! event_row {
    () => {
        "message_id, at, kind, recipient, detail"
    };
}
const MESSAGE_ROW: &str = message_row!();
pub(super) const INSERT_MESSAGE_ROW: &str = concat!(
    "INSERT INTO messages (",
    message_row!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
);
const EVENT_ROW: &str = event_row!();
pub(super) const INSERT_EVENT_ROW: &str = concat!(
    "INSERT INTO message_events (",
    event_row!(),
    ") VALUES ($1, $2, $3, $4, $5)"
);

/// The order a batch's idempotency keys are claimed in: one order, so two batches committing
/// at once (PostgreSQL) that share keys wait for each other instead of deadlocking. Indexes
/// into `batch`, only of messages with a key.
pub(super) fn claim_order(batch: &[NewMessage]) -> Vec<usize> {
    let mut keyed: Vec<usize> = (0..batch.len())
        .filter(|&i| batch[i].idempotency.is_some())
        .collect();
    keyed.sort_by(|&a, &b| {
        let key = |i: usize| {
            (
                &batch[i].tenant_id,
                batch[i].idempotency.as_ref().map(|k| &k.0),
            )
        };
        key(a).cmp(&key(b))
    });
    keyed
}

/// The answer to a key seen before: the first answer, or a refusal if the request differs.
pub(super) fn repeat_answer(id: String, same_request: bool, status: String) -> Inserted {
    if same_request {
        Inserted::Replay { id, status }
    } else {
        Inserted::KeyReused { id }
    }
}

/// Adds a group commit's new messages to `message_counts` on SQLite, one statement per tenant
/// and status per batch: a trigger there would run for every row, and the per-row trigger cost
/// the hottest path ~5 % of its CPU (64.8-88.2 against 64.9-82.3 us per accept, wrk, binaries
/// alternating). Changes of status and deletes are counted by triggers (migration 16); on
/// PostgreSQL inserts are too, by a trigger per statement (see `message_counts_postgres.sql`).
pub(super) const COUNT_ACCEPTED_SQLITE: &str = "INSERT INTO message_counts (tenant_id, status, n) VALUES ($1, $2, $3) \
     ON CONFLICT (tenant_id, status) DO UPDATE SET n = message_counts.n + excluded.n";

/// A group commit's new messages by tenant and status, for [`COUNT_ACCEPTED_SQLITE`].
pub(super) fn accepted_counts<'a>(planned: &'a [Planned<'a>]) -> Vec<(&'a str, &'static str, i64)> {
    let mut counts: Vec<(&str, &'static str, i64)> = Vec::new();
    for p in planned {
        match counts
            .iter_mut()
            .find(|(t, s, _)| *t == p.msg.tenant_id && *s == p.status)
        {
            Some(c) => c.2 += 1,
            None => counts.push((&p.msg.tenant_id, p.status, 1)),
        }
    }
    counts
}

/// Every message's answer, in batch order: the repeats' from the claims, the rest as planned.
pub(super) fn answers_of(
    batch: &[NewMessage],
    mut answers: Vec<Option<Inserted>>,
    planned: &[Planned],
) -> Vec<Inserted> {
    // A repeat of a message first claimed in this same batch read the claim's status before
    // the batch was planned: give it the status the first one is answered with (suppressed,
    // when every recipient is).
    for a in answers.iter_mut() {
        if let Some(Inserted::Replay { id, status }) = a
            && let Some(first) = planned.iter().find(|p| p.msg.id == *id)
        {
            *status = first.status.into();
        }
    }
    for (a, p) in answers.iter_mut().filter(|a| a.is_none()).zip(planned) {
        *a = Some(Inserted::New {
            id: p.msg.id.clone(),
            status: p.status.into(),
        });
    }
    batch
        .iter()
        .zip(answers)
        .map(|(m, a)| {
            a.unwrap_or_else(|| Inserted::New {
                id: m.id.clone(),
                status: initial_status(m).into(),
            })
        })
        .collect()
}

impl Store {
    // ---- messages: accept ----------------------------------------------------------------

    /// Makes a batch of messages durable in one transaction (group commit). Idempotency keys
    /// are claimed first, so a repeat — in this batch, in an earlier one, or on another node —
    /// returns the first answer and is never queued twice.
    pub async fn insert_messages(&self, batch: &[NewMessage]) -> Result<Vec<Inserted>> {
        let (_, answers, pending) = self.insert_messages_deferred(batch.to_vec()).await?;
        pending.settle().await?;
        Ok(answers)
    }

    /// The first answer given for an idempotency key, if the key was claimed: read before a
    /// retry is admitted, so that it is answered again rather than counted against the key's
    /// rate and daily limits. (A retry racing its first try is settled by the claim in the
    /// group commit.)
    pub async fn idempotent_answer(
        &self,
        tenant_id: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<Option<Inserted>> {
        on_pool!(self, p, Db => {
            let row = sqlx::query(FIRST_ANSWER).bind(tenant_id).bind(key).fetch_optional(p).await?;
            Ok(match row {
                None => None,
                Some(r) => Some(repeat_answer(
                    r.try_get("message_id")?,
                    r.try_get::<String, _>("request_hash")? == request_hash,
                    r.try_get("status")?,
                )),
            })
        })
    }

    /// [`Store::insert_messages`] without waiting for the disk: the transaction has committed
    /// (other connections see it) when this returns, and it is durable once the [`Pending`] has
    /// been waited for. Nothing may be answered as accepted before that. The batch is handed
    /// back with the answers (in its order), moved rather than copied to the SQLite thread.
    pub async fn insert_messages_deferred(
        &self,
        batch: Vec<NewMessage>,
    ) -> Result<(Vec<NewMessage>, Vec<Inserted>, Pending)> {
        if let Some((conn, writer)) = self.sqlite_file() {
            let ((batch, answers), pending) = conn
                .write_locked(writer, move |tx| {
                    let answers = super::sqlite::insert_batch(tx, &batch)?;
                    Ok((batch, answers))
                })
                .await?;
            return Ok((batch, answers, pending));
        }
        let answers = self.insert_committed(&batch).await?;
        Ok((batch, answers, Pending::Durable))
    }

    /// The accepts' own connection to an SQLite file, for a thread of its own that commits
    /// without the async round trips ([`AcceptCommitter`]); `None` on PostgreSQL and for an
    /// in-memory database.
    pub fn accept_committer(&self) -> Option<AcceptCommitter> {
        self.sqlite_file().map(|(conn, writer)| AcceptCommitter {
            conn: conn.clone(),
            writer: writer.clone(),
        })
    }

    async fn insert_committed(&self, batch: &[NewMessage]) -> Result<Vec<Inserted>> {
        // PostgreSQL counts inserts with a trigger (message_counts_postgres.sql).
        let counts_inserts = matches!(self, Store::Sqlite(_));
        let _w = self.write_lock().await;
        let mut answers: Vec<Option<Inserted>> = vec![None; batch.len()];
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            for i in claim_order(batch) {
                let m = &batch[i];
                let Some((key, hash)) = &m.idempotency else { continue };
                let won = sqlx::query(CLAIM_IDEMPOTENCY)
                    .bind(&m.tenant_id).bind(key).bind(&m.id).bind(hash).bind(initial_status(m)).bind(m.created_at)
                    .execute(&mut *tx).await?.rows_affected() == 1;
                if !won {
                    let r = sqlx::query(FIRST_ANSWER).bind(&m.tenant_id).bind(key).fetch_one(&mut *tx).await?;
                    answers[i] = Some(repeat_answer(
                        r.try_get("message_id")?, r.try_get::<String, _>("request_hash")? == *hash, r.try_get("status")?,
                    ));
                }
            }
            let fresh: Vec<&NewMessage> = batch.iter().zip(&answers).filter(|(_, a)| a.is_none()).map(|(m, _)| m).collect();
            // Suppressed recipients, read in this transaction so an accept never races an addition.
            let wanted: Vec<(String, String)> = fresh.iter()
                .flat_map(|m| m.recipients.iter().map(|a| (m.tenant_id.clone(), suppressions::normalize(a))))
                .collect();
            let mut suppressed = std::collections::HashSet::new();
            for chunk in wanted.chunks(200) {
                let mut qb = sqlx::QueryBuilder::<Db>::new("SELECT tenant_id, address FROM suppressions WHERE (tenant_id, address) IN (VALUES ");
                let mut sep = qb.separated(", ");
                for (t, a) in chunk {
                    sep.push("(");
                    sep.push_bind_unseparated(t.clone());
                    sep.push_unseparated(", ");
                    sep.push_bind_unseparated(a.clone());
                    sep.push_unseparated(")");
                }
                qb.push(")");
                for r in qb.build().fetch_all(&mut *tx).await? {
                    suppressed.insert((r.try_get::<String, _>("tenant_id")?, r.try_get::<String, _>("address")?));
                }
            }
            let planned: Vec<Planned> = fresh.iter().map(|m| Planned::new(m, &suppressed)).collect();
            // Multi-row inserts, chunked under both backends' bind-parameter limits.
            for chunk in cacheable_chunks(&planned) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(format!("INSERT INTO messages ({MESSAGE_ROW}) "));
                qb.push_values(chunk.iter(), |mut b, p| {
                    let m = p.msg;
                    b.push_bind(m.id.clone()).push_bind(m.tenant_id.clone()).push_bind(m.key_id.clone())
                        .push_bind(m.source).push_bind(m.mail_from.clone()).push_bind(recipients_json(&p.recipients))
                        .push_bind(m.subject.clone()).push_bind(m.message_id_header.clone()).push_bind(m.raw.clone())
                        .push_bind(m.raw.len() as i64).push_bind(p.status).push_bind(0_i64)
                        .push_bind(m.created_at).push_bind(m.created_at).push_bind(m.created_at).push_bind(m.expires_at).push_bind(0_i64)
                        .push_bind(p.held_by()).push_bind(tags_json(&m.tags));
                });
                qb.build().execute(&mut *tx).await?;
                let events: Vec<NewEvent> = chunk.iter().flat_map(|p| p.events()).collect();
                for ev in cacheable_chunks(&events) {
                    let mut qb = sqlx::QueryBuilder::<Db>::new(format!("INSERT INTO message_events ({EVENT_ROW}) "));
                    qb.push_values(ev.iter(), |mut b, e| {
                        b.push_bind(e.message_id.clone()).push_bind(e.at).push_bind(e.kind.as_str())
                            .push_bind(e.recipient.clone()).push_bind(e.detail.clone());
                    });
                    qb.build().execute(&mut *tx).await?;
                }
            }
            for p in planned.iter().filter(|p| p.status == "suppressed") {
                if let Some((key, _)) = &p.msg.idempotency {
                    sqlx::query(MARK_KEY_SUPPRESSED)
                        .bind(&p.msg.tenant_id).bind(key).execute(&mut *tx).await?;
                }
            }
            if counts_inserts {
                for (tenant, status, n) in accepted_counts(&planned) {
                    sqlx::query(COUNT_ACCEPTED_SQLITE).bind(tenant).bind(status).bind(n).execute(&mut *tx).await?;
                }
            }
            let answers = answers_of(batch, answers, &planned);
            tx.commit().await?;
            Ok(answers)
        })
    }
}

/// [`Store::insert_messages_deferred`] for a thread outside the async runtime: the same group
/// commit on SQLite's accept connection, under the store's write lock, blocking.
pub struct AcceptCommitter {
    conn: std::sync::Arc<super::sqlite::AcceptConn>,
    writer: std::sync::Arc<super::WriteLock>,
}

impl AcceptCommitter {
    /// Commits the batch (blocking; never call it on an async thread). The answers are in the
    /// batch's order; nothing may be answered as accepted before the [`Pending`] is waited for.
    pub fn insert(&self, batch: &[NewMessage]) -> Result<(Vec<Inserted>, Pending)> {
        let _w = self.writer.blocking_lock();
        let (answers, commit) = self.conn.insert(batch)?;
        Ok((answers, Pending::WalSync(self.conn.wal(), commit)))
    }
}
