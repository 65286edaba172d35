//! Reasons read by who answered: some providers document their own error codes and phrases, so
//! the remote host's (or the recipient domain's) provider decides the reading before the general
//! rules do. Adapted from Sisimai's rhost/*.go (BSD-2-Clause, Copyright azumakuniyuki and the
//! sisimai development team).
//!
//! This module names the provider and dispatches; `providers` holds the readers with short
//! tables, `microsoft` Microsoft's long table of status codes and phrases.

mod microsoft;
mod providers;

use super::reason::Reason;
use microsoft::microsoft;
use providers::{
    aol, cox, france_ptt, godaddy, gsuite, iua, kddi, messagelabs, nttdocomo, outlook, spectrum,
    tencent, yahooinc,
};

/// Providers with a table of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Aol,
    Cox,
    FrancePtt,
    GoDaddy,
    GSuite,
    Iua,
    Kddi,
    MessageLabs,
    Microsoft,
    NttDocomo,
    Outlook,
    Spectrum,
    Tencent,
    YahooInc,
}

/// Host name suffixes of each provider (Sisimai's `RhostClass`).
const CLASSES: &[(Provider, &[&str])] = &[
    (Provider::Aol, &[".mail.aol.com", ".mx.aol.com"]),
    (Provider::Cox, &["cox.net"]),
    (
        Provider::FrancePtt,
        &[".laposte.net", ".orange.fr", ".wanadoo.fr"],
    ),
    (
        Provider::GoDaddy,
        &["smtp.secureserver.net", "mailstore1.secureserver.net"],
    ),
    (Provider::GSuite, &["googlemail.com"]),
    (Provider::Iua, &[".email.ua"]),
    (Provider::Kddi, &[".ezweb.ne.jp", "msmx.au.com"]),
    (Provider::MessageLabs, &[".messagelabs.com"]),
    (
        Provider::Microsoft,
        &[
            ".prod.outlook.com",
            ".protection.outlook.com",
            ".onmicrosoft.com",
            ".exchangelabs.com",
        ],
    ),
    (Provider::NttDocomo, &["mfsmax.docomo.ne.jp"]),
    (Provider::Outlook, &[".hotmail.com"]),
    (Provider::Spectrum, &["charter.net"]),
    (Provider::Tencent, &[".qq.com"]),
    (Provider::YahooInc, &[".yahoodns.net"]),
];

/// What the provider tables look at.
pub(crate) struct Facts<'a> {
    /// Domain part of the recipient address.
    pub destination: &'a str,
    /// Hosts that answered (from the report and the diagnostic text), most likely first.
    pub rhosts: &'a [String],
    /// Hosts of the reporting side (the bounce's own Received headers).
    pub lhosts: &'a [String],
    pub status: &'a str,
    pub reply_code: &'a str,
    pub command: &'a str,
    /// The diagnostic text as written (not lower-cased).
    pub diagnosis: &'a str,
}

/// Sisimai's `rhost.Name`: the recipient domain first, then the remote hosts, then the local
/// ones.
fn provider(f: &Facts<'_>) -> Option<Provider> {
    let domain = f.destination.trim().to_ascii_lowercase();
    if domain.contains('.') {
        for (p, suffixes) in CLASSES {
            if suffixes.iter().any(|s| s.ends_with(domain.as_str())) {
                return Some(*p);
            }
        }
    }
    for hosts in [f.rhosts, f.lhosts] {
        for host in hosts {
            let host = host.to_ascii_lowercase();
            for (p, suffixes) in CLASSES {
                if suffixes.iter().any(|s| host.ends_with(s)) {
                    return Some(*p);
                }
            }
        }
    }
    None
}

/// The provider's own reading of the error, if it has one.
pub(crate) fn find(f: &Facts<'_>) -> Option<Reason> {
    if f.diagnosis.is_empty() {
        return None;
    }
    let name = match provider(f)? {
        Provider::Aol => aol(f),
        Provider::Cox => cox(f),
        Provider::FrancePtt => france_ptt(f),
        Provider::GoDaddy => godaddy(f),
        Provider::GSuite => gsuite(f),
        Provider::Iua => iua(f),
        Provider::Kddi => kddi(f),
        Provider::MessageLabs => messagelabs(f),
        Provider::Microsoft => microsoft(f),
        Provider::NttDocomo => nttdocomo(f),
        Provider::Outlook => outlook(f),
        Provider::Spectrum => spectrum(f),
        Provider::Tencent => tencent(f),
        Provider::YahooInc => yahooinc(f),
    }?;
    Reason::from_name(name).filter(|r| r.is_explicit())
}

/// The first reason whose phrases appear in `text`.
fn first_match(text: &str, table: &[(&'static str, &[&str])]) -> Option<&'static str> {
    table
        .iter()
        .find(|(_, phrases)| phrases.iter().any(|p| text.contains(p)))
        .map(|(r, _)| *r)
}

/// The text between `start` and the next `end` after it (Sisimai's `Select`).
fn select<'t>(text: &'t str, start: &str, end: &str) -> Option<&'t str> {
    let from = text.find(start)? + start.len();
    let rest = text.get(from..)?;
    let to = rest.find(end)?;
    rest.get(..to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        destination: &'a str,
        rhosts: &'a [String],
        status: &'a str,
        diagnosis: &'a str,
    ) -> Facts<'a> {
        Facts {
            destination,
            rhosts,
            lhosts: &[],
            status,
            reply_code: "",
            command: "",
            diagnosis,
        }
    }

    #[test]
    fn names_the_provider_by_domain_then_host() {
        let none: Vec<String> = Vec::new();
        assert_eq!(
            provider(&facts("qq.com", &none, "", "x")),
            Some(Provider::Tencent)
        );
        let hosts = vec!["mx1.example.mail.protection.outlook.com".to_string()];
        assert_eq!(
            provider(&facts("example.com", &hosts, "", "x")),
            Some(Provider::Microsoft)
        );
        assert_eq!(provider(&facts("com", &none, "", "x")), None);
        assert_eq!(provider(&facts("", &none, "", "x")), None);
    }

    #[test]
    fn reads_provider_codes() {
        let none: Vec<String> = Vec::new();
        let f = facts("qq.com", &none, "4.0.0", "550 Ip frequency limited [x]");
        assert_eq!(find(&f), Some(Reason::TooManyConn));
        let f = facts(
            "charter.net",
            &none,
            "5.0.0",
            "554 5.7.1 Refused - AUP#1270 x",
        );
        assert_eq!(spectrum(&f), None);
        let f = facts("charter.net", &none, "5.0.0", "554 Refused AUP#CXBL 1340");
        assert_eq!(spectrum(&f), Some("toomanyconn"));
        let f = facts("cox.net", &none, "5.0.0", "554 AUP#CXBL blocked");
        assert_eq!(cox(&f), Some("blocked"));
        let hosts = vec!["x.prod.outlook.com".to_string()];
        let f = facts(
            "example.com",
            &hosts,
            "5.1.10",
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        );
        assert_eq!(find(&f), Some(Reason::UserUnknown));
        let f = facts("example.com", &hosts, "5.x", "ütf-8 ∑");
        assert_eq!(find(&f), None);
    }
}
