//! Loading: TOML, then `POSTERN_*` overrides, then the checks that name the offending line.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};

use super::*;

impl Config {
    /// Reads `path` if it exists (a missing file means all defaults), then applies
    /// `POSTERN_*` environment overrides.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut cfg = Self::from_toml_and_env(&text, std::env::vars())
            .with_context(|| format!("in config {}", path.display()))?;
        if let Some(base) = path.parent().filter(|b| !b.as_os_str().is_empty()) {
            cfg.resolve_paths(base);
        }
        Ok(cfg)
    }

    pub fn from_toml_and_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut root: toml::Table = toml::from_str(text)?;
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("POSTERN_") else {
                continue;
            };
            if rest == "CONFIG" || rest.starts_with("TEST_") || rest == "LOG" {
                continue;
            }
            apply_env(&mut root, &rest.to_ascii_lowercase(), &v)
                .with_context(|| format!("environment variable {k}"))?;
        }
        let limits = take_provider_limits(&mut root)?;
        let mut cfg: Config =
            toml::Value::Table(root)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let msg = e.to_string();
                    // The error names the key as "in `a.b.c`"; say where that is in the file.
                    match msg.rfind("in `") {
                        Some(i) => {
                            let mut path = msg[i + 4..].trim().trim_end_matches('`').to_owned();
                            if let Some(field) = msg
                                .strip_prefix("unknown field `")
                                .and_then(|r| r.split('`').next())
                            {
                                path = format!("{path}.{field}");
                            }
                            anyhow::anyhow!(
                                "{}: {}",
                                where_set(text, &path),
                                without_value(msg[..i].trim())
                            )
                        }
                        None => anyhow::anyhow!(without_value(&msg)),
                    }
                })?;
        cfg.provider_limits = limits;
        cfg.fill_defaults();
        cfg.check(text)?;
        Ok(cfg)
    }

    /// Relative paths in a config file are relative to the file, not to the working directory.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        for p in [&mut self.http.tls_cert, &mut self.http.tls_key]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
        if let Some(p) = self.smtp.tls_cert.as_mut() {
            fix(p);
        }
        if let Some(p) = self.smtp.tls_key.as_mut() {
            fix(p);
        }
        if let Some(p) = self.feedback.ses.ca_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.audit.head_file.as_mut() {
            fix(p);
        }
        for p in [
            &mut self.secrets.kek_file,
            &mut self.secrets.previous_kek_file,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        for p in self.providers.values_mut() {
            if let ProviderConfig::File { dir } = p {
                fix(dir);
            }
        }
    }

    /// The embedded default: a file-sink provider named `local` in `data_dir/outbox`.
    fn fill_defaults(&mut self) {
        if self.providers.is_empty() {
            self.providers.insert(
                "local".into(),
                ProviderConfig::File {
                    dir: self.data_dir.join("outbox"),
                },
            );
        }
    }

    fn check(&self, text: &str) -> anyhow::Result<()> {
        let route = || where_set(text, "routes.default");
        if self.routes.default.is_empty() {
            bail!(
                "{}: [routes] default must name at least one provider",
                route()
            );
        }
        for p in &self.routes.default {
            if !self.providers.contains_key(p) {
                let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                bail!(
                    "{}: [routes] default names provider {p:?}, which is not defined under [providers] (defined: {})",
                    route(),
                    known.join(", ")
                );
            }
        }
        if self.feedback.listen.is_some() && self.feedback.bounce_domain.is_none() {
            bail!(
                "{}: [feedback] listen needs bounce_domain (the domain the listener takes mail for)",
                where_set(text, "feedback.listen")
            );
        }
        if let Some(d) = &self.feedback.bounce_domain
            && (d.is_empty() || d.contains('@') || !d.contains('.'))
        {
            bail!(
                "{}: [feedback] bounce_domain must be a domain like bounces.example.com",
                where_set(text, "feedback.bounce_domain")
            );
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            bail!(
                "{}: [http] tls_cert and tls_key go together (both or neither)",
                where_set(
                    text,
                    if self.http.tls_cert.is_some() {
                        "http.tls_cert"
                    } else {
                        "http.tls_key"
                    }
                )
            );
        }
        if let Err((path, why)) = self.guard.check() {
            bail!("{}: {why}", where_set(text, &path));
        }
        if self.queue.lease_secs < MIN_LEASE_SECS {
            bail!(
                "{}: [queue] lease_secs is {}; at least {MIN_LEASE_SECS}: a claim whose lease runs out is taken back and tried again, so a lease shorter than an attempt sends twice",
                where_set(text, "queue.lease_secs"),
                self.queue.lease_secs
            );
        }
        if self.queue.backoff_max_secs == 0
            || self.queue.backoff_base_secs > self.queue.backoff_max_secs
        {
            bail!(
                "{}: [queue] backoff_max_secs is {} and backoff_base_secs {}: the cap must be at least 1 and at least the first delay",
                where_set(text, "queue.backoff_max_secs"),
                self.queue.backoff_max_secs,
                self.queue.backoff_base_secs
            );
        }
        if self.smtp.idle_timeout_secs == 0 {
            bail!(
                "{}: [smtp] idle_timeout_secs must be at least 1",
                where_set(text, "smtp.idle_timeout_secs")
            );
        }
        if self.queue.concurrency == 0 || self.queue.commit_batch == 0 {
            bail!(
                "{}: [queue] concurrency and commit_batch must be at least 1",
                where_set(text, "queue")
            );
        }
        if self.queue.flush_pacing_us > MAX_FLUSH_PACING_US {
            bail!(
                "{}: [queue] flush_pacing_us is {}; at most {MAX_FLUSH_PACING_US} (every accept may wait that long)",
                where_set(text, "queue.flush_pacing_us"),
                self.queue.flush_pacing_us
            );
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("postern.db").display()))
    }

    /// Plain HTTP only on loopback, unless `[http] allow_plaintext` says otherwise: API keys
    /// and admin tokens must not cross a network in the clear.
    pub fn check_http_exposure(&self) -> anyhow::Result<()> {
        let h = &self.http;
        if h.tls_cert.is_none() && !h.listen.ip().is_loopback() && !h.allow_plaintext {
            bail!(
                "[http] listen = \"{}\" is not a loopback address and [http] has no tls_cert/tls_key: \
                 refusing to serve plain HTTP there (set [http] tls_cert and tls_key, or \
                 [http] allow_plaintext = true behind a TLS-terminating proxy)",
                h.listen
            );
        }
        Ok(())
    }

    pub fn tls_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.smtp
                .tls_cert
                .clone()
                .unwrap_or_else(|| self.data_dir.join("tls/cert.pem")),
            self.smtp
                .tls_key
                .clone()
                .unwrap_or_else(|| self.data_dir.join("tls/key.pem")),
        )
    }
}

/// "line N, `a.b.c`" for a dotted key set in the TOML text, or says it came from the
/// environment when the text does not set it.
fn where_set(text: &str, path: &str) -> String {
    match line_of(text, path) {
        Some(n) => format!("line {n}, `{path}`"),
        None => format!("`{path}` (from the environment or a default)"),
    }
}

/// The 1-based line where a dotted key (or, failing that, its table) is set. A plain scan,
/// enough for the `[section]` / `[providers.NAME]` shape of postern.toml.
pub(super) fn line_of(text: &str, path: &str) -> Option<usize> {
    let parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| -> Option<String> {
        let t = l.trim();
        let inner = t.strip_prefix('[')?.split(']').next()?;
        Some(
            inner
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '"')
                .collect(),
        )
    };
    let key_in = |from: usize, key: &str| -> Option<usize> {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .take_while(|(i, l)| *i == from || header(l).is_none())
            .find(|(_, l)| {
                l.trim()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|(i, _)| i + 1)
    };
    for split in (1..=parts.len()).rev() {
        let table = parts[..split].join(".");
        let Some(h) = lines
            .iter()
            .position(|l| header(l).as_deref() == Some(&table))
        else {
            continue;
        };
        return parts
            .get(split)
            .and_then(|key| key_in(h + 1, key))
            .or(Some(h + 1));
    }
    // A top-level key, before the first table.
    let first = *parts.first()?;
    key_in(0, first).filter(|n| lines[..*n].iter().all(|l| header(l).is_none()))
}

/// Removes `max_rate` / `max_concurrency` from every provider table and returns them.
fn take_provider_limits(
    root: &mut toml::Table,
) -> anyhow::Result<BTreeMap<String, ProviderLimits>> {
    let mut out = BTreeMap::new();
    let Some(toml::Value::Table(providers)) = root.get_mut("providers") else {
        return Ok(out);
    };
    for (name, p) in providers.iter_mut() {
        let toml::Value::Table(t) = p else { continue };
        let max_rate = match t.remove("max_rate") {
            None => None,
            Some(toml::Value::Integer(n)) if n > 0 => Some(n as f64),
            // At least one message in 1,000 s: the interval between two is kept as a Duration.
            Some(toml::Value::Float(f)) if (0.001..=1e9).contains(&f) => Some(f),
            Some(v) => bail!(
                "[providers.{name}] max_rate must be a number of messages per second from 0.001 up, not {v}"
            ),
        };
        let max_concurrency = match t.remove("max_concurrency") {
            None => None,
            Some(toml::Value::Integer(n)) if n > 0 => Some(usize::try_from(n)?),
            Some(v) => {
                bail!("[providers.{name}] max_concurrency must be a positive whole number, not {v}")
            }
        };
        out.insert(
            name.clone(),
            ProviderLimits {
                max_rate,
                max_concurrency,
            },
        );
    }
    Ok(out)
}

const TOP_LEVEL: &[&str] = &["data_dir", "database_url"];

/// `http_listen` → `[http] listen`; `providers_relay_host` → `[providers.relay] host`.
fn apply_env(root: &mut toml::Table, key: &str, raw: &str) -> anyhow::Result<()> {
    let value = parse_env_value(raw);
    if TOP_LEVEL.contains(&key) {
        root.insert(key.to_owned(), value);
        return Ok(());
    }
    let (section, rest) = key
        .split_once('_')
        .context("expected POSTERN_<SECTION>_<KEY>")?;
    let table = root
        .entry(section)
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .context("not a section")?;
    if section == "providers" {
        let (name, field) = rest
            .split_once('_')
            .context("expected POSTERN_PROVIDERS_<NAME>_<KEY>")?;
        let p = table
            .entry(name)
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .context("provider is not a table")?;
        p.insert(field.to_owned(), value);
    } else if let Some(field) = rest.strip_prefix("ses_").filter(|_| section == "feedback") {
        // POSTERN_FEEDBACK_SES_<KEY>: the [feedback.ses] table.
        table
            .entry("ses")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .context("[feedback] ses is not a table")?
            .insert(field.to_owned(), value);
    } else if let (true, Some(field)) = (section == "guard", rest.strip_prefix("policy_")) {
        // POSTERN_GUARD_POLICY_HOLD_KEY_AT, POSTERN_GUARD_POLICY_SCORES_VOLUME
        let policy = table
            .entry("policy")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .context("guard.policy is not a table")?;
        match field.strip_prefix("scores_") {
            Some(signal) => {
                policy
                    .entry("scores")
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .context("guard.policy.scores is not a table")?
                    .insert(signal.to_owned(), value);
            }
            None => {
                policy.insert(field.to_owned(), value);
            }
        }
    } else {
        table.insert(rest.to_owned(), value);
    }
    Ok(())
}

/// A setting may be a secret (a provider password given as a number by mistake), so a type
/// error names the key and the types, never the value: "invalid type: integer `12345678`,
/// expected a string" becomes "invalid type: integer, expected a string".
fn without_value(msg: &str) -> String {
    let Some((found, expected)) = msg
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected "))
    else {
        return msg.to_owned();
    };
    let kind = found.split(['`', '"']).next().unwrap_or(found).trim();
    format!("invalid type: {kind}, expected {expected}")
}

/// Shortest `[queue] lease_secs`: longer than an attempt may take.
const MIN_LEASE_SECS: u64 = 30;

/// Numbers, booleans and arrays are read as TOML; anything else is a string.
fn parse_env_value(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}
