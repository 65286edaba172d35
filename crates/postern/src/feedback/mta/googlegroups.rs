//! Google Groups: a post to a group that refused it. Google writes the failed address in
//! X-Failed-Recipients and, when the sender may not post, a bulleted list of the possible
//! reasons (group missing, no permission, ...): the message was rejected for its sender.

use crate::feedback::Delivery;
use crate::feedback::address::addresses_in;
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    let failed = email.header("x-failed-recipients")?;
    if !email.text.contains("Google Groups") || !email.sender_lower().contains("googlemail.com") {
        return None;
    }
    let report = email
        .text
        .split("----- Original message -----")
        .next()
        .unwrap_or("");
    let bullets = report
        .matches("\n *")
        .count()
        .max(report.matches("\n*").count());
    let reason = if bullets == 4 {
        Reason::Rejected
    } else {
        Reason::OnHold
    };
    let diagnosis = report.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(
        addresses_in(failed)
            .into_iter()
            .map(|addr| {
                let mut d = Delivery::new(addr);
                d.reason = Some(reason);
                d.diagnosis = diagnosis.clone();
                d
            })
            .collect(),
    )
}
