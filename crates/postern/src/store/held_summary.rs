//! What a set of held messages looks like, for review before release or purge: how many,
//! their top recipient domains and a few sample subjects.

use std::collections::HashMap;

use sqlx::Row;

use super::pauses::HELD_WHERE;
use super::{HeldFilter, Result, SqliteDb, Store, on_pool, parse_recipients};

/// Messages read for a summary at most (the count is always exact).
const SAMPLE: i64 = 100_000;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HeldSummary {
    pub count: i64,
    /// (domain, recipients there), most first, at most 10.
    pub top_domains: Vec<(String, u64)>,
    /// Up to 5 distinct subjects, most frequent first.
    pub sample_subjects: Vec<String>,
}

impl Store {
    /// A summary of the held messages `f` selects, accepted at or after `since`.
    pub async fn held_summary(&self, f: &HeldFilter, since: i64) -> Result<HeldSummary> {
        let rows: Vec<(String, String, Option<String>)> = on_pool!(self, p, Db => {
            let rows = sqlx::query(&format!("SELECT id, recipients, subject FROM messages WHERE {HELD_WHERE} AND created_at >= $4 ORDER BY created_at LIMIT $5"))
                .bind(&f.tenant_id).bind(&f.key_id).bind(&f.held_by).bind(since).bind(SAMPLE)
                .fetch_all(p).await?;
            rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("recipients")?, r.try_get("subject")?))).collect::<Result<Vec<_>>>()?
        });
        let count: i64 = on_pool!(self, p, Db => {
            sqlx::query(&format!("SELECT COUNT(*) AS n FROM messages WHERE {HELD_WHERE} AND created_at >= $4"))
                .bind(&f.tenant_id).bind(&f.key_id).bind(&f.held_by).bind(since)
                .fetch_one(p).await?.try_get("n")?
        });
        let mut domains: HashMap<String, u64> = HashMap::new();
        let mut subjects: HashMap<String, u64> = HashMap::new();
        for (id, recipients, subject) in rows {
            for rc in parse_recipients(&id, &recipients)? {
                let d = rc.address.rsplit_once('@').map_or("", |(_, d)| d);
                *domains.entry(d.to_ascii_lowercase()).or_default() += 1;
            }
            if let Some(s) = subject {
                *subjects.entry(s).or_default() += 1;
            }
        }
        let top = |m: HashMap<String, u64>, n: usize| {
            let mut v: Vec<(String, u64)> = m.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(n);
            v
        };
        Ok(HeldSummary {
            count,
            top_domains: top(domains, 10),
            sample_subjects: top(subjects, 5).into_iter().map(|(s, _)| s).collect(),
        })
    }
}
