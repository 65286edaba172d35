//! The incident a broadcast sends: the file `postern broadcast --incident FILE.toml` reads,
//! or the console's broadcast form. Both give a [`Draft`] to [`IncidentFile::check`], so the
//! rules are the same; every error names the file, the line and the key (or the form's field).
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

/// Where an incident came from, for naming the place of an error.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A TOML file, with the `(key, line)` of each key present.
    File {
        path: String,
        lines: Vec<(&'static str, usize)>,
    },
    /// The console's broadcast form: errors name the field.
    Form,
}

/// An incident's fields as given, before any check: what a file or the console's form
/// holds. [`IncidentFile::check`] is the one way from here to an [`IncidentFile`].
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub title: String,
    pub body: String,
    pub state: Option<String>,
    pub subject: Option<String>,
    pub status_body: Option<String>,
    pub from: Option<String>,
    /// `None`: every tenant.
    pub tenants: Option<Vec<String>>,
    /// `None`: every channel.
    pub channels: Option<Vec<String>>,
    pub suspect_provider: Option<String>,
    pub status_url: Option<String>,
    pub incident: Option<String>,
}

/// A bad value in an incident: the key (the form's field name), where it was and why.
/// Callers tell bad input from a failing store by this type.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {why}")]
pub struct Invalid {
    pub key: &'static str,
    pub at: String,
    pub why: String,
}

const TENANTS_SHAPE: &str = "must be \"all\" or a non-empty list of tenant names";

/// A checked incident. Tenant names, providers and the sender are checked against the
/// config and store when the broadcast is planned; `origin` keeps where each key was, for
/// those errors.
#[derive(Debug, Clone)]
pub struct IncidentFile {
    pub origin: Origin,
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
}

impl Origin {
    /// "FILE line N, key `K`" or "field `K`".
    fn at(&self, key: &str) -> String {
        match self {
            Self::File { path, lines } => match lines.iter().find(|(k, _)| *k == key) {
                Some((_, line)) => format!("{path} line {line}, key `{key}`"),
                None => format!("{path}, key `{key}`"),
            },
            Self::Form => format!("field `{key}`"),
        }
    }

    pub fn invalid(&self, key: &'static str, why: impl Into<String>) -> Invalid {
        Invalid {
            key,
            at: self.at(key),
            why: why.into(),
        }
    }
}

impl IncidentFile {
    /// A bad value found after checking (when the broadcast is planned).
    pub fn invalid(&self, key: &'static str, why: impl Into<String>) -> Invalid {
        self.origin.invalid(key, why)
    }

    /// The checks every incident passes, from a file or from the console's form.
    pub fn check(d: Draft, origin: Origin) -> Result<Self, Invalid> {
        let text = |key: &'static str, v: &str, template: bool| -> Result<String, Invalid> {
            let s = v.trim();
            if s.is_empty() {
                return Err(origin.invalid(key, "must not be empty"));
            }
            if template {
                check_template(s).map_err(|why| origin.invalid(key, why))?;
            }
            Ok(s.to_owned())
        };
        let opt = |key: &'static str, v: &Option<String>, template: bool| {
            v.as_deref().map(|v| text(key, v, template)).transpose()
        };
        let title = text("title", &d.title, false)?;
        let body = text("body", &d.body, true)?;
        let subject = opt("subject", &d.subject, true)?.unwrap_or_else(|| title.clone());
        let status_body = opt("status_body", &d.status_body, true)?;
        let from = opt("from", &d.from, false)?;
        let state = match opt("state", &d.state, false)? {
            Some(v) => {
                IncidentState::parse(&v).map_err(|e| origin.invalid("state", e.to_string()))?
            }
            None => IncidentState::Investigating,
        };
        let suspect_provider = opt("suspect_provider", &d.suspect_provider, false)?;
        let status_url = opt("status_url", &d.status_url, false)?;
        if let Some(v) = &status_url
            && !(v.starts_with("https://") || v.starts_with("http://"))
        {
            return Err(origin.invalid("status_url", "must start with https:// or http://"));
        }
        let incident = opt("incident", &d.incident, false)?;
        let tenants = match &d.tenants {
            None => Audience::All,
            Some(list) if list.is_empty() => return Err(origin.invalid("tenants", TENANTS_SHAPE)),
            Some(list) => {
                let mut names: Vec<String> = Vec::new();
                for n in list {
                    let n = n.trim();
                    if n.is_empty() {
                        return Err(
                            origin.invalid("tenants", format!("{n:?} is not a tenant name"))
                        );
                    }
                    if !names.iter().any(|m| m == n) {
                        names.push(n.to_owned());
                    }
                }
                Audience::Named(names)
            }
        };
        let channels = match &d.channels {
            None => BROADCAST_CHANNELS.map(String::from).to_vec(),
            Some(c) if c.is_empty() => return Err(origin.invalid("channels", "must not be empty")),
            Some(c) => {
                let mut out: Vec<String> = Vec::new();
                for ch in c {
                    let ch = ch.trim();
                    if !BROADCAST_CHANNELS.contains(&ch) {
                        return Err(origin.invalid(
                            "channels",
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
        };
        if channels.iter().any(|c| c == "email" || c == "webhook") && from.is_none() {
            return Err(origin.invalid(
                "from",
                "a sender address is needed when email or webhook is one of the channels",
            ));
        }
        Ok(Self {
            origin,
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
        })
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
    let mut take = |key: &'static str, v: &Spanned<String>| {
        lines.push((key, line_of(src, v.span().start)));
        v.get_ref().clone()
    };
    let mut opt = |key: &'static str, v: &Option<Spanned<String>>| v.as_ref().map(|v| take(key, v));
    let mut draft = Draft {
        title: String::new(),
        body: String::new(),
        state: opt("state", &raw.state),
        subject: opt("subject", &raw.subject),
        status_body: opt("status_body", &raw.status_body),
        from: opt("from", &raw.from),
        tenants: None,
        channels: None,
        suspect_provider: opt("suspect_provider", &raw.suspect_provider),
        status_url: opt("status_url", &raw.status_url),
        incident: opt("incident", &raw.incident),
    };
    draft.title = take("title", &raw.title);
    draft.body = take("body", &raw.body);
    lines.push(("tenants", line_of(src, raw.tenants.span().start)));
    if let Some(c) = &raw.channels {
        lines.push(("channels", line_of(src, c.span().start)));
        draft.channels = Some(c.get_ref().clone());
    }
    let origin = Origin::File {
        path: name.to_owned(),
        lines,
    };
    // The shape of `tenants` is the file's own matter; the names are checked with the rest.
    draft.tenants = match raw.tenants.get_ref() {
        toml::Value::String(s) if s.trim() == "all" => None,
        toml::Value::Array(a) if !a.is_empty() => {
            let mut names = Vec::new();
            for v in a {
                match v.as_str() {
                    Some(n) if !n.trim().is_empty() => names.push(n.to_owned()),
                    _ => {
                        return Err(origin
                            .invalid("tenants", format!("{v} is not a tenant name"))
                            .into());
                    }
                }
            }
            Some(names)
        }
        _ => return Err(origin.invalid("tenants", TENANTS_SHAPE).into()),
    };
    Ok(IncidentFile::check(draft, origin)?)
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
        assert_eq!(f.invalid("tenants", "").at, "x.toml line 4, key `tenants`");
    }

    #[test]
    fn the_form_is_checked_by_the_same_rules_and_errors_name_the_field() {
        let form = Draft {
            title: "Delays".into(),
            body: "Hi {{tenant}}".into(),
            from: Some("ops@example.com".into()),
            tenants: Some(vec!["acme".into(), "acme".into()]),
            channels: Some(vec!["email".into()]),
            ..Draft::default()
        };
        let f = IncidentFile::check(form.clone(), Origin::Form).expect("checks");
        assert_eq!(f.tenants, Audience::Named(vec!["acme".into()]));
        assert_eq!(f.invalid("tenants", "").at, "field `tenants`");
        let cases = [
            (
                Draft {
                    channels: Some(vec!["fax".into()]),
                    ..form.clone()
                },
                "channels",
                "field `channels`: unknown channel \"fax\"",
            ),
            (
                Draft {
                    tenants: Some(Vec::new()),
                    ..form.clone()
                },
                "tenants",
                "field `tenants`: must be",
            ),
            (
                Draft {
                    from: None,
                    ..form.clone()
                },
                "from",
                "field `from`: a sender address is needed",
            ),
            (
                Draft {
                    state: Some("fixed".into()),
                    ..form.clone()
                },
                "state",
                "field `state`: unknown incident state",
            ),
        ];
        for (d, key, want) in cases {
            let e = IncidentFile::check(d, Origin::Form).expect_err(want);
            assert_eq!(e.key, key);
            assert!(e.to_string().starts_with(want), "{e}");
        }
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
