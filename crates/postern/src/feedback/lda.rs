//! Errors of local delivery agents (Dovecot, mail.local, procmail, maildrop, vpopmail,
//! vmailmgr), which say what went wrong in their own words. Adapted from Sisimai's lda/lib.go
//! (BSD-2-Clause, Copyright azumakuniyuki and the sisimai development team).

use super::reason::Reason;

/// Phrases per reason (lower case).
type Phrases = &'static [(Reason, &'static [&'static str])];

/// Each agent: how to recognise it in the text, and its phrases.
const AGENTS: &[(&[&str], Phrases)] = &[
    (
        // dovecot
        &["your message to <", "> was automatically rejected:"],
        &[
            (
                Reason::MailboxFull,
                &["not enough disk space", "quota exceeded"],
            ),
            (Reason::UserUnknown, &["mailbox doesn't exist: "]),
        ],
    ),
    (
        &["mail.local: "],
        &[
            (
                Reason::MailboxFull,
                &["disc quota exceeded", "mailbox full or quota exceeded"],
            ),
            (Reason::SystemError, &["temporary file write error"]),
            (
                Reason::UserUnknown,
                &[
                    ": invalid mailbox path",
                    ": unknown user:",
                    ": user missing home directory",
                    ": user unknown",
                ],
            ),
        ],
    ),
    (
        &["procmail: ", "/procmail "],
        &[
            (
                Reason::MailboxFull,
                &["quota exceeded while writing", "user over quota"],
            ),
            (Reason::SystemError, &["service unavailable"]),
            (Reason::SystemFull, &["no space left to finish writing"]),
        ],
    ),
    (
        &["maildrop: "],
        &[
            (Reason::MailboxFull, &["maildir over quota."]),
            (
                Reason::UserUnknown,
                &["cannot find system user", "invalid user specified."],
            ),
        ],
    ),
    (
        // vpopmail
        &["vdelivermail: "],
        &[
            (
                Reason::Filtered,
                &["user does not exist, but will deliver to "],
            ),
            (
                Reason::MailboxFull,
                &["domain is over quota", "user is over quota"],
            ),
            (Reason::Suspend, &["account is locked email bounced"]),
            (
                Reason::UserUnknown,
                &["sorry, no mailbox here by that name."],
            ),
        ],
    ),
    (
        // vmailmgr
        &["vdeliver: "],
        &[
            (
                Reason::MailboxFull,
                &["delivery failed due to system quota violation"],
            ),
            (
                Reason::UserUnknown,
                &[
                    "invalid or unknown base user or domain",
                    "invalid or unknown virtual user",
                    "user name does not refer to a virtual user",
                ],
            ),
        ],
    ),
];

/// The agent's reason when the lower-cased text is a local delivery agent's error; a mailer
/// error when the agent is known but the phrase is not. Only for errors after the SMTP session
/// (no command, or DATA).
pub(crate) fn find(lower: &str, command: &str) -> Option<Reason> {
    if lower.is_empty() || !(command.is_empty() || command == "DATA") {
        return None;
    }
    let (_, phrases) = AGENTS
        .iter()
        .find(|(marks, _)| marks.iter().any(|m| lower.contains(m)))?;
    Some(
        phrases
            .iter()
            .find(|(_, p)| p.iter().any(|p| lower.contains(p)))
            .map_or(Reason::MailerError, |(r, _)| *r),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_local_agents() {
        assert_eq!(
            find(
                "mail.local: unknown user: bob 554 ... service unavailable",
                ""
            ),
            Some(Reason::UserUnknown)
        );
        assert_eq!(
            find(
                "554 \"|exec /usr/bin/procmail -f-\"... service unavailable",
                "DATA"
            ),
            Some(Reason::SystemError)
        );
        assert_eq!(
            find("maildrop: something odd", ""),
            Some(Reason::MailerError)
        );
        assert_eq!(find("mail.local: unknown user: bob", "RCPT"), None);
        assert_eq!(find("550 user unknown", ""), None);
    }
}
