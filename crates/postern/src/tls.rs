//! TLS material: the self-signed certificate `postern init` writes, and the rustls server
//! configuration built from PEM files.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

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

pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
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
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("certificate and key do not match")?;
    Ok(Arc::new(cfg))
}
