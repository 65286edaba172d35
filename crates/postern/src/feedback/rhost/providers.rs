//! The readers of the providers with short tables of their own (AOL, Cox, France PTT, GoDaddy,
//! Google Workspace, i.ua, KDDI, MessageLabs, NTT Docomo, Outlook.com, Spectrum, Tencent, Yahoo):
//! each one function from the facts to a reason name. Adapted from Sisimai's rhost/*.go
//! (BSD-2-Clause, Copyright azumakuniyuki and the sisimai development team).

use super::{Facts, first_match, select};

pub(super) fn aol(f: &Facts<'_>) -> Option<&'static str> {
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

pub(super) fn cox(f: &Facts<'_>) -> Option<&'static str> {
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

pub(super) fn france_ptt(f: &Facts<'_>) -> Option<&'static str> {
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

pub(super) fn godaddy(f: &Facts<'_>) -> Option<&'static str> {
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

pub(super) fn gsuite(f: &Facts<'_>) -> Option<&'static str> {
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

pub(super) fn iua(f: &Facts<'_>) -> Option<&'static str> {
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

pub(super) fn kddi(f: &Facts<'_>) -> Option<&'static str> {
    first_match(
        &f.diagnosis.to_ascii_lowercase(),
        &[
            ("filtered", &["550 : user unknown"]),
            ("userunknown", &[">: user unknown"]),
        ],
    )
}

pub(super) fn messagelabs(f: &Facts<'_>) -> Option<&'static str> {
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

pub(super) fn nttdocomo(f: &Facts<'_>) -> Option<&'static str> {
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

pub(super) fn outlook(f: &Facts<'_>) -> Option<&'static str> {
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

pub(super) fn spectrum(f: &Facts<'_>) -> Option<&'static str> {
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

pub(super) fn tencent(f: &Facts<'_>) -> Option<&'static str> {
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

pub(super) fn yahooinc(f: &Facts<'_>) -> Option<&'static str> {
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
