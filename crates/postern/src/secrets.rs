//! Secrets at rest: provider credentials, OAuth tokens and webhook signing secrets are
//! envelope-encrypted. Each secret has its own random data key (AES-256-GCM); the data key is
//! wrapped by the key-encryption key (KEK), which lives outside the database (a file, an
//! environment variable, or a command that prints it, so a KMS or vault can supply it). A
//! copy of the database alone holds only ciphertext.
//!
//! Every row names the KEK that wrapped its data key (`kek_id`: the first 8 bytes of the KEK's
//! SHA-256, hex), so during a rotation rows wrapped by the new KEK and by the previous one
//! (`[secrets] previous_kek_*`) can both be read.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use anyhow::{Context, bail};
use base64::Engine;
use rand::RngCore;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{Config, ProviderConfig};
use crate::store::{SecretRow, Store};

/// What a provider setting says to take its value from the secret store.
pub const REF_PREFIX: &str = "secret:";
const NONCE_LEN: usize = 12;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `[secrets]` in postern.toml: where the KEK (and, during a rotation, the previous one) is.
/// `Debug` leaves out the commands (a vault client's command line may carry a token).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// A file holding the KEK: base64 of 32 bytes.
    #[serde(default)]
    pub kek_file: Option<std::path::PathBuf>,
    /// An environment variable holding it.
    #[serde(default)]
    pub kek_env: Option<String>,
    /// A command (run with `sh -c`) that prints it: a KMS or vault client.
    #[serde(default)]
    pub kek_command: Option<String>,
    #[serde(default)]
    pub previous_kek_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub previous_kek_env: Option<String>,
    #[serde(default)]
    pub previous_kek_command: Option<String>,
}

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cmd = |c: &Option<String>| c.as_ref().map(|_| "[command]");
        f.debug_struct("SecretsConfig")
            .field("kek_file", &self.kek_file)
            .field("kek_env", &self.kek_env)
            .field("kek_command", &cmd(&self.kek_command))
            .field("previous_kek_file", &self.previous_kek_file)
            .field("previous_kek_env", &self.previous_kek_env)
            .field("previous_kek_command", &cmd(&self.previous_kek_command))
            .finish()
    }
}

/// Where a KEK comes from. A command is never printed (its text may carry a vault token):
/// `Debug` and `Display` name it as `[secrets] kek_command`.
#[derive(Clone, PartialEq, Eq)]
pub enum KekSource {
    File(std::path::PathBuf),
    Env(String),
    Command(String),
}

impl std::fmt::Display for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KekSource::File(p) => write!(f, "the file {}", p.display()),
            KekSource::Env(v) => write!(f, "the environment variable {v}"),
            KekSource::Command(_) => write!(f, "the output of the KEK command"),
        }
    }
}

impl std::fmt::Debug for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KekSource({self})")
    }
}

impl KekSource {
    /// At most one of the three; `what` names the settings in errors.
    pub fn pick(
        file: &Option<std::path::PathBuf>,
        env: &Option<String>,
        command: &Option<String>,
        what: &str,
    ) -> anyhow::Result<Option<Self>> {
        let mut found = vec![];
        if let Some(p) = file {
            found.push(KekSource::File(p.clone()));
        }
        if let Some(v) = env {
            found.push(KekSource::Env(v.clone()));
        }
        if let Some(c) = command {
            found.push(KekSource::Command(c.clone()));
        }
        if found.len() > 1 {
            bail!("[secrets] set only one of {what}_file, {what}_env and {what}_command");
        }
        Ok(found.pop())
    }

    /// Reads and decodes the KEK.
    pub fn load(&self) -> anyhow::Result<Kek> {
        let text = Zeroizing::new(match self {
            KekSource::File(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading the KEK from {self}"))?,
            KekSource::Env(v) => {
                std::env::var(v).map_err(|_| anyhow::anyhow!("no KEK in {self}: it is not set"))?
            }
            KekSource::Command(c) => {
                let out = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(c)
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .context("running the KEK command ([secrets] kek_command)")?;
                if !out.status.success() {
                    bail!(
                        "the KEK command ([secrets] kek_command) failed ({})",
                        out.status
                    );
                }
                String::from_utf8(out.stdout).map_err(|_| {
                    anyhow::anyhow!("the KEK command ([secrets] kek_command) printed non-text")
                })?
            }
        });
        let bytes = Zeroizing::new(B64.decode(text.trim()).map_err(|_| {
            anyhow::anyhow!(
                "the KEK from {self} is not base64 (expected base64 of 32 random bytes)"
            )
        })?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            anyhow::anyhow!(
                "the KEK from {self} is {} bytes; it must be 32 (base64 of 32 random bytes)",
                bytes.len()
            )
        })?;
        Ok(Kek::new(key, self.to_string()))
    }
}

/// A key-encryption key. `Debug` shows only its id and where it came from.
pub struct Kek {
    id: String,
    key: Zeroizing<[u8; 32]>,
    source: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek({} from {})", self.id, self.source)
    }
}

impl Kek {
    pub fn new(key: [u8; 32], source: String) -> Self {
        let id = hex::encode(&Sha256::digest(key)[..8]);
        Self {
            id,
            key: Zeroizing::new(key),
            source,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The KEKs a process can read secrets with: the current one (which also wraps new ones)
/// and, during a rotation, the previous one.
#[derive(Debug)]
pub struct Keyring {
    pub current: Kek,
    pub previous: Option<Kek>,
}

impl Keyring {
    /// From `[secrets]`; an error says which setting is missing or unreadable.
    pub fn from_config(cfg: &SecretsConfig) -> anyhow::Result<Self> {
        let current = KekSource::pick(&cfg.kek_file, &cfg.kek_env, &cfg.kek_command, "kek")?
            .context(
                "no KEK configured: set [secrets] kek_file, kek_env or kek_command \
                 (POSTERN_SECRETS_KEK_FILE, ...) to base64 of 32 random bytes",
            )?
            .load()?;
        let previous = KekSource::pick(
            &cfg.previous_kek_file,
            &cfg.previous_kek_env,
            &cfg.previous_kek_command,
            "previous_kek",
        )?
        .map(|s| s.load())
        .transpose()?;
        Ok(Self { current, previous })
    }

    fn kek_for(&self, row: &SecretRow) -> anyhow::Result<&Kek> {
        [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == row.kek_id)
            .ok_or_else(|| {
                let prev = self
                    .previous
                    .as_ref()
                    .map(|p| format!(", previous KEK {} from {}", p.id, p.source))
                    .unwrap_or_default();
                anyhow::anyhow!(
                    "secret {:?} is wrapped by KEK {}, but the configured KEK is {} from {}{prev}: wrong KEK \
                     (after `secrets rotate-kek`, set the new KEK and the old one as previous_kek_*)",
                    row.name,
                    row.kek_id,
                    self.current.id,
                    self.current.source
                )
            })
    }

    /// Encrypts `value` under a fresh data key wrapped by the current KEK:
    /// `(kek_id, wrapped data key, ciphertext)`, the last two base64.
    pub fn seal(&self, name: &str, value: &[u8]) -> anyhow::Result<(String, String, String)> {
        let mut dek = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(dek.as_mut());
        let ciphertext = seal(&dek, value_aad(name).as_bytes(), value)?;
        let wrapped = seal(&self.current.key, dek_aad(name).as_bytes(), dek.as_ref())?;
        Ok((
            self.current.id.clone(),
            B64.encode(wrapped),
            B64.encode(ciphertext),
        ))
    }

    fn unwrap_dek(&self, row: &SecretRow) -> anyhow::Result<Zeroizing<[u8; 32]>> {
        let kek = self.kek_for(row)?;
        let dek = Zeroizing::new(
            open(
                &kek.key,
                dek_aad(&row.name).as_bytes(),
                &decode(&row.wrapped_key, &row.name)?,
            )
            .with_context(|| format!("unwrapping the data key of secret {:?}", row.name))?,
        );
        let dek: [u8; 32] = dek.as_slice().try_into().map_err(|_| {
            anyhow::anyhow!("secret {:?}: the data key has the wrong length", row.name)
        })?;
        Ok(Zeroizing::new(dek))
    }

    /// Decrypts a stored secret.
    pub fn open(&self, row: &SecretRow) -> anyhow::Result<SecretString> {
        let dek = self.unwrap_dek(row)?;
        let plain = Zeroizing::new(
            open(
                &dek,
                value_aad(&row.name).as_bytes(),
                &decode(&row.ciphertext, &row.name)?,
            )
            .with_context(|| format!("decrypting secret {:?}", row.name))?,
        );
        let text = String::from_utf8(plain.to_vec())
            .map_err(|_| anyhow::anyhow!("secret {:?} is not text", row.name))?;
        Ok(SecretString::from(text))
    }

    /// The row's data key wrapped again by `new`: `(kek_id, wrapped)`.
    pub fn rewrap(&self, row: &SecretRow, new: &Kek) -> anyhow::Result<(String, String)> {
        let dek = self.unwrap_dek(row)?;
        let wrapped = seal(&new.key, dek_aad(&row.name).as_bytes(), dek.as_ref())?;
        Ok((new.id.clone(), B64.encode(wrapped)))
    }
}

// The name is bound into both ciphertexts, so rows cannot be swapped between names.
fn value_aad(name: &str) -> String {
    format!("postern-secret-value:{name}")
}

fn dek_aad(name: &str) -> String {
    format!("postern-secret-dek:{name}")
}

fn decode(b64: &str, name: &str) -> anyhow::Result<Vec<u8>> {
    B64.decode(b64)
        .map_err(|_| anyhow::anyhow!("secret {name:?}: stored ciphertext is not base64"))
}

/// `nonce || AES-256-GCM(key, nonce, plain, aad)`.
fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> anyhow::Result<Vec<u8>> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| anyhow::anyhow!("encryption failed"))?;
    Ok([nonce.as_slice(), &ct].concat())
}

fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        bail!("ciphertext too short");
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| anyhow::anyhow!("authentication failed (wrong key, or the row was altered)"))
}

/// A secret's name: letters, digits, `.`, `_`, `-`; 1 to 64 characters.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        bail!("secret name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

/// Stores `value` under `name` (a new version when it exists); returns the version.
pub async fn set(
    store: &Store,
    keys: &Keyring,
    name: &str,
    value: &[u8],
    now: i64,
) -> anyhow::Result<i64> {
    check_name(name)?;
    let (kek_id, wrapped, ciphertext) = keys.seal(name, value)?;
    Ok(store
        .put_secret(name, &kek_id, &wrapped, &ciphertext, now)
        .await?)
}

/// Reads and decrypts `name`.
pub async fn get(store: &Store, keys: &Keyring, name: &str) -> anyhow::Result<SecretString> {
    let row = store.secret(name).await?.with_context(|| {
        format!("no secret {name:?} in the store (add it with `postern secrets set {name}`)")
    })?;
    keys.open(&row)
}

/// Wraps every data key with `new`, in one transaction; returns how many.
pub async fn rotate_kek(store: &Store, keys: &Keyring, new: &Kek, now: i64) -> anyhow::Result<u64> {
    store.rewrap_secrets(now, |row| keys.rewrap(row, new)).await
}

/// The secret fields of a provider's settings, by name.
fn secret_fields(p: &mut ProviderConfig) -> Vec<(&'static str, &mut SecretString)> {
    match p {
        ProviderConfig::File { .. } => vec![],
        ProviderConfig::Smtp { password, .. } => {
            password.iter_mut().map(|s| ("password", s)).collect()
        }
        ProviderConfig::Ses {
            secret_access_key, ..
        } => vec![("secret_access_key", secret_access_key)],
        ProviderConfig::Postmark { server_token, .. } => vec![("server_token", server_token)],
        ProviderConfig::Mailgun { api_key, .. } | ProviderConfig::Sendgrid { api_key, .. } => {
            vec![("api_key", api_key)]
        }
        ProviderConfig::Twilio { auth_token, .. } => vec![("auth_token", auth_token)],
        ProviderConfig::Webhook { secret, .. } => vec![("secret", secret)],
        ProviderConfig::Social { access_token, .. } => vec![("access_token", access_token)],
    }
}

/// Whether any provider setting refers to the secret store.
pub fn has_refs(cfg: &Config) -> bool {
    cfg.providers.values().any(|p| {
        secret_fields(&mut p.clone())
            .iter()
            .any(|(_, v)| v.expose_secret().starts_with(REF_PREFIX))
    })
}

/// The config with every `"secret:NAME"` provider setting replaced by the stored secret.
/// Plain values are left as they are. The KEK is loaded only when something refers to it.
pub async fn resolve_config(cfg: &Config, store: &Store) -> anyhow::Result<Config> {
    let mut cfg = cfg.clone();
    let mut keys: Option<Keyring> = None;
    for (provider, p) in cfg.providers.iter_mut() {
        for (field, value) in secret_fields(p) {
            let Some(name) = value
                .expose_secret()
                .strip_prefix(REF_PREFIX)
                .map(str::to_owned)
            else {
                continue;
            };
            let keys = match &mut keys {
                Some(k) => &*k,
                None => &*keys.insert(Keyring::from_config(&cfg.secrets).with_context(|| {
                    format!("[providers.{provider}] {field} refers to secret {name:?}")
                })?),
            };
            *value = get(store, keys, &name)
                .await
                .with_context(|| format!("[providers.{provider}] {field}"))?;
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, sealed: (String, String, String)) -> SecretRow {
        SecretRow {
            name: name.into(),
            version: 1,
            kek_id: sealed.0,
            wrapped_key: sealed.1,
            ciphertext: sealed.2,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn ring(k: u8, prev: Option<u8>) -> Keyring {
        Keyring {
            current: Kek::new([k; 32], format!("test {k}")),
            previous: prev.map(|p| Kek::new([p; 32], format!("test {p}"))),
        }
    }

    #[test]
    fn seal_open_rewrap_and_wrong_keys() {
        let a = ring(1, None);
        let r = row("ses", a.seal("ses", b"wJalrXUtnFEMI").unwrap());
        assert_eq!(a.open(&r).unwrap().expose_secret(), "wJalrXUtnFEMI");
        // Bound to its name.
        let mut moved = r.clone();
        moved.name = "other".into();
        assert!(a.open(&moved).is_err());
        // Another KEK cannot read it, and says which KEK it needs.
        let e = ring(2, None).open(&r).unwrap_err().to_string();
        assert!(e.contains(&r.kek_id) && e.contains("wrong KEK"), "{e}");
        // Rewrapped under B: B reads it, A alone does not, B with A as previous reads both.
        let b = Kek::new([2; 32], "b".into());
        let (kek_id, wrapped) = a.rewrap(&r, &b).unwrap();
        let r2 = SecretRow {
            kek_id,
            wrapped_key: wrapped,
            ..r.clone()
        };
        assert_eq!(
            ring(2, None).open(&r2).unwrap().expose_secret(),
            "wJalrXUtnFEMI"
        );
        assert!(a.open(&r2).is_err());
        let both = ring(2, Some(1));
        assert!(both.open(&r).is_ok() && both.open(&r2).is_ok());
        // Debug shows no key material.
        assert!(!format!("{:?}", both.current).contains("[2, 2"));
    }

    #[test]
    fn the_sections_parse_and_typos_name_their_line() {
        let cfg = Config::from_toml_and_env(
            "[secrets]\nkek_env = \"MAILGW_KEK\"\nkek_command = \"vault read -token=abc\"\n\
             [audit]\nhead_file = \"/var/log/postern-audit-head\"\n\
             [leaks]\npublic_keys = [{ id = \"k\", pem = \"x\" }]\n",
            [],
        )
        .unwrap();
        assert_eq!(cfg.secrets.kek_env.as_deref(), Some("MAILGW_KEK"));
        assert!(
            !format!("{cfg:?}").contains("abc"),
            "a KEK command in Debug"
        );
        assert!(
            KekSource::pick(&None, &cfg.secrets.kek_env, &cfg.secrets.kek_command, "kek").is_err()
        );
        assert_eq!(cfg.leaks.public_keys[0].id, "k");
        let e = Config::from_toml_and_env("[secrets]\nkek_fil = \"k\"\n", [])
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("kek_fil"), "{e}");
    }

    #[test]
    fn kek_sources_name_themselves_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        let e = KekSource::File(missing.clone()).load().unwrap_err();
        assert!(
            format!("{e:#}").contains(&missing.display().to_string()),
            "{e:#}"
        );
        let e = KekSource::Env("POSTERN_TEST_NO_SUCH_KEK".into())
            .load()
            .unwrap_err();
        assert!(e.to_string().contains("POSTERN_TEST_NO_SUCH_KEK"), "{e}");
        let short = dir.path().join("short.key");
        std::fs::write(&short, B64.encode([0u8; 16])).unwrap();
        let e = KekSource::File(short).load().unwrap_err();
        assert!(e.to_string().contains("16 bytes"), "{e}");
        let k = KekSource::Command(format!("echo {}", B64.encode([5u8; 32])))
            .load()
            .unwrap();
        assert_eq!(k.id(), Kek::new([5; 32], String::new()).id());
        let e = KekSource::Command("exit 3".into()).load().unwrap_err();
        assert!(e.to_string().contains("failed"), "{e}");
        assert!(
            !format!("{e:#}").contains("exit 3"),
            "the command is never printed: {e:#}"
        );
        let e = Keyring::from_config(&SecretsConfig::default()).unwrap_err();
        assert!(e.to_string().contains("kek_file"), "{e}");
    }
}
