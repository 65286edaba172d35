//! Messages after their accept: one message with its recipients and events, claiming due
//! messages, recovering claims, writing back delivery outcomes.

use super::*;

/// An attempt's outcome, applied only while the node still holds the claim. A message held
/// before any provider was asked stays in doubt: after its release the provider that may have
/// taken it before a crash is asked first.
pub(super) const COMPLETE: &str = "UPDATE messages SET status = $1, recipients = $2, next_attempt_at = $3, provider = COALESCE($4, provider), \
     last_error = $5, updated_at = $6, claimed_by = NULL, lease_until = NULL, \
     in_doubt = CASE WHEN $1 = 'held' THEN in_doubt ELSE 0 END, held_by = $9 \
     WHERE id = $7 AND status = 'sending' AND claimed_by = $8";
/// A recipient the outcome suppresses, on the message's tenant's list.
pub(super) const SUPPRESS_FROM_DELIVERY: &str = "INSERT INTO suppressions (tenant_id, address, reason, source, detail, created_at) \
     SELECT tenant_id, $2, $3, 'delivery', $4, $5 FROM messages WHERE id = $1 ON CONFLICT (tenant_id, address) DO NOTHING";

impl Store {
    pub async fn message(&self, tenant_id: &str, id: &str) -> Result<MessageRecord> {
        on_pool!(self, p, Db => {
            let r = sqlx::query("SELECT id, tenant_id, source, status, mail_from, recipients, subject, message_id_header, attempts, created_at, tags FROM messages WHERE id = $1 AND tenant_id = $2")
                .bind(id).bind(tenant_id).fetch_optional(p).await?.ok_or(StoreError::NotFound)?;
            // The accept comes from the row; a stored 'queued' event is one an older version wrote.
            let evs = sqlx::query("SELECT at, kind, recipient, provider, detail FROM message_events WHERE message_id = $1 AND kind <> 'queued' ORDER BY id")
                .bind(id).fetch_all(p).await?;
            let accepted = accept::accept_event(r.try_get("created_at")?, r.try_get("source")?);
            let events = std::iter::once(Ok(accepted)).chain(evs.iter().map(|e| Ok(StoredEvent {
                at: e.try_get("at")?, kind: e.try_get("kind")?, recipient: e.try_get("recipient")?,
                provider: e.try_get("provider")?, detail: e.try_get("detail")?,
            }))).collect::<Result<Vec<_>>>()?;
            let id: String = r.try_get("id")?;
            Ok(MessageRecord {
                recipients: parse_recipients(&id, &r.try_get::<String, _>("recipients")?)?,
                tenant_id: r.try_get("tenant_id")?, status: r.try_get("status")?, mail_from: r.try_get("mail_from")?,
                subject: r.try_get("subject")?, message_id_header: r.try_get("message_id_header")?,
                attempts: r.try_get("attempts")?, created_at: r.try_get("created_at")?,
                tags: accept::tags_from(r.try_get("tags")?), events, id,
            })
        })
    }

    /// Claims up to `limit` due messages for this node; the attempt is counted before any
    /// provider is called.
    pub async fn claim_due(
        &self,
        node: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>> {
        if let Some((conn, writer)) = self.sqlite_file() {
            let node = node.to_owned();
            let (mut out, pending) = conn
                .write_locked(writer, move |tx| {
                    sqlite_writes::claim(tx, &node, now, now + lease_ms, limit)
                })
                .await?;
            // Durable before any provider is called: a claim lost in a crash after a send
            // would make that send look like it never happened.
            pending.settle().await?;
            out.sort_by_key(|c| c.created_at);
            return Ok(out);
        }
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

    /// Puts back claims that can no longer finish: any whose lease ran out, and at start
    /// (`node` given) this node's own from before a crash or restart, or with `all_local`
    /// every claim (SQLite: one node owns the file). They are marked in doubt, since the
    /// provider may have taken them before the crash. Returns how many. While the node runs,
    /// `node` is `None`: its own live claims may be mid-send.
    pub async fn recover_claims(
        &self,
        node: Option<&str>,
        now: i64,
        all_local: bool,
    ) -> Result<u64> {
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
        if let Some((conn, writer)) = self.sqlite_file() {
            let (node, batch) = (node.to_owned(), batch.to_vec());
            let ((), pending) = conn
                .write_locked(writer, move |tx| sqlite_writes::complete(tx, &node, &batch))
                .await?;
            return pending.settle().await;
        }
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            let mut applied = Vec::with_capacity(batch.len());
            for c in batch {
                let n = sqlx::query(COMPLETE)
                    .bind(c.status.as_str()).bind(recipients_json(&c.recipients)).bind(c.next_attempt_at)
                    .bind(&c.provider).bind(&c.last_error).bind(c.at).bind(&c.id).bind(node).bind(&c.held_by)
                    .execute(&mut *tx).await?.rows_affected();
                if n == 1 { applied.push(c); }
            }
            for c in &applied {
                for (address, reason) in &c.suppress {
                    sqlx::query(SUPPRESS_FROM_DELIVERY)
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

    /// Message counts by status (statuses with none left out), for the metrics. Read from
    /// `message_counts`, kept in step with `messages` in every transaction (by triggers, and on
    /// SQLite by the group commit for its inserts; `message_counts_*.sql`): a few rows, where
    /// counting `messages` itself would read every row, MIME text included, on each scrape.
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM message_counts GROUP BY status HAVING SUM(n) <> 0 ORDER BY status")
                .fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.try_get("status")?, r.try_get("n")?))).collect()
        })
    }

    /// Folds PostgreSQL's rows of count deltas into one row per tenant and status (SQLite keeps
    /// one such row already: nothing to do). Run now and then by the maintenance loop, so the
    /// sum a scrape reads stays a few rows. Safe beside writers and other nodes folding: it
    /// deletes only the rows its snapshot sees (a row a concurrent fold deleted first is
    /// skipped), and inserts their sum in the same statement.
    pub async fn fold_message_counts(&self) -> Result<u64> {
        match self {
            Store::Sqlite(_) => Ok(0),
            Store::Postgres(p) => Ok(sqlx::query(
                "WITH gone AS (DELETE FROM message_counts RETURNING tenant_id, status, n) \
                 INSERT INTO message_counts (tenant_id, status, n) \
                 SELECT tenant_id, status, SUM(n) FROM gone GROUP BY tenant_id, status HAVING SUM(n) <> 0",
            )
            .execute(p)
            .await?
            .rows_affected()),
        }
    }
}

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
