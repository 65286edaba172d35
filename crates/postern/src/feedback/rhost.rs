//! Reasons read by who answered: some providers document their own error codes and phrases, so
//! the remote host's (or the recipient domain's) provider decides the reading before the general
//! rules do. Adapted from Sisimai's rhost/*.go (BSD-2-Clause, Copyright azumakuniyuki and the
//! sisimai development team).

use super::reason::Reason;

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

fn aol(f: &Facts<'_>) -> Option<&'static str> {
    first_match(
        f.diagnosis,
        &[
            ("hostunknown", &["Host or domain name not found"]),
            (
                "notaccept",
                &["type=MX: Malformed or unexpected name server reply"],
            ),
        ],
    )
}

fn cox(f: &Facts<'_>) -> Option<&'static str> {
    const CODES: &[(&str, &str)] = &[
        ("CXBL", "blocked"),
        ("CXDNS", "requireptr"),
        ("CXSNDR", "authfailure"),
        ("CXSMTP", "rejected"),
        ("CXCNCT", "toomanyconn"),
        ("CXMXRT", "toomanyconn"),
        ("CDRBL", "blocked"),
        ("CXTHRT", "securityerror"),
        ("CXMJ", "securityerror"),
        ("URLBL011", "spamdetected"),
        ("URLBL101", "spamdetected"),
        ("URLBL110", "spamdetected"),
        ("URLBL1001", "spamdetected"),
    ];
    let text = format!("{} ", f.diagnosis);
    if let Some(code) = select(&text, "AUP#", " ") {
        if let Some((_, r)) = CODES.iter().find(|(c, _)| *c == code) {
            return Some(r);
        }
        // IPBL0001 .. IPBL1111 and IPBL00001: the sending IP is on a DNS block list.
        if code.starts_with("IPBL") {
            return Some("blocked");
        }
    }
    first_match(
        &text.to_ascii_lowercase(),
        &[
            (
                "blocked",
                &[
                    "cox too many bad commands from",
                    "too many invalid recipients",
                ],
            ),
            (
                "requireptr",
                &["dns check failure - try again later", "rejected - no rdns"],
            ),
            (
                "policyviolation",
                &[
                    "esmtp no data before greeting",
                    "attachment extension is forbidden",
                ],
            ),
            ("rejected", &["sender rejected"]),
            ("systemerror", &["esmtp server temporarily not available"]),
            (
                "toomanyconn",
                &[
                    "too many sessions from",
                    "requested action aborted: try again later",
                    "message threshold exceeded",
                ],
            ),
            ("userunknown", &["recipient rejected"]),
        ],
    )
}

fn france_ptt(f: &Facts<'_>) -> Option<&'static str> {
    const CODES: &[(&str, &str)] = &[
        ("101", "blocked"),
        ("102", "blocked"),
        ("103", "blocked"),
        ("104", "toomanyconn"),
        ("305", "securityerror"),
        ("401", "authfailure"),
        ("402", "securityerror"),
        ("403", "rejected"),
        ("405", "rejected"),
        ("415", "rejected"),
        ("416", "userunknown"),
        ("417", "mailboxfull"),
        ("420", "suspend"),
        ("421", "rejected"),
        ("426", "suspend"),
        ("505", "systemerror"),
        ("506", "spamdetected"),
        ("510", "blocked"),
        ("514", "mesgtoobig"),
        ("517", "authfailure"),
        ("630", "policyviolation"),
        ("999", "blocked"),
    ];
    let text = f.diagnosis.replace('_', "-").to_ascii_lowercase();
    for label in ["lpn", "lpnaaa", "ofr", "ouk"] {
        let Some(at) = text.rfind(label) else {
            continue;
        };
        let mut label_len = label.len();
        if text.contains(&format!("{label}-")) {
            label_len += 1;
        }
        let code = text
            .get(at + label_len.saturating_sub(1)..)
            .unwrap_or("")
            .split(' ')
            .next()
            .unwrap_or("");
        if let Some((_, r)) = CODES.iter().find(|(c, _)| code.ends_with(c)) {
            return Some(r);
        }
        break;
    }
    first_match(
        &text,
        &[("authfailure", &["spf/dns de votre nom de domaine"])],
    )
}

fn godaddy(f: &Facts<'_>) -> Option<&'static str> {
    const CODES: &[(&str, &str)] = &[
        ("IB401", "securityerror"),
        ("IB501", "notcompliantrfc"),
        ("IB502", "notcompliantrfc"),
        ("IB506", "rejected"),
        ("IB508", "authfailure"),
        ("IB108", "requireptr"),
        ("IB212", "spamdetected"),
        ("IB705", "virusdetected"),
        ("IB605", "toomanyconn"),
        ("IB007", "toomanyconn"),
        ("IB101", "speeding"),
        ("IB110", "blocked"),
        ("IB111", "blocked"),
        ("IB112", "blocked"),
        ("IB113", "blocked"),
        ("IB504", "speeding"),
        ("IB510", "speeding"),
        ("IB607", "speeding"),
        ("IB103", "badreputation"),
        ("IB104", "blocked"),
        ("IB105", "blocked"),
        ("IB106", "blocked"),
    ];
    if let Some(code) = select(f.diagnosis, " IB", " ")
        && let Some((_, r)) = CODES.iter().find(|(c, _)| c.get(2..) == Some(code))
    {
        return Some(r);
    }
    first_match(
        &f.diagnosis.to_ascii_lowercase(),
        &[
            ("blocked", &["rbl reject", "www.spamhaus.org/query/bl?ip="]),
            (
                "expired",
                &["has been in the queue too long", "delivery timeout"],
            ),
            ("mailboxfull", &["account storage limit"]),
            (
                "spamdetected",
                &["message rejected for spam or virus content"],
            ),
            ("suspend", &["account disabled"]),
            ("systemerror", &["message is looping"]),
            (
                "userunknown",
                &["recipient not found", "account does not exist"],
            ),
        ],
    )
}

fn gsuite(f: &Facts<'_>) -> Option<&'static str> {
    let status = f.status.get(..1).unwrap_or("");
    let reply = f.reply_code.get(..1).unwrap_or("");
    let table: &[(&str, &[&str])] = &[
        (
            "hostunknown",
            &[" responded with code NXDOMAIN", "Domain name not found"],
        ),
        (
            "networkerror",
            &[
                " had no relevant answers.",
                "responded with code NXDOMAIN",
                "Domain name not found",
            ],
        ),
        ("notaccept", &["Null MX"]),
        (
            "userunknown",
            &[
                "because the address couldn't be found. Check for typos or unnecessary spaces and try again.",
            ],
        ),
    ];
    for (reason, phrases) in table {
        if !phrases.iter().any(|p| f.diagnosis.contains(p)) {
            continue;
        }
        // NXDOMAIN is a lost host when permanent, a network error when temporary.
        if *reason == "networkerror" && (status == "5" || reply == "5") {
            continue;
        }
        if *reason == "hostunknown"
            && (status == "4" || status.is_empty() || reply == "4" || reply.is_empty())
        {
            continue;
        }
        return Some(reason);
    }
    None
}

fn iua(f: &Facts<'_>) -> Option<&'static str> {
    let text = f.diagnosis.to_ascii_lowercase();
    Some(match select(&text, ".i.ua/err/", "/")? {
        "1" | "6" => "norelaying",
        "2" => "userunknown",
        "3" => "suspend",
        "4" => "mailboxfull",
        "5" => "toomanyconn",
        "7" | "9" => "blocked",
        "8" => "rejected",
        "10" => "filtered",
        _ => return None,
    })
}

fn kddi(f: &Facts<'_>) -> Option<&'static str> {
    first_match(
        &f.diagnosis.to_ascii_lowercase(),
        &[
            ("filtered", &["550 : user unknown"]),
            ("userunknown", &[">: user unknown"]),
        ],
    )
}

fn messagelabs(f: &Facts<'_>) -> Option<&'static str> {
    first_match(
        f.diagnosis,
        &[
            (
                "securityerror",
                &["Please turn on SMTP Authentication in your mail client"],
            ),
            ("userunknown", &["542 ", " Rejected", "No such user"]),
        ],
    )
}

fn nttdocomo(f: &Facts<'_>) -> Option<&'static str> {
    match f.status {
        "5.1.1" | "5.0.911" => return Some("userunknown"),
        "5.2.0" => return Some("filtered"),
        _ => {}
    }
    let found = first_match(
        &f.diagnosis.to_ascii_lowercase(),
        &[
            ("mailboxfull", &["552 too much mail data"]),
            ("toomanyconn", &["552 too many recipients"]),
            (
                "syntaxerror",
                &[
                    "503 bad sequence of commands",
                    "504 command parameter not implemented",
                ],
            ),
        ],
    );
    if found.is_some() {
        return found;
    }
    match (f.status, f.command) {
        ("5.0.0", "RCPT") => Some("userunknown"),
        ("5.0.0", "DATA") => Some("rejected"),
        _ => None,
    }
}

fn outlook(f: &Facts<'_>) -> Option<&'static str> {
    first_match(
        f.diagnosis,
        &[
            (
                "hostunknown",
                &[
                    "The mail could not be delivered to the recipient because the domain is not reachable",
                ],
            ),
            (
                "userunknown",
                &["Requested action not taken: mailbox unavailable"],
            ),
        ],
    )
}

fn spectrum(f: &Facts<'_>) -> Option<&'static str> {
    const RANGES: &[(u16, u16, &str)] = &[
        (1000, 1000, "blocked"),
        (1010, 1010, "rejected"),
        (1020, 1080, "rejected"),
        (1090, 1090, "systemerror"),
        (1100, 1150, "requireptr"),
        (1160, 1190, "policyviolation"),
        (1200, 1250, "blocked"),
        (1260, 1260, "networkerror"),
        (1300, 1340, "toomanyconn"),
        (1350, 1490, "speeding"),
        (1500, 1500, "rejected"),
        (1520, 1520, "rejected"),
        (1530, 1530, "mesgtoobig"),
        (1540, 1540, "speeding"),
        (1550, 1550, "speeding"),
        (1560, 1560, "policyviolation"),
        (1580, 1580, "speeding"),
    ];
    let at = f.diagnosis.find("AUP#")?;
    let mut digits = String::new();
    for c in f.diagnosis.get(at + 4..)?.chars() {
        if digits.len() == 4 {
            break;
        }
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            digits.clear();
        }
    }
    let code: u16 = digits.parse().ok().filter(|_| digits.len() == 4)?;
    RANGES
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&code))
        .map(|(_, _, r)| *r)
}

fn tencent(f: &Facts<'_>) -> Option<&'static str> {
    first_match(
        &f.diagnosis.to_ascii_lowercase(),
        &[
            ("authfailure", &["spf check failed", "dmarc check failed"]),
            (
                "blocked",
                &[
                    "suspected bounce attacks",
                    "suspected spam ip",
                    "connection denied",
                ],
            ),
            ("mesgtoobig", &["message too large"]),
            (
                "spamdetected",
                &["spam is embedded in the email", "mail content denied"],
            ),
            (
                "rejected",
                &["suspected spam", "mail is rejected by recipients"],
            ),
            ("speeding", &["mailbox unavailable or access denined"]),
            ("suspend", &["is a deactivated mailbox"]),
            ("syntaxerror", &["bad address syntax"]),
            (
                "toomanyconn",
                &[
                    "ip frequency limited",
                    "domain frequency limited",
                    "sender frequency limited",
                    "connection frequency limited",
                ],
            ),
            ("userunknown", &["mailbox not found"]),
        ],
    )
}

fn yahooinc(f: &Facts<'_>) -> Option<&'static str> {
    first_match(
        &f.diagnosis.to_ascii_lowercase(),
        &[
            (
                "authfailure",
                &["yahoo requires all senders to authenticate with either spf or dkim"],
            ),
            (
                "blocked",
                &[
                    " because the ip is in spamhaus's list;",
                    "not accepted from ip addresses on spamhaus xbl",
                ],
            ),
            ("norelaying", &["relaying denied for "]),
            ("notcompliantrfc", &["headers are not rfc compliant"]),
            ("policyviolation", &["not accepted for policy reasons"]),
            (
                "rejected",
                &[
                    "temporarily deferred due to unexpected volume or user complaints",
                    "due to unresolvable rfc.5321 domain",
                    " will be permanently deferred",
                ],
            ),
            ("speeding", &["user is receiving mail too quickly"]),
            (
                "suspend",
                &[" is no longer valid.", "this mailbox is disabled"],
            ),
            ("syntaxerror", &["syntax error in parameters or arguments"]),
            ("toomanyconn", &["max message per connection reached"]),
            (
                "userunknown",
                &["dd this user doesn't have a ", "mailbox not found"],
            ),
        ],
    )
}

/// Microsoft's table: (status code or its prefix, third-number range, phrase). A prefix ending
/// in `.` takes the range of the third number; an exact code takes (0, 0).
type MsRow = (&'static str, u32, u32, &'static str);

const MICROSOFT: &[(&str, &[MsRow])] = &[
    (
        "authfailure",
        &[
            (
                "4.7.26",
                0,
                0,
                "must pass either spf or dkim validation, this message is not signed",
            ),
            (
                "5.7.23",
                0,
                0,
                "the message was rejected because of sender policy framework violation",
            ),
            ("5.7.509", 0, 0, "does not pass dmarc verification"),
        ],
    ),
    (
        "badreputation",
        &[(
            "4.7.650",
            0,
            0,
            "has been temporarily rate limited due to ip reputation",
        )],
    ),
    (
        "blocked",
        &[
            ("4.4.2", 0, 0, "connection dropped"),
            ("4.7.", 850, 899, "access denied, please try again later"),
            ("5.7.25", 0, 0, "must have a reverse dns record"),
            ("5.7.506", 0, 0, "access denied, bad helo"),
            ("5.7.507", 0, 0, "access denied, rejected by recipient"),
            ("5.7.510", 0, 0, "does not accept email over ipv6"),
            ("5.7.511", 0, 0, "access denied, banned sender"),
            ("5.7.513", 0, 0, "using customer block list"),
            ("5.7.", 606, 649, "access denied, banned sending ip "),
            ("4.7.", 500, 699, "access denied, please try again later"),
            ("5.5.4", 0, 0, "invalid domain name"),
            (
                "5.7.1",
                0,
                0,
                "part of their network is on our block list (s3150)",
            ),
        ],
    ),
    (
        "contenterror",
        &[
            ("5.3.0", 0, 0, "too many related errors"),
            ("5.6.11", 0, 0, "invalid characters"),
            ("5.4.11", 0, 0, "agent generated message depth exceeded"),
            ("5.5.6", 0, 0, "invalid message content"),
        ],
    ),
    (
        "exceedlimit",
        &[(
            "5.2.3",
            0,
            0,
            "resolver.rst.recipsizelimit; message too large for this recipient",
        )],
    ),
    (
        "expired",
        &[
            ("4.4.1", 0, 0, "connection timed out"),
            ("4.4.7", 0, 0, "message delayed"),
            ("4.4.7", 0, 0, "queue expired; message expired"),
            ("4.4.7", 0, 0, "message expired"),
            ("5.4.300", 0, 0, "message expired"),
            ("5.4.316", 0, 0, "message expired"),
        ],
    ),
    (
        "failedstarttls",
        &[
            ("4.4.8", 0, 0, " failed mta-sts validation"),
            ("5.4.8", 0, 0, " failed mta-sts validation"),
            ("4.4.317", 0, 0, "starttls is required to send mail"),
            ("5.4.317", 0, 0, "starttls is required to send mail"),
            (
                "4.7.5",
                0,
                0,
                "remote certificate failed mta-sts validation",
            ),
            (
                "5.7.5",
                0,
                0,
                "remote certificate failed mta-sts validation",
            ),
            (
                "5.7.51",
                0,
                0,
                "restrictdomainstoipaddresses or restrictdomainstocertificate",
            ),
            (
                "4.7.321",
                0,
                0,
                "starttls-not-supported: destination mail server must support tls to receive mail",
            ),
            (
                "5.7.321",
                0,
                0,
                "starttls-not-supported: destination mail server must support tls to receive mail",
            ),
            (
                "5.7.322",
                0,
                0,
                "certificate-expired: destination mail server's certificate is expired",
            ),
            (
                "4.7.323",
                0,
                0,
                "tlsa-invalid: the domain failed dane validation",
            ),
            (
                "5.7.323",
                0,
                0,
                "tlsa-invalid: the domain failed dane validation",
            ),
            (
                "4.7.324",
                0,
                0,
                "dnssec-invalid: destination domain returned invalid dnssec records",
            ),
            (
                "5.7.324",
                0,
                0,
                "dnssec-invalid: destination domain returned invalid dnssec records",
            ),
            (
                "4.7.325",
                0,
                0,
                "certificate-host-mismatch: remote certificate must have a common name or subject alternative name matching the hostname (dane)",
            ),
            (
                "5.7.325",
                0,
                0,
                "certificate-host-mismatch: remote certificate must have a common name or subject alternative name matching the hostname (dane)",
            ),
        ],
    ),
    ("mailboxfull", &[("5.2.2", 0, 0, "mailbox full")]),
    (
        "mesgtoobig",
        &[
            (
                "5.3.4",
                0,
                0,
                "message size exceeds fixed maximum message size",
            ),
            ("5.3.4", 0, 0, "message too big for system"),
        ],
    ),
    (
        "networkerror",
        &[
            (
                "5.4.4",
                0,
                0,
                "smtpsend.dns.nonexistentdomain; nonexistent domain",
            ),
            ("5.4.6", 0, 0, "hop count exceeded - possible mail loop"),
            ("4.4.312", 0, 0, "dns query failed"),
            ("5.4.312", 0, 0, "dns query failed"),
            ("4.4.316", 0, 0, "connection refused"),
            ("5.4.316", 0, 0, "connection refused"),
            ("5.4.4", 0, 0, "invalid arguments"),
            ("5.4.6", 0, 0, "routing loop detected"),
            ("5.4.14", 0, 0, "routing loop detected"),
        ],
    ),
    (
        "norelaying",
        &[
            ("5.7.1", 0, 0, "unable to relay"),
            ("5.7.1", 0, 0, "client was not authenticated"),
            ("5.4.1", 0, 0, "relay access denied"),
            ("5.7.64", 0, 0, "tenantattribution; relay access denied"),
            ("5.4.310", 0, 0, "does not exist"),
        ],
    ),
    (
        "notaccept",
        &[
            ("4.3.2", 0, 0, "system not accepting network messages"),
            (
                "4.4.4",
                0,
                0,
                "hosted tenant which has no mail-enabled subscriptions",
            ),
            (
                "5.3.2",
                0,
                0,
                "storedrv.deliver: missing or bad storedriver mdb properties",
            ),
        ],
    ),
    (
        "policyviolation",
        &[
            ("5.0.350", 0, 0, "x-dg-ref header is too long"),
            (
                "5.0.350",
                0,
                0,
                "requested action not taken: policy violation detected (as345)",
            ),
            ("5.7.", 900, 999, "delivery not authorized, message refused"),
        ],
    ),
    (
        "rejected",
        &[
            ("5.1.7", 0, 0, "invalid address"),
            ("5.1.7", 0, 0, "unknown sender address"),
            ("5.1.0", 0, 0, "sender denied"),
            ("5.1.8", 0, 0, "access denied, bad outbound sender"),
            ("5.7.1", 0, 0, "delivery not authorized"),
            (
                "5.7.12",
                0,
                0,
                "sender was not authenticated by organization",
            ),
            ("5.7.124", 0, 0, "sender not in allowed-senders list"),
            ("5.7.133", 0, 0, "sender not authenticated for group"),
            ("5.7.134", 0, 0, "sender was not authenticated for mailbox"),
            (
                "5.7.13",
                0,
                0,
                "sender was not authenticated for public folder",
            ),
            (
                "5.7.135",
                0,
                0,
                "sender was not authenticated for public folder",
            ),
            ("5.7.136", 0, 0, "sender was not authenticated"),
            ("5.7.", 501, 503, "access denied, spam abuse detected"),
            (
                "5.7.512",
                0,
                0,
                "access denied, message must be rfc 5322 section 3.6.2 compliant",
            ),
            (
                "5.7.750",
                0,
                0,
                "service unavailable. client blocked from sending from unregistered domains",
            ),
            ("5.7.", 501, 503, "access denied, banned sender"),
        ],
    ),
    (
        "securityerror",
        &[
            (
                "5.7.3",
                0,
                0,
                "cannot achieve exchange server authentication",
            ),
            ("5.7.3", 0, 0, "not authorized"),
            (
                "5.7.57",
                0,
                0,
                "client was not authenticated to send anonymous mail during mail from",
            ),
        ],
    ),
    (
        "spamdetected",
        &[(
            "5.2.1",
            0,
            0,
            "content filter agent quarantined this message",
        )],
    ),
    (
        "speeding",
        &[
            (
                "4.3.2",
                0,
                0,
                "storedrv.deliver; recipient thread limit exceeded",
            ),
            (
                "5.1.90",
                0,
                0,
                "your message can't be sent because you've reached your daily limit for message recipients",
            ),
            ("5.2.2", 0, 0, "submission quota exceeded"),
            (
                "5.2.121",
                0,
                0,
                "recipient's per hour message receive limit from specific sender exceeded",
            ),
            (
                "5.2.122",
                0,
                0,
                "recipient's per hour message receive limit exceeded",
            ),
            ("5.7.508", 0, 0, "has exceeded permitted limits within"),
            (
                "5.7.",
                700,
                749,
                "access denied, tenant has exceeded threshold",
            ),
            (
                "5.7.",
                700,
                749,
                "access denied, traffic not accepted from this ip",
            ),
        ],
    ),
    (
        "suspend",
        &[
            ("5.7.504", 0, 0, "recipient address rejected: access denied"),
            ("5.7.505", 0, 0, "access denied, banned recipient"),
            ("5.2.1", 0, 0, "mailbox cannot be accessed"),
        ],
    ),
    (
        "syntaxerror",
        &[
            ("5.3.3", 0, 0, "unrecognized command"),
            ("5.5.2", 0, 0, "send hello first"),
        ],
    ),
    (
        "systemerror",
        &[
            ("4.3.2", 0, 0, "service not available"),
            ("4.3.2", 0, 0, "service not active"),
            ("5.3.5", 0, 0, "system incorrectly configured"),
            (
                "5.3.190",
                0,
                0,
                "journaling on-premises messages to microsoft 365 or office 365 not supported when journaling archive is disabled",
            ),
            ("5.0.0", 0, 0, "helo / ehlo requires domain address"),
            ("5.1.4", 0, 0, "destination mailbox address ambiguous"),
            ("5.2.4", 0, 0, "mailing list expansion problem"),
            ("5.2.14", 0, 0, "misconfigured forwarding address"),
            (
                "4.4.3",
                0,
                0,
                "temporary server error. please try again later attr18",
            ),
            (
                "4.7.0",
                0,
                0,
                "temporary server error. please try again later. prx4 nexthop:",
            ),
            (
                "4.4.24",
                0,
                0,
                "message failed to be replicated: insufficient system resource:",
            ),
            (
                "4.4.25",
                0,
                0,
                "message failed to be replicated: no healthy secondary server available to accept replica at this time.",
            ),
            (
                "4.4.28",
                0,
                0,
                "message failed to be replicated: the operation was canceled",
            ),
            ("4.4.318", 0, 0, "(suspiciousremoteservererror)"),
            ("5.4.318", 0, 0, "(suspiciousremoteservererror)"),
            ("4.7.500", 0, 0, "server busy. please try again later from "),
            ("4.7.700", 0, 0, "pfa agent busy, please try again."),
        ],
    ),
    (
        "systemfull",
        &[("4.3.1", 0, 0, "insufficient system resources")],
    ),
    (
        "toomanyconn",
        &[
            ("5.5.3", 0, 0, "too many recipients"),
            ("4.5.3", 0, 0, "too many recipients"),
            (
                "4.7.652",
                0,
                0,
                "has exceeded the maximum number of connections",
            ),
            (
                "5.2.122",
                0,
                0,
                "the recipient has exceeded their limit for",
            ),
        ],
    ),
    (
        "userunknown",
        &[
            ("5.1.1", 0, 0, "resolver.adr.exrecipnotfound; not found"),
            ("5.1.1", 0, 0, "user unknown"),
            ("5.1.3", 0, 0, "storedrv.submit; invalid recipient address"),
            ("5.1.", 4, 5, "recipient address reserved by rfc 2606"),
            (
                "5.1.6",
                0,
                0,
                "recipient addresses in single label domains not accepted",
            ),
            ("5.1.1", 0, 0, "bad destination mailbox address"),
            ("5.1.10", 0, 0, "recipient not found"),
            ("5.4.1", 0, 0, "recipient address rejected: access denied"),
            (
                "5.5.0",
                0,
                0,
                "requested action not taken: mailbox unavailable",
            ),
            ("5.1.2", 0, 0, "invalid x.400 address"),
            (
                "5.1.351",
                0,
                0,
                "remote server returned unknown recipient or mailbox unavailable",
            ),
        ],
    ),
];

fn microsoft(f: &Facts<'_>) -> Option<&'static str> {
    let third: u32 = f.status.split('.').nth(2)?.parse().ok()?;
    let text = f.diagnosis.to_ascii_lowercase();
    for (reason, rows) in MICROSOFT {
        for (code, lo, hi, phrase) in *rows {
            let code_fits = if lo == hi {
                f.status == *code
            } else {
                f.status.starts_with(code) && (*lo..=*hi).contains(&third)
            };
            if code_fits && text.contains(phrase) {
                return Some(reason);
            }
        }
    }
    None
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
