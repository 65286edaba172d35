//! OpenSMTPD: "This is the MAILER-DAEMON, please DO NOT REPLY", one `address: answer` line per
//! recipient, then "Below is a copy of the original message:".

use crate::feedback::Delivery;
use crate::feedback::generic::{Family, Layout};
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;

const FAMILY: Family = Family {
    layout: Layout {
        starts: &["this is the mailer-daemon, please do not reply to this"],
        ends: &["below is a copy of the original message:"],
    },
    commands: &[],
    reasons: &[
        (Reason::Expired, &["envelope expired"]),
        (Reason::SecurityError, &["could not retrieve credentials"]),
        (
            Reason::HostUnknown,
            &["invalid domain name", "domain does not exist"],
        ),
        (
            Reason::NetworkError,
            &[
                "address family mismatch on destination mxs",
                "all routes to destination blocked",
                "bad dns lookup error code",
                "could not retrieve source address",
                "loop detected",
                "network error on destination mxs",
                "no valid route to remote mx",
                "no valid route to destination",
                "temporary failure in mx lookup",
            ],
        ),
        (
            Reason::NotAccept,
            &[
                "destination seem to reject all mails",
                "no mx found for domain",
                "no mx found for destination",
            ],
        ),
    ],
};

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    email
        .text
        .contains("This is the MAILER-DAEMON, please DO NOT REPLY")
        .then(|| FAMILY.read(email))
}
