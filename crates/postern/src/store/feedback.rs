//! Feedback records (bounces, complaints, auto-replies) and finding the message one is about.

use sqlx::Row;

use super::{EventKind, NewEvent, Result, SqliteDb, Store, on_pool, suppressions};

/// One piece of feedback about one recipient, ready to store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedbackRecord {
    pub id: String,
    pub tenant_id: Option<String>,
    pub message_id: Option<String>,
    pub recipient: String,
    /// `bounce`, `complaint`, `autoreply` or `delivery`.
    pub kind: String,
    pub reason: String,
    pub hard: bool,
    pub status: Option<String>,
    pub reply_code: Option<String>,
    pub feedback_type: Option<String>,
    /// `cli`, `http`, `smtp`, `ses`.
    pub source: String,
    pub received_at: i64,
}

/// A message feedback can be tied to.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub id: String,
    pub tenant_id: String,
    pub key_id: Option<String>,
    /// The provider of the latest attempt.
    pub provider: Option<String>,
}

impl Store {
    /// The message with this id (optionally only within one tenant).
    pub async fn sent_message_by_id(
        &self,
        id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<SentMessage>> {
        self.find_sent("id", id, tenant_id).await
    }

    /// The message whose Message-ID header (without angle brackets) this is.
    pub async fn sent_message_by_header(
        &self,
        message_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<SentMessage>> {
        self.find_sent(
            "message_id_header",
            &format!("<{}>", message_id.trim_matches(['<', '>'])),
            tenant_id,
        )
        .await
    }

    async fn find_sent(
        &self,
        column: &str,
        value: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<SentMessage>> {
        let sql = format!(
            "SELECT id, tenant_id, key_id, provider FROM messages WHERE {column} = $1 AND ($2 IS NULL OR tenant_id = $2) LIMIT 1"
        );
        on_pool!(self, p, Db => {
            let row = sqlx::query(&sql).bind(value).bind(tenant_id).fetch_optional(p).await?;
            row.map(|r| Ok(SentMessage { id: r.try_get("id")?, tenant_id: r.try_get("tenant_id")?, key_id: r.try_get("key_id")?, provider: r.try_get("provider")? })).transpose()
        })
    }

    /// Stores feedback, adds an event to the message it is about, and (when `suppress` is
    /// given) puts the recipient on the tenant's suppression list, in one transaction.
    pub async fn record_feedback(
        &self,
        f: &FeedbackRecord,
        event: Option<(EventKind, String)>,
        suppress: bool,
    ) -> Result<()> {
        let _w = self.write_lock().await;
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO feedback (id, tenant_id, message_id, recipient, kind, reason, hard, status, reply_code, feedback_type, source, received_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
                .bind(&f.id).bind(&f.tenant_id).bind(&f.message_id).bind(&f.recipient).bind(&f.kind).bind(&f.reason)
                .bind(i64::from(f.hard)).bind(&f.status).bind(&f.reply_code).bind(&f.feedback_type).bind(&f.source).bind(f.received_at)
                .execute(&mut *tx).await?;
            if let (Some(mid), Some((kind, detail))) = (&f.message_id, &event) {
                let e = NewEvent { message_id: mid.clone(), at: f.received_at, kind: *kind, recipient: Some(f.recipient.clone()), provider: None, detail: Some(detail.clone()) };
                sqlx::query("INSERT INTO message_events (message_id, at, kind, recipient, provider, detail) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&e.message_id).bind(e.at).bind(e.kind.as_str()).bind(&e.recipient).bind(&e.provider).bind(&e.detail)
                    .execute(&mut *tx).await?;
            }
            if let (true, Some(tenant)) = (suppress, &f.tenant_id) {
                sqlx::query("INSERT INTO suppressions (tenant_id, address, reason, source, detail, created_at) VALUES ($1, $2, $3, 'feedback', $4, $5) \
                             ON CONFLICT (tenant_id, address) DO NOTHING")
                    .bind(tenant).bind(suppressions::normalize(&f.recipient)).bind(&f.reason)
                    .bind(f.message_id.as_ref().map(|m| format!("message {m}"))).bind(f.received_at)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Feedback of a tenant (or all), newest first.
    pub async fn feedback(
        &self,
        tenant_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<FeedbackRecord>> {
        on_pool!(self, p, Db => {
            let rows = sqlx::query("SELECT id, tenant_id, message_id, recipient, kind, reason, hard, status, reply_code, feedback_type, source, received_at \
                                    FROM feedback WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY received_at DESC, id DESC LIMIT $2")
                .bind(tenant_id).bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| Ok(FeedbackRecord {
                id: r.try_get("id")?, tenant_id: r.try_get("tenant_id")?, message_id: r.try_get("message_id")?,
                recipient: r.try_get("recipient")?, kind: r.try_get("kind")?, reason: r.try_get("reason")?,
                hard: r.try_get::<i64, _>("hard")? != 0, status: r.try_get("status")?, reply_code: r.try_get("reply_code")?,
                feedback_type: r.try_get("feedback_type")?, source: r.try_get("source")?, received_at: r.try_get("received_at")?,
            })).collect()
        })
    }
}
