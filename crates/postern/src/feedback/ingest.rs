//! Applying feedback: classify a returned message, tie each reading to the message and
//! recipient it is about, record it, add an event to the message, and suppress the address
//! when the reading says so (hard bounces and complaints, as configured). Feedback about a
//! message Postern never sent is kept as an orphan: evidence a credential is used elsewhere.

use super::{ClassifyError, Reading, Reason, classify};
use crate::config::SuppressionConfig;
use crate::domain::EventKind;
use crate::store::{FeedbackRecord, Store, StoreError};

/// Where the feedback came from, and what it may be matched against.
#[derive(Clone)]
pub struct Origin<'a> {
    /// `cli`, `http`, `smtp`, `ses`.
    pub source: &'a str,
    /// Only messages of this tenant may match (a tenant's own API key sent it).
    pub tenant_id: Option<&'a str>,
    /// The message id from a VERP return path (`bounce+<id>@...`), when it came that way.
    pub verp_message_id: Option<&'a str>,
    /// Told about every reading (rates, orphans), when running inside the server.
    pub guard: Option<&'a crate::guard::Guard>,
    /// Counts every reading (feedback totals, rolling rates, orphans by domain).
    pub metrics: Option<&'a crate::telemetry::Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    #[error("storing feedback failed: {0}")]
    Store(#[from] StoreError),
}

/// One reading and what was done with it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    #[serde(flatten)]
    pub record: FeedbackRecord,
    pub suppressed: bool,
    /// The key and provider of the message it is about (for the rates).
    #[serde(skip)]
    pub key_id: Option<String>,
    #[serde(skip)]
    pub provider: Option<String>,
    /// The domain the returned message was sent from (for orphans): its From, else the domain
    /// of its Message-ID.
    #[serde(skip)]
    pub sender_domain: Option<String>,
}

/// The kind of feedback a reading is.
pub fn kind_of(r: &Reading) -> &'static str {
    match r.reason {
        Reason::Feedback => "complaint",
        Reason::Vacation => "autoreply",
        Reason::Delivered => "delivery",
        _ => "bounce",
    }
}

/// The `bounce+<id>@domain` local part's id, if `address` is a VERP return path.
pub fn verp_token(address: &str) -> Option<&str> {
    let local = address.rsplit_once('@')?.0;
    local.strip_prefix("bounce+").filter(|t| !t.is_empty())
}

pub async fn ingest(
    store: &Store,
    raw: &[u8],
    origin: &Origin<'_>,
    policy: &SuppressionConfig,
    now: i64,
) -> Result<Vec<Applied>, IngestError> {
    let readings = classify(raw)?;
    Ok(apply(store, readings, origin, policy, now).await?)
}

/// Records readings however they were read (a returned message, an SES notification).
pub async fn apply(
    store: &Store,
    readings: Vec<Reading>,
    origin: &Origin<'_>,
    policy: &SuppressionConfig,
    now: i64,
) -> Result<Vec<Applied>, StoreError> {
    let mut out = Vec::with_capacity(readings.len());
    for r in readings {
        let sent = find_message(store, &r, origin).await?;
        let kind = kind_of(&r);
        let suppress = sent.is_some()
            && ((kind == "bounce" && r.hard_bounce && policy.hard_bounces)
                || (kind == "complaint" && policy.complaints));
        let record = FeedbackRecord {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: sent.as_ref().map(|m| m.tenant_id.clone()),
            message_id: sent.as_ref().map(|m| m.id.clone()),
            recipient: r.recipient.clone(),
            kind: kind.into(),
            reason: r.reason.as_str().into(),
            hard: r.hard_bounce,
            status: r.status.clone(),
            reply_code: r.reply_code.clone(),
            feedback_type: r.feedback_type.clone(),
            source: origin.source.into(),
            received_at: now,
        };
        let event = match kind {
            "complaint" => Some((
                EventKind::Complained,
                format!(
                    "complaint ({})",
                    r.feedback_type.as_deref().unwrap_or("abuse")
                ),
            )),
            "autoreply" => Some((
                EventKind::AutoReplied,
                "automatic reply (vacation, ticket)".to_owned(),
            )),
            "bounce" => Some((
                EventKind::Bounced,
                format!(
                    "bounce report: {} ({}{})",
                    r.reason.as_str(),
                    if r.hard_bounce { "hard" } else { "soft" },
                    r.status
                        .as_deref()
                        .map(|s| format!(", {s}"))
                        .unwrap_or_default()
                ),
            )),
            _ => None,
        };
        store.record_feedback(&record, event, suppress).await?;
        if let Some(g) = origin.guard {
            g.feedback_received(record.tenant_id.as_deref(), kind);
        }
        let sender_domain = r
            .original_from
            .as_deref()
            .or(r.original_message_id.as_deref())
            .and_then(|a| a.rsplit_once('@'))
            .map(|(_, d)| d.trim_end_matches('>').to_owned());
        let applied = Applied {
            record,
            suppressed: suppress,
            key_id: sent.as_ref().and_then(|m| m.key_id.clone()),
            provider: sent.as_ref().and_then(|m| m.provider.clone()),
            sender_domain,
        };
        if let Some(m) = origin.metrics {
            m.feedback(&applied.record.kind, applied.record.message_id.is_some());
            m.rates().applied(&applied);
        }
        out.push(applied);
    }
    Ok(out)
}

/// Ties a reading to the message it is about: the VERP token first (it survives mangled
/// reports), then the `X-Postern-Id` header of the returned message, then its Message-ID.
async fn find_message(
    store: &Store,
    r: &Reading,
    origin: &Origin<'_>,
) -> Result<Option<crate::store::SentMessage>, StoreError> {
    let by_id = origin.verp_message_id.map(str::to_owned).or_else(|| {
        r.postern_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("X-Postern-Id"))
            .map(|(_, v)| v.trim().to_owned())
    });
    if let Some(id) = by_id.filter(|i| uuid::Uuid::parse_str(i).is_ok())
        && let Some(m) = store.sent_message_by_id(&id, origin.tenant_id).await?
    {
        return Ok(Some(m));
    }
    match &r.original_message_id {
        Some(mid) => store.sent_message_by_header(mid, origin.tenant_id).await,
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verp_tokens() {
        assert_eq!(
            verp_token("bounce+0192-ab@bounces.example"),
            Some("0192-ab")
        );
        assert_eq!(verp_token("bounce+@bounces.example"), None);
        assert_eq!(verp_token("postmaster@bounces.example"), None);
        assert_eq!(verp_token("no-at-sign"), None);
    }
}
