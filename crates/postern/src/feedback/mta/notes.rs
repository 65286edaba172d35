//! Lotus Notes and IBM Domino: "DELIVERY FAILURE: ..." (Domino) and "Undeliverable message"
//! (Notes) reports, whose reasons are in their own words. Phrases from Sisimai's
//! lhost/via-domino.go and via-notes.go (BSD-2-Clause, Copyright azumakuniyuki and the sisimai
//! development team).

use crate::feedback::Delivery;
use crate::feedback::generic::{Family, Layout};
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;

const REASONS: &[(Reason, &[&str])] = &[
    (Reason::Filtered, &["cannot route mail to user"]),
    (
        Reason::SystemError,
        &["several matches found in domino directory"],
    ),
    (
        Reason::NetworkError,
        &["message has exceeded maximum hop count"],
    ),
    (
        Reason::UserUnknown,
        &[
            "not listed in domino directory",
            "not listed in public name & address book",
            "no se encuentra en el directorio de domino",
            "dans l'annuaire domino",
            "domino ディレクトリには見つかりません",
            "ディレクトリのリストにありません",
        ],
    ),
];

const DOMINO: Family = Family {
    layout: Layout {
        starts: &["your message"],
        ends: &[],
    },
    commands: &[],
    reasons: REASONS,
};

const NOTES: Family = Family {
    layout: Layout {
        starts: &["------- failure reasons"],
        ends: &["------- returned message --------"],
    },
    commands: &[],
    reasons: REASONS,
};

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    let subject = email.subject_lower();
    if subject.starts_with("delivery failure:") || subject.starts_with("delivery_failure:") {
        Some(DOMINO.read(email))
    } else if subject.starts_with("undeliverable message") {
        Some(NOTES.read(email))
    } else {
        None
    }
}
