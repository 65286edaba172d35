//! The audit log: every administrative act, append-only and hash-chained.
//!
//! Each entry stores the SHA-256 of the previous entry's hash and its own canonical content,
//! so editing, deleting or reordering a row breaks the chain at that row. The head (last
//! sequence number and hash) is also appended now and then to a file outside the database
//! (`[audit] head_file`), so a rewrite of the whole tail, head row included, is caught too.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::Store;

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One administrative act, as the code that performs it describes it.
pub struct AuditEvent<'a> {
    /// `cli:<user>`, `guard`, `admin:<name>`, `api:<key id>`...
    pub actor: &'a str,
    pub source_ip: Option<&'a str>,
    /// Dotted verb: `key.create`, `route.set`, `pause`, `held.purge`...
    pub action: &'a str,
    /// What it acted on: `key:ID`, `tenant:NAME`, `all`...
    pub target: &'a str,
    pub reason: Option<&'a str>,
    pub detail: serde_json::Value,
}

/// An entry as stored. `detail` is the JSON text exactly as hashed (keys sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: i64,
    pub actor: String,
    pub source_ip: Option<String>,
    pub action: String,
    pub target: String,
    pub reason: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// `[audit]` in postern.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Where the head hash is appended; default `<data_dir>/audit-head.jsonl`. Best on
    /// another disk or host than the database (a log shipper, a WORM mount).
    #[serde(default)]
    pub head_file: Option<PathBuf>,
    /// How often a running server appends the head (when it changed).
    #[serde(default = "default_head_interval")]
    pub head_interval_secs: u64,
}

fn default_head_interval() -> u64 {
    60
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            head_file: None,
            head_interval_secs: default_head_interval(),
        }
    }
}

impl AuditConfig {
    pub fn head_path(&self, data_dir: &Path) -> PathBuf {
        self.head_file
            .clone()
            .unwrap_or_else(|| data_dir.join("audit-head.jsonl"))
    }
}

/// SHA-256 over the previous hash and the entry's canonical content (a JSON array of its
/// fields, the detail as stored), hex.
pub fn entry_hash(e: &AuditEntry) -> String {
    let content = serde_json::json!([
        e.seq,
        e.at,
        e.actor,
        e.source_ip,
        e.action,
        e.target,
        e.reason,
        e.detail
    ])
    .to_string();
    let mut h = Sha256::new();
    h.update(e.prev_hash.as_bytes());
    h.update(b"\n");
    h.update(content.as_bytes());
    hex::encode(h.finalize())
}

/// Appends an entry; returns its sequence number. Concurrent appends (threads, processes,
/// nodes) serialize on the store's head row.
pub async fn record(
    store: &crate::store::Store,
    at_ms: i64,
    ev: AuditEvent<'_>,
) -> crate::store::Result<u64> {
    store.audit_append(at_ms, &ev).await
}

/// One line of the head file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadLine {
    pub at: i64,
    pub seq: u64,
    pub hash: String,
}

/// Appends the store's current head to `path` (synced); returns it.
pub async fn write_head(store: &Store, path: &Path, at: i64) -> anyhow::Result<HeadLine> {
    use anyhow::Context;
    let (seq, hash) = store.audit_head().await?;
    let line = HeadLine { at, seq, hash };
    let text = format!("{}\n", serde_json::to_string(&line)?);
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        f.write_all(text.as_bytes())?;
        f.sync_data()
    })
    .await?
    .context("appending the audit head to the head file")?;
    Ok(line)
}

/// A running server appends the head every `interval` when it moved.
pub fn spawn_head_writer(
    store: Store,
    path: PathBuf,
    interval: Duration,
    clock: crate::clock::SharedClock,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<(u64, String)> = None;
        loop {
            let head = store.audit_head().await.ok();
            if head.is_some() && head != last {
                match write_head(&store, &path, clock.now_ms()).await {
                    Ok(l) => last = Some((l.seq, l.hash)),
                    Err(e) => tracing::warn!(error = %e, "writing the audit head failed"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => break,
            }
        }
    })
}

/// The first place the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("entry {seq} is missing (the next entry is {next})")]
    Missing { seq: u64, next: u64 },
    #[error(
        "entry {seq} is out of place: it does not follow entry {} (rows were reordered, or the one before was rewritten)",
        seq - 1
    )]
    Unlinked { seq: u64 },
    #[error("entry {seq} was altered: its content does not match its hash")]
    Altered { seq: u64 },
    #[error("entry {seq} is missing: the log ends at {last}, but the head records {head} entries")]
    Truncated { seq: u64, last: u64, head: u64 },
    #[error("entry {seq} is not the one the head file recorded at {at} (hash differs)")]
    HeadFileMismatch { seq: u64, at: String },
    #[error("the head row does not match the last entry {seq}")]
    HeadRow { seq: u64 },
}

impl Broken {
    /// The sequence number of the bad entry.
    pub fn seq(&self) -> u64 {
        match self {
            Broken::Missing { seq, .. }
            | Broken::Unlinked { seq }
            | Broken::Altered { seq }
            | Broken::Truncated { seq, .. }
            | Broken::HeadFileMismatch { seq, .. }
            | Broken::HeadRow { seq } => *seq,
        }
    }
}

/// A chain that checked out.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub entries: u64,
    pub head_hash: String,
    /// Head-file lines the chain was checked against.
    pub head_file_lines: usize,
}

/// Reads the head file (a missing file is empty); lines that do not parse are errors.
fn read_head_file(path: &Path) -> anyhow::Result<BTreeMap<u64, HeadLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    };
    let mut out = BTreeMap::new();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let h: HeadLine = serde_json::from_str(l)
            .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), i + 1))?;
        out.insert(h.seq, h);
    }
    Ok(out)
}

/// Walks the whole chain in order, checks it against the head row and the head file.
/// `Ok(Err(b))` names the first bad entry; `Err` is a failure to read.
pub async fn verify(
    store: &Store,
    head_file: Option<&Path>,
) -> anyhow::Result<Result<Verified, Broken>> {
    let heads = match head_file {
        Some(p) => read_head_file(p)?,
        None => BTreeMap::new(),
    };
    let mut prev = GENESIS.to_owned();
    let mut last = 0u64;
    loop {
        let page = store.audit_entries(last, i64::MIN, 1000).await?;
        if page.is_empty() {
            break;
        }
        for e in page {
            let expected = last + 1;
            if e.seq != expected {
                return Ok(Err(Broken::Missing {
                    seq: expected,
                    next: e.seq,
                }));
            }
            if e.prev_hash != prev {
                return Ok(Err(Broken::Unlinked { seq: e.seq }));
            }
            if entry_hash(&e) != e.hash {
                return Ok(Err(Broken::Altered { seq: e.seq }));
            }
            if let Some(h) = heads.get(&e.seq).filter(|h| h.hash != e.hash) {
                return Ok(Err(Broken::HeadFileMismatch {
                    seq: e.seq,
                    at: crate::clock::rfc3339(h.at),
                }));
            }
            last = e.seq;
            prev = e.hash;
        }
    }
    let (head_seq, head_hash) = store.audit_head().await?;
    let recorded = heads.keys().next_back().copied().unwrap_or(0);
    if head_seq.max(recorded) > last {
        return Ok(Err(Broken::Truncated {
            seq: last + 1,
            last,
            head: head_seq.max(recorded),
        }));
    }
    if head_seq != last || head_hash != prev {
        return Ok(Err(Broken::HeadRow { seq: last }));
    }
    Ok(Ok(Verified {
        entries: last,
        head_hash: prev,
        head_file_lines: heads.len(),
    }))
}

/// An entry as `audit export` writes it: one JSON object per line, `detail` as JSON.
pub fn export_line(e: &AuditEntry) -> serde_json::Value {
    serde_json::json!({
        "seq": e.seq,
        "at": e.at,
        "time": crate::clock::rfc3339(e.at),
        "actor": e.actor,
        "source_ip": e.source_ip,
        "action": e.action,
        "target": e.target,
        "reason": e.reason,
        "detail": serde_json::from_str::<serde_json::Value>(&e.detail).unwrap_or(serde_json::Value::Null),
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, prev: &str) -> AuditEntry {
        let mut e = AuditEntry {
            seq,
            at: 1_000,
            actor: "cli:alice".into(),
            source_ip: None,
            action: "key.revoke".into(),
            target: "key:abc".into(),
            reason: None,
            detail: serde_json::json!({"b": 1, "a": 2}).to_string(),
            prev_hash: prev.into(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e);
        e
    }

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let e = entry(1, GENESIS);
        assert_eq!(e.detail, r#"{"a":2,"b":1}"#, "detail keys are sorted");
        let mut other = e.clone();
        other.target = "key:abd".into();
        assert_ne!(entry_hash(&other), e.hash);
        let mut other = e.clone();
        other.seq = 2;
        assert_ne!(entry_hash(&other), e.hash);
        assert_ne!(entry(1, &e.hash).hash, e.hash);
    }
}
