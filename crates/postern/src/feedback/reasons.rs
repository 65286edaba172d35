//! From an error message to a reason: phrase tables per reason, and the order in which they are
//! tried. The phrase lists and the decision order are adapted from Sisimai's reason/*.go
//! (BSD-2-Clause, Copyright azumakuniyuki and the sisimai development team).

use super::codes::status_reason;
use super::phrases;
use super::reason::Reason;

/// The well-known phrases of one reason: any `index` entry as a substring, or every string of a
/// `pairs` entry in order; never when an `isnot` entry appears.
pub(super) struct Phrases {
    pub(super) index: &'static [&'static str],
    pub(super) pairs: &'static [&'static [&'static str]],
    pub(super) isnot: &'static [&'static str],
}

impl Phrases {
    fn matches(&self, lower: &str) -> bool {
        if lower.is_empty() || self.isnot.iter().any(|p| lower.contains(p)) {
            return false;
        }
        self.index.iter().any(|p| lower.contains(p)) || self.pairs.iter().any(|p| aligned(lower, p))
    }
}

/// True when every string of `parts` appears in `text`, each after the previous one.
pub(crate) fn aligned(text: &str, parts: &[&str]) -> bool {
    let mut rest = text;
    for part in parts {
        match rest.find(part) {
            Some(p) => rest = rest.get(p + part.len()..).unwrap_or(""),
            None => return false,
        }
    }
    !parts.is_empty()
}

fn phrases_of(reason: Reason) -> Option<&'static Phrases> {
    use Reason::*;
    Some(match reason {
        AuthFailure => &phrases::AUTHFAILURE,
        BadReputation => &phrases::BADREPUTATION,
        Blocked => &phrases::BLOCKED,
        ContentError => &phrases::CONTENTERROR,
        ExceedLimit => &phrases::EXCEEDLIMIT,
        Expired => &phrases::EXPIRED,
        FailedStartTls => &phrases::FAILEDSTARTTLS,
        Filtered => &phrases::FILTERED,
        HasMoved => &phrases::HASMOVED,
        HostUnknown => &phrases::HOSTUNKNOWN,
        MailboxFull => &phrases::MAILBOXFULL,
        MailerError => &phrases::MAILERERROR,
        MesgTooBig => &phrases::MESGTOOBIG,
        NetworkError => &phrases::NETWORKERROR,
        NoRelaying => &phrases::NORELAYING,
        NotAccept => &phrases::NOTACCEPT,
        NotCompliantRfc => &phrases::NOTCOMPLIANTRFC,
        PolicyViolation => &phrases::POLICYVIOLATION,
        Rejected => &phrases::REJECTED,
        RequirePtr => &phrases::REQUIREPTR,
        SecurityError => &phrases::SECURITYERROR,
        SpamDetected => &phrases::SPAMDETECTED,
        Speeding => &phrases::SPEEDING,
        Suspend => &phrases::SUSPEND,
        SystemError => &phrases::SYSTEMERROR,
        SystemFull => &phrases::SYSTEMFULL,
        TooManyConn => &phrases::TOOMANYCONN,
        UserUnknown => &phrases::USERUNKNOWN,
        Vacation => &phrases::VACATION,
        VirusDetected => &phrases::VIRUSDETECTED,
        _ => return None,
    })
}

/// Whether the lower-cased text carries one of the reason's well-known phrases.
pub(crate) fn mentions(reason: Reason, lower: &str) -> bool {
    phrases_of(reason).is_some_and(|p| p.matches(lower))
}

/// What is known about one failed recipient when its reason is decided.
pub(crate) struct Evidence<'a> {
    /// A reason the MTA-specific reader already settled on, if any.
    pub preset: Option<Reason>,
    /// The local delivery agent's or the answering provider's own reading of its error (see
    /// `lda` and `rhost`).
    pub provider: Option<Reason>,
    pub status: &'a str,
    pub reply_code: &'a str,
    /// The diagnostic text, lower-cased.
    pub diagnosis: &'a str,
    pub command: &'a str,
    pub action: &'a str,
    /// The Diagnostic-Code type (`SMTP`, `X-Unix`, ...).
    pub diagnostic_type: &'a str,
}

impl Evidence<'_> {
    fn status_says(&self) -> Option<Reason> {
        status_reason(self.status)
    }

    fn command_is(&self, names: &[&str]) -> bool {
        names.contains(&self.command)
    }

    fn says(&self, reason: Reason) -> bool {
        mentions(reason, self.diagnosis)
    }
}

const PRE_DATA: &[&str] = &["CONN", "EHLO", "HELO", "MAIL", "RCPT"];

/// Reason-specific tests that weigh the status code and the command as well as the phrases.
fn probe(reason: Reason, ev: &Evidence<'_>) -> bool {
    use Reason::*;
    if ev.preset == Some(reason) {
        return true;
    }
    let by_status = ev.status_says();
    match reason {
        AuthFailure | Blocked | ExceedLimit | MailboxFull | RequirePtr | TooManyConn => {
            by_status == Some(reason) || ev.says(reason)
        }
        BadReputation | HasMoved | NotCompliantRfc | Speeding => ev.says(reason),
        ContentError => {
            !probe(SpamDetected, ev) && (by_status == Some(ContentError) || ev.says(reason))
        }
        Filtered => probe_filtered(ev, by_status),
        HostUnknown => {
            if by_status == Some(HostUnknown) {
                !ev.says(NetworkError)
            } else {
                ev.says(HostUnknown)
            }
        }
        MesgTooBig => {
            by_status == Some(MesgTooBig)
                || (by_status != Some(ExceedLimit) && ev.status != "5.2.3" && ev.says(reason))
        }
        NoRelaying => {
            !matches!(ev.preset, Some(SecurityError | SystemError | Undefined))
                && !ev.command_is(&["CONN", "EHLO", "HELO"])
                && ev.says(reason)
        }
        NotAccept => {
            matches!(ev.reply_code, "521" | "554" | "556")
                || (ev.command == "MAIL" && ev.says(reason))
        }
        Rejected => probe_rejected(ev, by_status),
        SpamDetected => {
            !ev.status.is_empty()
                && (by_status == Some(SpamDetected)
                    || (!ev.command_is(PRE_DATA) && ev.says(reason)))
        }
        Suspend => ev.reply_code == "525" || ev.says(reason),
        UserUnknown => probe_userunknown(ev, by_status),
        VirusDetected => !ev.command_is(PRE_DATA) && ev.says(reason),
        FailedStartTls => {
            ev.command == "STARTTLS"
                || matches!(ev.reply_code, "523" | "524" | "538")
                || ev.says(reason)
        }
        OnHold => by_status == Some(OnHold),
        SyntaxError => ev
            .reply_code
            .parse::<u16>()
            .is_ok_and(|r| (r > 400 && r < 408) || (r > 500 && r < 508)),
        _ => false,
    }
}

fn probe_filtered(ev: &Evidence<'_>, by_status: Option<Reason>) -> bool {
    if by_status == Some(Reason::Suspend) {
        return false;
    }
    if by_status != Some(Reason::Filtered) && ev.command_is(PRE_DATA) {
        return false;
    }
    ev.says(Reason::UserUnknown) || ev.says(Reason::Filtered)
}

fn probe_rejected(ev: &Evidence<'_>, by_status: Option<Reason>) -> bool {
    let temp = by_status.unwrap_or(Reason::Undefined);
    if temp == Reason::Rejected {
        return true;
    }
    match ev.command {
        "MAIL" => ev.says(Reason::Rejected),
        "DATA" => temp != Reason::UserUnknown && ev.says(Reason::Rejected),
        _ => {
            (!temp.is_explicit() || matches!(temp, Reason::SecurityError | Reason::SystemError))
                && ev.says(Reason::Rejected)
        }
    }
}

fn probe_userunknown(ev: &Evidence<'_>, by_status: Option<Reason>) -> bool {
    use Reason::*;
    if by_status == Some(Suspend) {
        return false;
    }
    if by_status == Some(UserUnknown) {
        let others = [
            NoRelaying,
            Blocked,
            MailboxFull,
            HasMoved,
            Rejected,
            NotAccept,
        ];
        return !others.iter().any(|r| ev.says(*r));
    }
    ev.command == "RCPT" && ev.says(UserUnknown)
}

use Reason::*;

/// Tried first, with the status code and command taken into account.
const FIRST_ORDER: &[Reason] = &[
    MailboxFull,
    MesgTooBig,
    ExceedLimit,
    Suspend,
    HasMoved,
    NoRelaying,
    AuthFailure,
    UserUnknown,
    Filtered,
    RequirePtr,
    NotCompliantRfc,
    BadReputation,
    ContentError,
    Rejected,
    HostUnknown,
    SpamDetected,
    Speeding,
    TooManyConn,
    Blocked,
];

/// Tried on the text alone when the status code did not settle it.
const SECOND_ORDER: &[Reason] = &[
    MailboxFull,
    AuthFailure,
    BadReputation,
    Speeding,
    SpamDetected,
    VirusDetected,
    PolicyViolation,
    NoRelaying,
    SystemError,
    NetworkError,
    Suspend,
    ContentError,
    SystemFull,
    NotAccept,
    Expired,
    FailedStartTls,
    SecurityError,
    Suppressed,
    MailerError,
];

/// Decides the reason for one failed recipient. Sisimai's `reason.Find` and `anotherone`.
pub(crate) fn decide(ev: &Evidence<'_>) -> Reason {
    if let Some(r) = ev.preset
        && !r.worth_another_look()
    {
        return r;
    }
    if ev.status.starts_with("2.") {
        return Delivered;
    }
    if let Some(r) = ev.provider {
        return r;
    }
    let smtp = ev.diagnostic_type.is_empty() || ev.diagnostic_type.eq_ignore_ascii_case("smtp");
    if smtp && let Some(r) = FIRST_ORDER.iter().copied().find(|r| probe(*r, ev)) {
        return r;
    }
    if let Some(r) = another_one(ev).filter(|r| *r != Undefined) {
        return r;
    }
    if ev.action == "delayed" {
        return Expired;
    }
    if ev.says(Vacation) {
        return Vacation;
    }
    if ev.diagnosis.is_empty() {
        Undefined
    } else {
        OnHold
    }
}

fn another_one(ev: &Evidence<'_>) -> Option<Reason> {
    if let Some(r) = ev.preset.filter(|r| r.is_explicit()) {
        return Some(r);
    }
    let by_status = ev.status_says();
    let try_text = by_status.is_none_or(|r| r.worth_another_look())
        || ev.diagnostic_type.eq_ignore_ascii_case("smtp");
    if !try_text {
        return by_status;
    }
    if let Some(r) = SECOND_ORDER.iter().copied().find(|r| ev.says(*r)) {
        return Some(r);
    }
    if by_status.is_some() {
        return by_status;
    }
    let subject = ev.status.get(..3).unwrap_or("");
    if subject == "5.6" || subject == "4.6" {
        return Some(ContentError);
    }
    if subject == "5.7" || subject == "4.7" {
        return Some(SecurityError);
    }
    if ev
        .diagnostic_type
        .to_ascii_uppercase()
        .starts_with("X-UNIX")
    {
        return Some(MailerError);
    }
    if probe(SyntaxError, ev) {
        return Some(SyntaxError);
    }
    if ev.action == "delayed" || ev.action == "expired" {
        return Some(Expired);
    }
    if ev.command_is(&["EHLO", "HELO"]) {
        return Some(Blocked);
    }
    None
}

/// Sisimai's hard-bounce rule: the address or its domain is gone, or the host refuses all mail
/// for good (`notaccept` with a permanent code).
pub(crate) fn is_hard_bounce(reason: Reason, status_and_text: &str) -> bool {
    if reason.is_permanent_address_failure() {
        return true;
    }
    if reason != NotAccept {
        return false;
    }
    if status_and_text.trim().is_empty() {
        return true;
    }
    let code = super::codes::find_status(status_and_text, "")
        .or_else(|| super::codes::find_reply(status_and_text, ""));
    code.is_some_and(|c| c.starts_with('5')) || !super::codes::is_temporary(status_and_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(
        status: &'a str,
        reply: &'a str,
        diagnosis: &'a str,
        command: &'a str,
    ) -> Evidence<'a> {
        Evidence {
            preset: None,
            provider: None,
            status,
            reply_code: reply,
            diagnosis,
            command,
            action: "failed",
            diagnostic_type: "SMTP",
        }
    }

    #[test]
    fn aligned_needs_order() {
        assert!(aligned(
            "user foo does not exist",
            &["user ", " does not exist"]
        ));
        assert!(!aligned(
            "does not exist user foo",
            &["user ", " does not exist"]
        ));
    }

    #[test]
    fn decides_by_status_and_phrase() {
        assert_eq!(
            decide(&ev("5.1.1", "550", "550 5.1.1 user unknown", "RCPT")),
            UserUnknown
        );
        assert_eq!(
            decide(&ev("5.2.2", "552", "mailbox full", "RCPT")),
            MailboxFull
        );
        assert_eq!(
            decide(&ev("", "", "no such user here", "RCPT")),
            UserUnknown
        );
        assert_eq!(decide(&ev("5.0.0", "", "", "")), Undefined);
        assert_eq!(
            decide(&ev("5.7.1", "550", "something odd", "DATA")),
            SecurityError
        );
    }

    #[test]
    fn hard_bounces() {
        assert!(is_hard_bounce(UserUnknown, "5.1.1"));
        assert!(!is_hard_bounce(MailboxFull, "5.2.2"));
        assert!(is_hard_bounce(NotAccept, "5.3.2 host does not accept mail"));
        assert!(!is_hard_bounce(NotAccept, "4.3.2 try again"));
    }
}
