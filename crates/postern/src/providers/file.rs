//! The embedded default: each delivered message becomes `<id>.eml` in a directory, so a new
//! user sees mail "sent" with nothing to configure. Writes are atomic (temp file, fsync,
//! rename), which also makes delivery idempotent: after a crash the file tells whether the
//! attempt landed.

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;

use super::{
    Delivery, FailureClass, OutboundMessage, Provider, ProviderError, ProviderWideKind,
    RecipientOutcome,
};

pub struct FileProvider {
    name: String,
    dir: PathBuf,
}

impl FileProvider {
    pub fn new(name: &str, dir: PathBuf) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            dir,
        })
    }

    fn path_for(&self, msg: &OutboundMessage) -> PathBuf {
        self.dir.join(format!("{}.eml", msg.id))
    }

    fn write(
        dir: &std::path::Path,
        path: &std::path::Path,
        msg: &OutboundMessage,
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
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

#[async_trait]
impl Provider for FileProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Delivery, ProviderError> {
        let (dir, path, m) = (self.dir.clone(), self.path_for(msg), msg.clone());
        let written = tokio::task::spawn_blocking(move || Self::write(&dir, &path, &m)).await;
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
