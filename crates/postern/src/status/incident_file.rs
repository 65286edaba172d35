//! The incident file `postern broadcast --incident FILE.toml` reads. Every error names the
//! file, the line and the key.
//!
//! ```toml
//! title = "Email delivery delayed"
//! state = "identified"                      # default: investigating
//! subject = "Postern notice: {{title}}"     # default: the title
//! body = """Hello {{tenant}}, ... {{status_url}}"""
//! status_body = "..."                       # what the public page shows; default: body for "customers"
//! from = "status@example.com"               # needed for email and webhook notices
//! tenants = "all"                           # or ["acme", "globex"]
//! channels = ["email", "sms", "webhook"]    # default: all three
//! suspect_provider = "ses"                  # never used for the notices
//! status_url = "https://status.example.com/status"
//! incident = "0193…"                        # post as an update to this incident instead of opening one
//! ```

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::IncidentState;

pub const BROADCAST_CHANNELS: [&str; 3] = ["email", "sms", "webhook"];
const PLACEHOLDERS: [&str; 3] = ["tenant", "status_url", "title"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    title: Spanned<String>,
    body: Spanned<String>,
    #[serde(default)]
    state: Option<Spanned<String>>,
    #[serde(default)]
    subject: Option<Spanned<String>>,
    #[serde(default)]
    status_body: Option<Spanned<String>>,
    #[serde(default)]
    from: Option<Spanned<String>>,
    tenants: Spanned<toml::Value>,
    #[serde(default)]
    channels: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    suspect_provider: Option<Spanned<String>>,
    #[serde(default)]
    status_url: Option<Spanned<String>>,
    #[serde(default)]
    incident: Option<Spanned<String>>,
}

/// Which tenants a broadcast goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    All,
    Named(Vec<String>),
}

/// A checked incident file. Tenant names, providers and the sender are checked against the
/// config and store when the broadcast is planned; `lines` keeps where each key was, for
/// those errors.
#[derive(Debug, Clone)]
pub struct IncidentFile {
    pub path: String,
    pub title: String,
    pub state: IncidentState,
    pub subject: String,
    pub body: String,
    pub status_body: Option<String>,
    pub from: Option<String>,
    pub tenants: Audience,
    pub channels: Vec<String>,
    pub suspect_provider: Option<String>,
    pub status_url: Option<String>,
    pub incident: Option<String>,
    /// `(key, line)` of each key present.
    pub lines: Vec<(&'static str, usize)>,
}

impl IncidentFile {
    /// "FILE line N, key `K`: ", for errors found after parsing.
    pub fn at(&self, key: &str) -> String {
        match self.lines.iter().find(|(k, _)| *k == key) {
            Some((_, line)) => format!("{} line {line}, key `{key}`", self.path),
            None => format!("{}, key `{key}`", self.path),
        }
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src.get(..offset).map_or(1, |s| s.matches('\n').count() + 1)
}

/// Checks that a template only uses the known `{{...}}` placeholders.
fn check_template(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err("`{{` without a closing `}}`".into());
        };
        let name = after[..j].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{{{name}}}}}; known: {}",
                PLACEHOLDERS.map(|p| format!("{{{{{p}}}}}")).join(", ")
            ));
        }
        rest = &after[j + 2..];
    }
    Ok(())
}

/// Fills in `{{tenant}}`, `{{status_url}}` and `{{title}}` (spaces inside the braces allowed).
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                let name = after[..j].trim();
                match values.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&rest[i..i + 2 + j + 2]),
                }
                rest = &after[j + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn load(path: &Path) -> anyhow::Result<IncidentFile> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    parse(&path.display().to_string(), &src)
}

pub fn parse(name: &str, src: &str) -> anyhow::Result<IncidentFile> {
    let raw: Raw = toml::from_str(src).map_err(|e| {
        let line = e.span().map(|s| line_of(src, s.start));
        let msg = e.message().to_owned();
        match line {
            Some(l) => anyhow::anyhow!("{name} line {l}: {msg}"),
            None => anyhow::anyhow!("{name}: {msg}"),
        }
    })?;
    let mut lines: Vec<(&'static str, usize)> = Vec::new();
    let bad = |key: &str, span: std::ops::Range<usize>, why: String| {
        anyhow::anyhow!(
            "{name} line {}, key `{key}`: {why}",
            line_of(src, span.start)
        )
    };
    let mut text =
        |key: &'static str, v: &Spanned<String>, template: bool| -> anyhow::Result<String> {
            lines.push((key, line_of(src, v.span().start)));
            let s = v.get_ref().trim();
            if s.is_empty() {
                return Err(bad(key, v.span(), "must not be empty".into()));
            }
            if template {
                check_template(s).map_err(|why| bad(key, v.span(), why))?;
            }
            Ok(s.to_owned())
        };
    let title = text("title", &raw.title, false)?;
    let body = text("body", &raw.body, true)?;
    let subject = match &raw.subject {
        Some(s) => text("subject", s, true)?,
        None => title.clone(),
    };
    let status_body = raw
        .status_body
        .as_ref()
        .map(|s| text("status_body", s, true))
        .transpose()?;
    let from = raw
        .from
        .as_ref()
        .map(|s| text("from", s, false))
        .transpose()?;
    let state = match &raw.state {
        Some(s) => {
            let v = text("state", s, false)?;
            IncidentState::parse(&v).map_err(|e| bad("state", s.span(), e.to_string()))?
        }
        None => IncidentState::Investigating,
    };
    let suspect_provider = raw
        .suspect_provider
        .as_ref()
        .map(|s| text("suspect_provider", s, false))
        .transpose()?;
    let status_url = match &raw.status_url {
        Some(s) => {
            let v = text("status_url", s, false)?;
            if !(v.starts_with("https://") || v.starts_with("http://")) {
                return Err(bad(
                    "status_url",
                    s.span(),
                    "must start with https:// or http://".into(),
                ));
            }
            Some(v)
        }
        None => None,
    };
    let incident = raw
        .incident
        .as_ref()
        .map(|s| text("incident", s, false))
        .transpose()?;
    lines.push(("tenants", line_of(src, raw.tenants.span().start)));
    let tenants = match raw.tenants.get_ref() {
        toml::Value::String(s) if s.trim() == "all" => Audience::All,
        toml::Value::Array(a) if !a.is_empty() => {
            let mut names = Vec::new();
            for v in a {
                match v.as_str().map(str::trim) {
                    Some(n) if !n.is_empty() => {
                        if !names.iter().any(|m: &String| m == n) {
                            names.push(n.to_owned());
                        }
                    }
                    _ => {
                        return Err(bad(
                            "tenants",
                            raw.tenants.span(),
                            format!("{v} is not a tenant name"),
                        ));
                    }
                }
            }
            Audience::Named(names)
        }
        _ => {
            return Err(bad(
                "tenants",
                raw.tenants.span(),
                "must be \"all\" or a non-empty list of tenant names".into(),
            ));
        }
    };
    let channels = match &raw.channels {
        Some(c) => {
            lines.push(("channels", line_of(src, c.span().start)));
            if c.get_ref().is_empty() {
                return Err(bad("channels", c.span(), "must not be empty".into()));
            }
            let mut out: Vec<String> = Vec::new();
            for ch in c.get_ref() {
                let ch = ch.trim();
                if !BROADCAST_CHANNELS.contains(&ch) {
                    return Err(bad(
                        "channels",
                        c.span(),
                        format!(
                            "unknown channel {ch:?}; channels: {}",
                            BROADCAST_CHANNELS.join(", ")
                        ),
                    ));
                }
                if !out.iter().any(|o| o == ch) {
                    out.push(ch.to_owned());
                }
            }
            out
        }
        None => BROADCAST_CHANNELS.map(String::from).to_vec(),
    };
    if channels.iter().any(|c| c == "email" || c == "webhook") && from.is_none() {
        return Err(anyhow::anyhow!(
            "{name}, key `from`: a sender address is needed when email or webhook is one of the channels"
        ));
    }
    Ok(IncidentFile {
        path: name.to_owned(),
        title,
        state,
        subject,
        body,
        status_body,
        from,
        tenants,
        channels,
        suspect_provider,
        status_url,
        incident,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "title = \"Delays\"\nbody = \"Hi {{tenant}}, see {{ status_url }}\"\nfrom = \"ops@example.com\"\ntenants = \"all\"\n";

    #[test]
    fn a_good_file_reads_with_defaults() {
        let f = parse("x.toml", GOOD).expect("parses");
        assert_eq!(f.tenants, Audience::All);
        assert_eq!(f.channels, ["email", "sms", "webhook"]);
        assert_eq!(f.state, IncidentState::Investigating);
        assert_eq!(f.subject, "Delays");
        assert_eq!(
            render(&f.body, &[("tenant", "Acme"), ("status_url", "http://s/")]),
            "Hi Acme, see http://s/"
        );
        assert_eq!(f.at("tenants"), "x.toml line 4, key `tenants`");
    }

    #[test]
    fn errors_name_line_and_key() {
        let cases = [
            (
                format!("{GOOD}channels = [\"fax\"]\n"),
                "x.toml line 5, key `channels`: unknown channel \"fax\"",
            ),
            (
                GOOD.replace("{{tenant}}", "{{name}}"),
                "x.toml line 2, key `body`: unknown placeholder {{name}}",
            ),
            (
                GOOD.replace("\"all\"", "[]"),
                "x.toml line 4, key `tenants`: must be",
            ),
            (
                format!("{GOOD}color = 1\n"),
                "x.toml line 5: unknown field `color`",
            ),
            (
                format!("{GOOD}state = \"fixed\"\n"),
                "x.toml line 5, key `state`: unknown incident state",
            ),
            (
                GOOD.replace("from = \"ops@example.com\"\n", ""),
                "key `from`",
            ),
            (
                GOOD.replace("title = \"Delays\"", "title = \"\""),
                "x.toml line 1, key `title`: must not be empty",
            ),
        ];
        for (src, want) in cases {
            let e = parse("x.toml", &src).expect_err(&src).to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
        let e = parse("x.toml", "title = \"a\"\nbody = \"b\"\n")
            .expect_err("tenants missing")
            .to_string();
        assert!(e.contains("missing field `tenants`"), "{e}");
    }
}
