//! The embedded default: each delivered message becomes `<id>.eml` in a directory, so a new
//! user sees mail "sent" with nothing to configure. Writes are atomic (temp file, fsync,
//! rename, fsync of the directory), which also makes delivery idempotent: after a crash the
//! file tells whether the attempt landed. Deliveries run side by side, and one flush of the
//! directory covers every rename made before it began ([`DirSync`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    Delivery, FailureClass, OutboundMessage, Provider, ProviderError, ProviderWideKind,
    RecipientOutcome,
};

pub struct FileProvider {
    name: String,
    dir: PathBuf,
    dir_sync: Arc<DirSync>,
}

/// Flushes of the directory, one at a time, each covering every rename that had returned when
/// it began: with many deliveries at once, the renames made during one flush share the next
/// instead of each sending a flush of its own to the disk, which competes with the store's
/// log flushes (the accepts' latency) for the same disk.
#[derive(Default)]
struct DirSync {
    /// Renames into the directory, numbered as they return.
    renames: AtomicU64,
    /// Held while a flush runs: the number of the last rename the last good flush covered.
    flushed: Mutex<u64>,
}

impl DirSync {
    /// Numbers a rename that has just returned.
    fn renamed(&self) -> u64 {
        self.renames.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Returns once rename number `n` is on the disk. A failed flush covers nothing: whoever
    /// comes next flushes again.
    fn flush_through(&self, dir: &Path, n: u64) -> std::io::Result<()> {
        self.flush_through_with(n, || std::fs::File::open(dir)?.sync_all())
            .map(drop)
    }

    /// [`DirSync::flush_through`] with the flush given (a test renames inside it); true if
    /// this call flushed.
    fn flush_through_with(
        &self,
        n: u64,
        flush: impl FnOnce() -> std::io::Result<()>,
    ) -> std::io::Result<bool> {
        let mut through = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        if *through >= n {
            return Ok(false);
        }
        // Read before the flush begins: every rename numbered by now is in the directory.
        let covered = self.renames.load(Ordering::SeqCst);
        flush()?;
        *through = covered;
        Ok(true)
    }
}

impl FileProvider {
    pub fn new(name: &str, dir: PathBuf) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            dir,
            dir_sync: Arc::default(),
        })
    }

    fn path_for(&self, msg: &OutboundMessage) -> PathBuf {
        self.dir.join(format!("{}.eml", msg.id))
    }

    fn write(
        dir: &Path,
        path: &Path,
        msg: &OutboundMessage,
        dir_sync: &DirSync,
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("eml.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        // The envelope is not in the headers (Bcc, for one), so it is recorded on top.
        write!(f, "X-Postern-Envelope-From: <{}>\r\n", msg.mail_from)?;
        write!(
            f,
            "X-Postern-Envelope-To: {}\r\n",
            msg.recipients.join(", ")
        )?;
        f.write_all(&msg.raw)?;
        // A new file: its data and its size are all there is to flush.
        f.sync_data()?;
        std::fs::rename(&tmp, path)?;
        dir_sync.flush_through(dir, dir_sync.renamed())
    }
}

#[async_trait]
impl Provider for FileProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Delivery, ProviderError> {
        let (dir, path, m) = (self.dir.clone(), self.path_for(msg), msg.clone());
        let dir_sync = self.dir_sync.clone();
        let written =
            tokio::task::spawn_blocking(move || Self::write(&dir, &path, &m, &dir_sync)).await;
        match written {
            Ok(Ok(())) => Ok(Delivery {
                recipients: msg
                    .recipients
                    .iter()
                    .map(|r| {
                        (
                            r.clone(),
                            RecipientOutcome::Delivered {
                                response: format!("written {}.eml", msg.id),
                            },
                        )
                    })
                    .collect(),
            }),
            Ok(Err(e)) => Err(ProviderError::new(
                FailureClass::ProviderWide(ProviderWideKind::Unavailable),
                None,
                format!("cannot write to {}: {e}", self.dir.display()),
            )),
            Err(e) => Err(ProviderError::new(
                FailureClass::Transient,
                None,
                format!("writer task failed: {e}"),
            )),
        }
    }

    async fn was_delivered(&self, msg: &OutboundMessage) -> Option<bool> {
        Some(
            tokio::fs::try_exists(self.path_for(msg))
                .await
                .unwrap_or(false),
        )
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        tokio::fs::create_dir_all(&self.dir).await.map_err(|e| {
            ProviderError::new(
                FailureClass::ProviderWide(ProviderWideKind::Unavailable),
                None,
                format!("cannot create {}: {e}", self.dir.display()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::DirSync;

    /// One flush covers the renames numbered before it began, not one numbered while it ran,
    /// and a failed flush covers nothing.
    #[test]
    fn a_directory_flush_covers_only_the_renames_made_before_it_began() {
        let sync = DirSync::default();
        let (first, second) = (sync.renamed(), sync.renamed());
        let mut during = 0;
        let flushed = sync.flush_through_with(first, || {
            during = sync.renamed();
            Ok(())
        });
        assert_eq!(
            flushed.ok(),
            Some(true),
            "nothing had flushed the first rename"
        );
        assert_eq!(
            sync.flush_through_with(second, || Ok(())).ok(),
            Some(false),
            "numbered before the flush began, so covered by it"
        );
        let failed = sync.flush_through_with(during, || Err(std::io::Error::other("EIO")));
        assert!(failed.is_err(), "the flush's error reaches its caller");
        assert_eq!(
            sync.flush_through_with(during, || Ok(())).ok(),
            Some(true),
            "made during the first flush and not covered by the failed one: flushed now"
        );
    }
}
