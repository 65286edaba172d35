//! DragonFly Mail Agent (dma): "This is the DragonFly Mail Agent", "There was an error
//! delivering your mail to <address>.", the remote answer, then "Message headers follow".

use crate::feedback::Delivery;
use crate::feedback::generic::{Family, Layout};
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;

const FAMILY: Family = Family {
    layout: Layout {
        starts: &["this is the dragonfly mail agent "],
        ends: &["original message follows.", "message headers follow"],
    },
    commands: &[],
    reasons: &[
        (Reason::Expired, &["could not deliver for the last "]),
        (Reason::HostUnknown, &["dns lookup failure: host "]),
    ],
};

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    email
        .text
        .contains("This is the DragonFly Mail Agent ")
        .then(|| FAMILY.read(email))
}
