//! Gmail's own bounces (before Google moved to standard DSNs): "Delivery to the following
//! recipient failed permanently", the address indented, Google's technical details, then
//! "----- Original message -----".

use crate::feedback::Delivery;
use crate::feedback::generic::{Family, Layout};
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;

const FAMILY: Family = Family {
    layout: Layout {
        starts: &["delivery to the following recipient"],
        ends: &[
            "----- original message -----",
            "----- message header follows -----",
        ],
    },
    commands: &[],
    reasons: &[
        (
            Reason::Expired,
            &[
                "dns error: could not contact dns servers",
                "delivery to the following recipient has been delayed",
                "the recipient server did not accept our requests to connect",
            ],
        ),
        (
            Reason::HostUnknown,
            &[
                "dns error: domain name not found",
                "dns error: dns server returned answer with no data",
            ],
        ),
    ],
};

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    let from = email.sender_lower();
    let google = from.contains("@googlemail.com") || from.contains("@gmail.com");
    (google && email.text.contains("Delivery to the following recipient"))
        .then(|| FAMILY.read(email))
}
