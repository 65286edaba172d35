//! SMTP enhanced status codes (RFC 3463), reply codes (RFC 5321) and command names found in
//! free-form diagnostic text. Ported from Sisimai's smtp/status, smtp/reply and smtp/command
//! (BSD-2-Clause): the same look-behind/look-ahead rules keep version numbers, IP addresses and
//! dates from being read as codes.

use super::reason::Reason;

fn byte_at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// `.`, `/` or a digit: a code glued to one of these is part of something else.
fn is_code_neighbour(c: u8) -> bool {
    c > 45 && c < 58
}

/// Replaces dotted-quad IPv4 addresses with `***.***.***.***` so they never look like codes.
fn mask_ipv4(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            run.push(c);
            continue;
        }
        flush_run(&mut out, &mut run);
        out.push(c);
    }
    flush_run(&mut out, &mut run);
    out
}

fn flush_run(out: &mut String, run: &mut String) {
    let trimmed = run.trim_matches('.');
    let octets: Vec<&str> = trimmed.split('.').collect();
    let is_ip = octets.len() == 4
        && octets
            .iter()
            .all(|o| !o.is_empty() && o.len() <= 3 && o.parse::<u16>().is_ok_and(|v| v < 256));
    if is_ip {
        let lead = run.len() - run.trim_start_matches('.').len();
        let tail = run.len() - run.trim_end_matches('.').len();
        out.push_str(&".".repeat(lead));
        out.push_str("***.***.***.***");
        out.push_str(&".".repeat(tail));
    } else {
        out.push_str(run);
    }
    run.clear();
}

fn class_prefixes(hint: &str) -> &'static [&'static str] {
    match hint.as_bytes().first() {
        Some(b'2') => &["2."],
        Some(b'4') => &["4."],
        Some(b'5') => &["5."],
        _ => &["5.", "4.", "2."],
    }
}

/// The enhanced status code in `text` (e.g. `5.1.1`), preferring the most specific one when
/// several appear. `hint` is a reply code or status whose first digit limits the class.
pub(crate) fn find_status(text: &str, hint: &str) -> Option<String> {
    if text.len() < 7 {
        return None;
    }
    let padded = format!(" {} ", mask_ipv4(text));
    let s = padded.as_bytes();
    let mut starts: Vec<(usize, u8)> = Vec::new();
    for prefix in class_prefixes(hint) {
        let mut from = 0;
        while let Some(p) = padded.get(from..).and_then(|rest| rest.find(prefix)) {
            let at = from + p;
            starts.push((at, prefix.as_bytes()[0]));
            from = at + 5;
        }
    }
    starts.sort_unstable();
    let mut found: Vec<String> = Vec::new();
    let mut vague: Option<String> = None;
    for (at, class) in starts {
        if let Some(code) = read_status_at(s, at, class) {
            if code.get(1..).is_some_and(|t| t.starts_with(".0.0")) || code == "4.4.7" {
                vague = Some(code);
            } else {
                found.push(code);
            }
        }
    }
    found.extend(vague);
    let mut best: Option<String> = None;
    for code in found {
        best = Some(match best {
            None => code,
            Some(prev) => prefer_status(&prev, &code, ""),
        });
    }
    best
}

/// Reads `C.S.D` at byte `at` where `C` is `class`, or None if the text there is no status code.
/// Returns the short form (`5.0.0`) for a vague code so the caller can rank it last.
fn read_status_at(s: &[u8], at: usize, class: u8) -> Option<String> {
    let before = if at == 0 { 0 } else { byte_at(s, at - 1) };
    if is_code_neighbour(before) || before == b'V' || before == b'v' {
        return None;
    }
    let subject = byte_at(s, at + 2);
    if !(b'0'..=b'7').contains(&subject) || byte_at(s, at + 3) != b'.' {
        return None;
    }
    let d1 = byte_at(s, at + 4);
    if !d1.is_ascii_digit() {
        return None;
    }
    let mut code = vec![class, b'.', subject, b'.', d1];
    let short = String::from_utf8_lossy(&code).into_owned();
    if short.get(1..).is_some_and(|t| t.starts_with(".0.0")) || short == "4.4.7" {
        return Some(short);
    }
    for i in 5..=6 {
        let d = byte_at(s, at + i);
        if !d.is_ascii_digit() {
            return Some(String::from_utf8_lossy(&code).into_owned());
        }
        code.push(d);
    }
    if byte_at(s, at + 7).is_ascii_digit() {
        return None;
    }
    Some(String::from_utf8_lossy(&code).into_owned())
}

/// Chooses between the status from a `Status:` field (`field`) and one found in the message
/// text (`in_text`), using the reply code's class to break ties. Sisimai's `status.Prefer`.
pub(crate) fn prefer_status(field: &str, in_text: &str, reply: &str) -> String {
    if field.is_empty() || field.len() < 5 {
        return in_text.to_string();
    }
    if in_text.is_empty() || in_text.len() < 5 {
        return field.to_string();
    }
    let f0 = field.as_bytes()[0];
    let t0 = in_text.as_bytes()[0];
    if let Some(&r0) = reply.as_bytes().first()
        && f0 != t0
    {
        if r0 == f0 {
            return field.to_string();
        }
        if r0 == t0 {
            return in_text.to_string();
        }
    }
    if field == in_text {
        return field.to_string();
    }
    let zero_f = field.find(".0");
    let zero_t = in_text.find(".0");
    let zz_f = field.find(".0.0");
    let zz_t = in_text.find(".0.0");
    if zz_f.is_some_and(|p| p > 0) {
        return if zz_t.is_none() { in_text } else { field }.to_string();
    }
    if zero_f.is_some_and(|p| p > 0) && zero_t.is_none() {
        return in_text.to_string();
    }
    if zz_t.is_some_and(|p| p > 0) {
        return field.to_string();
    }
    let sub = field.get(1..).unwrap_or("");
    let vague_field = field == "4.4.7"
        || field == "4.7.0"
        || field.starts_with("5.3.")
        || [".5.1", ".5.2", ".5.4", ".5.5"]
            .iter()
            .any(|p| sub.starts_with(p));
    if vague_field {
        return in_text.to_string();
    }
    if field == "5.1.1" {
        if zero_t.is_some_and(|p| p > 0) || in_text.starts_with("5.5.") {
            return field.to_string();
        }
        return in_text.to_string();
    }
    if field == "5.1.3" && in_text.starts_with("5.7.") {
        return in_text.to_string();
    }
    field.to_string()
}

const REPLY2: &[&str] = &[
    "211", "214", "220", "221", "235", "250", "251", "252", "253", "354",
];
const REPLY4: &[&str] = &[
    "421", "450", "451", "452", "422", "430", "432", "453", "454", "455", "456", "458", "459",
];
const REPLY5: &[&str] = &[
    "550", "552", "553", "551", "521", "525", "502", "520", "523", "524", "530", "533", "534",
    "535", "538", "555", "556", "554", "557", "500", "501", "503", "504",
];

/// The SMTP reply code in `text` (e.g. `550`); `hint`'s first digit limits the class.
pub(crate) fn find_reply(text: &str, hint: &str) -> Option<String> {
    if text.len() < 3 || text.to_ascii_uppercase().contains("X-UNIX") {
        return None;
    }
    let lists: Vec<&[&str]> = match hint.as_bytes().first() {
        Some(b'2') => vec![REPLY2],
        Some(b'4') => vec![REPLY4],
        Some(b'5') => vec![REPLY5],
        _ => vec![REPLY5, REPLY4, REPLY2],
    };
    let padded = format!(" {text} ");
    let s = padded.as_bytes();
    for code in lists.into_iter().flatten() {
        for (at, _) in padded.match_indices(code) {
            let before = if at == 0 { 0 } else { byte_at(s, at - 1) };
            let after = byte_at(s, at + 3);
            if !is_code_neighbour(before) && !is_code_neighbour(after) {
                return Some((*code).to_string());
            }
        }
    }
    None
}

/// Whether `code` is a plausible SMTP reply code (211..557).
pub(crate) fn is_reply_code(code: &str) -> bool {
    let Ok(n) = code.parse::<u16>() else {
        return false;
    };
    if code.len() != 3 || !(211..=557).contains(&n) || n % 100 > 59 {
        return false;
    }
    match n / 100 {
        2 => n == 235 || (n <= 253 && !(n > 221 && n < 250)),
        3 => n == 354,
        _ => true,
    }
}

/// Whether `code` is a well-formed enhanced status code (`2|4|5 . 0-7 . n`).
pub(crate) fn is_status_code(code: &str) -> bool {
    if code.len() < 5 || code.len() > 7 {
        return false;
    }
    let parts: Vec<&str> = code.split('.').collect();
    let [class, subject, detail] = parts.as_slice() else {
        return false;
    };
    matches!(*class, "2" | "4" | "5")
        && subject.parse::<u8>().is_ok_and(|s| s <= 7)
        && detail.parse::<u16>().is_ok()
}

/// The reason a standard status code stands for, if it names one. Sisimai's `status.Name`.
pub(crate) fn status_reason(code: &str) -> Option<Reason> {
    use Reason::*;
    if !is_status_code(code) {
        return None;
    }
    let r = match code {
        "2.1.5" => Delivered,
        "4.1.6" | "5.1.6" | "5.7.17" | "5.7.18" => HasMoved,
        "4.1.7" | "4.1.8" | "5.1.7" | "5.1.8" => Rejected,
        "4.1.9" | "4.3.3" | "4.3.5" | "4.4.3" | "4.5.3" | "4.5.5" | "5.1.9" | "5.3.0" | "5.3.3"
        | "5.3.5" | "5.4.3" | "5.5.4" | "5.5.5" => SystemError,
        "4.2.1" | "4.7.1" | "4.7.2" => Blocked,
        "4.2.2" | "5.2.2" => MailboxFull,
        "4.2.3" | "5.2.3" => ExceedLimit,
        "4.2.4" | "5.1.4" | "5.2.0" | "5.2.1" | "5.2.4" => Filtered,
        "4.3.1" | "4.4.5" | "5.3.1" => SystemFull,
        "4.3.2" | "5.1.10" | "5.3.2" | "5.7.27" => NotAccept,
        "4.4.1" | "4.4.7" => Expired,
        "4.4.2" | "4.4.4" | "4.4.6" | "4.4.8" | "5.4.0" => NetworkError,
        "4.6.0" | "4.6.2" | "4.6.5" | "5.6.0" | "5.6.1" | "5.6.2" | "5.6.3" | "5.6.5" | "5.6.6"
        | "5.6.7" | "5.6.8" | "5.6.9" => ContentError,
        "4.7.5" | "4.7.6" | "4.7.7" | "4.7.12" | "4.7.15" | "5.7.0" | "5.7.1" | "5.7.2"
        | "5.7.3" | "5.7.4" | "5.7.5" | "5.7.6" | "5.7.7" | "5.7.8" | "5.7.9" | "5.7.10"
        | "5.7.11" | "5.7.14" | "5.7.15" | "5.7.19" => SecurityError,
        "4.7.16" | "5.3.4" | "5.7.16" => MesgTooBig,
        "4.7.24" | "4.7.26" | "5.7.20" | "5.7.21" | "5.7.22" | "5.7.23" | "5.7.24" | "5.7.26"
        | "5.7.29" => AuthFailure,
        "4.7.25" | "5.7.25" => RequirePtr,
        "5.1.0" | "5.1.1" | "5.1.3" => UserUnknown,
        "5.1.2" | "5.4.4" => HostUnknown,
        "5.5.2" | "5.5.6" => SyntaxError,
        "5.5.3" => TooManyConn,
        "5.7.13" => Suspend,
        "5.7.28" => SpamDetected,
        "5.7.30" => FailedStartTls,
        _ => return None,
    };
    Some(r)
}

/// The pseudo status code Sisimai assigns to a reason when the message carried none.
pub(crate) fn pseudo_status(reason: Reason, temporary: bool) -> Option<String> {
    use Reason::*;
    let detail = match reason {
        AuthFailure => 926,
        BadReputation => 975,
        Blocked => 971,
        ContentError => 960,
        ExceedLimit => 923,
        Expired => 947,
        FailedStartTls => 976,
        Filtered if temporary => 924,
        Filtered => 910,
        HasMoved => 916,
        HostUnknown => 912,
        MailboxFull => 922,
        MailerError => 939,
        MesgTooBig => 934,
        NetworkError => 944,
        NoRelaying => 909,
        NotAccept => 932,
        NotCompliantRfc => 974,
        OnHold => 901,
        PolicyViolation => 972,
        Rejected => 918,
        RequirePtr => 973,
        SecurityError => 970,
        SpamDetected => 980,
        Speeding => 946,
        Suppressed => 903,
        Suspend => 921,
        SystemError => 930,
        SystemFull => 931,
        SyntaxError => 902,
        TooManyConn => 945,
        UserUnknown => 911,
        Undefined => 900,
        VirusDetected => 981,
        Delivered | Feedback | Vacation => return None,
    };
    let permanent_only = matches!(reason, HasMoved | HostUnknown | UserUnknown);
    let class = if temporary && !permanent_only { 4 } else { 5 };
    if temporary && permanent_only {
        return None;
    }
    Some(format!("{class}.0.{detail}"))
}

/// The code (status or reply) that `text` carries, status first.
fn any_code(text: &str) -> Option<String> {
    find_status(text, "").or_else(|| find_reply(text, ""))
}

pub(crate) fn is_temporary(text: &str) -> bool {
    if text.is_empty() {
        return false;
    }
    let lower = text.to_ascii_lowercase();
    any_code(text).is_some_and(|c| c.starts_with('4'))
        || lower.contains(" temporar")
        || lower.contains(" persistent")
}

const DETECTABLE: &[&str] = &[
    "HELO",
    "EHLO",
    "STARTTLS",
    "AUTH PLAIN",
    "AUTH LOGIN",
    "AUTH CRAM-",
    "AUTH DIGEST-",
    "MAIL F",
    "RCPT",
    "RCPT T",
    "DATA",
    "QUIT",
    "XFORWARD",
];
const COMMANDS: &[&str] = &[
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "QUIT", "RSET", "NOOP", "VRFY", "ETRN", "EXPN", "HELP",
    "AUTH", "STARTTLS", "XFORWARD", "CONN",
];

/// The SMTP command an error was the answer to, as far as the text tells (`RCPT`, `DATA`, ...).
pub(crate) fn find_command(text: &str) -> Option<&'static str> {
    if text.len() < 4 || !COMMANDS.iter().any(|c| text.contains(c)) {
        return None;
    }
    let padded = format!(" {text} ");
    let s = padded.as_bytes();
    let mut found: Vec<&'static str> = Vec::new();
    for word in DETECTABLE {
        let Some(p) = text.find(word) else { continue };
        if !word.contains(' ') {
            let before = byte_at(s, p);
            let after = byte_at(s, p + word.len() + 1);
            if before.is_ascii_alphanumeric()
                || after.is_ascii_alphanumeric()
                || (64..=90).contains(&before)
                || (64..=90).contains(&after)
            {
                continue;
            }
        }
        let head = word.get(..4).unwrap_or(word);
        let name: &'static str = match head {
            "STAR" => "STARTTLS",
            "XFOR" => "XFORWARD",
            "HELO" => "HELO",
            "EHLO" => "EHLO",
            "AUTH" => "AUTH",
            "MAIL" => "MAIL",
            "RCPT" => "RCPT",
            "DATA" => "DATA",
            "QUIT" => "QUIT",
            _ => continue,
        };
        if found.contains(&name) {
            continue;
        }
        found.push(name);
    }
    found.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_status_codes_but_not_versions_or_addresses() {
        assert_eq!(
            find_status("550 5.1.1 <a@b.example>... User unknown", "").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(find_status("DragonFly Mail Agent v5.1.1 here", ""), None);
        assert_eq!(find_status("host [192.5.1.10] said no", ""), None);
        assert_eq!(
            find_status("451 4.4.7 then 550 5.7.26 policy", "").as_deref(),
            Some("5.7.26")
        );
        assert_eq!(
            find_status("retry 5.0.0 and 5.2.2", "").as_deref(),
            Some("5.2.2")
        );
    }

    #[test]
    fn finds_reply_codes() {
        assert_eq!(
            find_reply("said: 550 no such user", "").as_deref(),
            Some("550")
        );
        assert_eq!(find_reply("version 5.550.1", ""), None);
        assert_eq!(find_reply("452 4.2.2 full", "4").as_deref(), Some("452"));
        assert!(is_reply_code("421"));
        assert!(!is_reply_code("499"));
    }

    #[test]
    fn prefers_the_specific_code() {
        assert_eq!(prefer_status("5.0.0", "5.1.1", ""), "5.1.1");
        assert_eq!(prefer_status("5.1.1", "5.0.0", ""), "5.1.1");
        assert_eq!(prefer_status("4.4.7", "4.2.2", ""), "4.2.2");
        assert_eq!(prefer_status("5.2.2", "4.2.2", "4"), "4.2.2");
    }

    #[test]
    fn names_statuses_and_pseudo_codes() {
        assert_eq!(status_reason("5.1.1"), Some(Reason::UserUnknown));
        assert_eq!(status_reason("5.0.911"), None);
        assert_eq!(
            pseudo_status(Reason::Filtered, false).as_deref(),
            Some("5.0.910")
        );
        assert_eq!(
            pseudo_status(Reason::MailboxFull, true).as_deref(),
            Some("4.0.922")
        );
    }

    #[test]
    fn finds_commands() {
        assert_eq!(find_command("in reply to RCPT TO command"), Some("RCPT"));
        assert_eq!(find_command("after end of DATA"), Some("DATA"));
        assert_eq!(find_command("DATABASE error"), None);
    }
}
