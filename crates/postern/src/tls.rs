//! TLS material: the self-signed certificate `postern init` writes, and the rustls server
//! configurations built from PEM files. A [`CertResolver`] holds the current certificate and
//! key, so SIGHUP can swap them under running listeners without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Writes a self-signed certificate and key for `hostnames` (PEM, key readable by the owner
/// only).
pub fn write_self_signed(
    cert_path: &Path,
    key_path: &Path,
    hostnames: &[String],
) -> anyhow::Result<()> {
    let ck = rcgen::generate_simple_self_signed(hostnames.to_vec())
        .context("generating a certificate")?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if let Some(dir) = key_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(cert_path, ck.cert.pem())?;
    write_private(key_path, ck.key_pair.serialize_pem().as_bytes())?;
    Ok(())
}

/// Creates a file only its owner can read.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(bytes)
}

/// Reads a PEM certificate chain and its private key.
fn read_pair(
    cert_path: &Path,
    key_path: &Path,
) -> anyhow::Result<(
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
)> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert_path)
            .with_context(|| format!("opening {}", cert_path.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("reading certificates from {}", cert_path.display()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key_path).with_context(|| format!("opening {}", key_path.display()))?,
    ))
    .with_context(|| format!("reading the key from {}", key_path.display()))?
    .with_context(|| format!("no private key in {}", key_path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in {}", cert_path.display());
    }
    Ok((certs, key))
}

/// The certificate a listener presents, read from PEM files and read again by [`reload`]
/// (SIGHUP): new handshakes get the new certificate, connections already open keep theirs.
///
/// [`reload`]: CertResolver::reload
pub struct CertResolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl CertResolver {
    pub fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<Arc<Self>> {
        let current = RwLock::new(Self::read(cert_path, key_path)?);
        Ok(Arc::new(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current,
        }))
    }

    fn read(cert_path: &Path, key_path: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
        let (certs, key) = read_pair(cert_path, key_path)?;
        let ck = CertifiedKey::from_der(certs, key, &rustls::crypto::ring::default_provider())
            .with_context(|| {
                format!(
                    "{} and {} do not make a usable pair",
                    cert_path.display(),
                    key_path.display()
                )
            })?;
        Ok(Arc::new(ck))
    }

    /// Reads the files again; on any error the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = Self::read(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// A server configuration presenting whatever certificate this resolver holds;
    /// `alpn` protocols offered in that order (`http/1.1` for HTTPS, none for SMTP).
    pub fn server_config(
        self: &Arc<Self>,
        alpn: &[&[u8]],
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(self.clone());
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}
