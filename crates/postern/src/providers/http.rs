//! What the HTTP API adapters share: one client setup, the classification of transport errors
//! and status codes, and the "some recipients were refused, send to the others" loop.

use std::future::Future;
use std::time::Duration;

use super::{Delivery, FailureClass, ProviderError, ProviderWideKind, RecipientOutcome};

/// Longest piece of a provider's answer kept in an error message.
const MAX_BODY_IN_ERROR: usize = 300;

pub(crate) fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("postern/", env!("CARGO_PKG_VERSION")))
        .tcp_nodelay(true)
        .build()?)
}

pub(crate) fn wide(kind: ProviderWideKind, code: Option<u16>, msg: String) -> ProviderError {
    ProviderError::new(FailureClass::ProviderWide(kind), code, msg)
}

/// A request that got no HTTP answer. The URL is left out of the message: some (webhooks)
/// carry a token in their path or query.
pub(crate) fn transport_error(what: &str, e: reqwest::Error) -> ProviderError {
    let e = e.without_url();
    let (connect, timeout) = (e.is_connect(), e.is_timeout());
    let e = error_chain(&e);
    if connect {
        wide(
            ProviderWideKind::Unavailable,
            None,
            format!("{what}: cannot connect: {e}"),
        )
    } else if timeout {
        ProviderError::new(
            FailureClass::Transient,
            None,
            format!("{what}: no answer in time: {e}"),
        )
    } else {
        ProviderError::new(FailureClass::Transient, None, format!("{what}: {e}"))
    }
}

/// An error with its sources ("error sending request: client error (Connect): …"), so the
/// reason is not lost behind a generic top-level message.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

/// The class an HTTP status implies when the body says nothing more specific.
pub(crate) fn class_of_status(status: u16) -> FailureClass {
    match status {
        401 | 403 => FailureClass::ProviderWide(ProviderWideKind::AuthFailed),
        429 => FailureClass::ProviderWide(ProviderWideKind::Throttled),
        503 => FailureClass::ProviderWide(ProviderWideKind::Unavailable),
        408 | 500..=599 => FailureClass::Transient,
        _ => FailureClass::Permanent,
    }
}

/// A provider's answer, shortened for an error message.
pub(crate) fn snippet(body: &str) -> String {
    let body = body.trim();
    if body.len() <= MAX_BODY_IN_ERROR {
        return body.to_owned();
    }
    let mut end = MAX_BODY_IN_ERROR;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

/// What one API call did with the recipients it was given.
pub(crate) enum Attempt {
    /// Accepted for every recipient; the text is the provider's reference (message id).
    Sent(String),
    /// Refused before anything was sent, because of these recipients (address, code, reason).
    /// The others may be sent again at once.
    Refused(Vec<(String, Option<u16>, String)>),
    Failed(ProviderError),
}

/// Calls `send` with the pending recipients; when the provider refuses some of them (and so
/// sent nothing), those bounce and the call is made again for the rest. A provider-wide
/// failure on a later call is returned as such, since nothing was delivered yet.
pub(crate) async fn deliver_with_refusals<F, Fut>(
    recipients: &[String],
    mut send: F,
) -> Result<Delivery, ProviderError>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: Future<Output = Attempt>,
{
    let mut pending: Vec<String> = recipients.to_vec();
    let mut bounced: Vec<(String, RecipientOutcome)> = Vec::new();
    // Each round removes at least one recipient, so this ends; the bound is a safety net.
    for _ in 0..=recipients.len() {
        if pending.is_empty() {
            break;
        }
        match send(pending.clone()).await {
            Attempt::Sent(reference) => {
                let mut out = bounced;
                out.extend(pending.into_iter().map(|r| {
                    (
                        r,
                        RecipientOutcome::Delivered {
                            response: reference.clone(),
                        },
                    )
                }));
                return Ok(in_order(recipients, out));
            }
            Attempt::Refused(refused) => {
                let before = pending.len();
                for (addr, code, reason) in refused {
                    if let Some(i) = pending.iter().position(|p| p.eq_ignore_ascii_case(&addr)) {
                        let r = pending.remove(i);
                        bounced.push((r, RecipientOutcome::Bounced { code, reason }));
                    }
                }
                if pending.len() == before {
                    return Err(ProviderError::new(
                        FailureClass::Permanent,
                        None,
                        "the provider refused recipients that were not in the request",
                    ));
                }
            }
            Attempt::Failed(e) if bounced.is_empty() => return Err(e),
            Attempt::Failed(e) => {
                let mut out = bounced;
                let permanent = e.class == FailureClass::Permanent;
                out.extend(pending.into_iter().map(|r| {
                    let reason = e.message.clone();
                    let o = if permanent {
                        RecipientOutcome::Bounced {
                            code: e.code,
                            reason,
                        }
                    } else {
                        RecipientOutcome::Deferred {
                            code: e.code,
                            reason,
                        }
                    };
                    (r, o)
                }));
                return Ok(in_order(recipients, out));
            }
        }
    }
    Ok(in_order(recipients, bounced))
}

/// Outcomes in the order the recipients were given.
pub(crate) fn in_order(
    recipients: &[String],
    mut out: Vec<(String, RecipientOutcome)>,
) -> Delivery {
    let mut sorted = Vec::with_capacity(out.len());
    for r in recipients {
        if let Some(i) = out.iter().position(|(a, _)| a == r) {
            sorted.push(out.swap_remove(i));
        }
    }
    sorted.extend(out);
    Delivery { recipients: sorted }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(
            class_of_status(401),
            FailureClass::ProviderWide(ProviderWideKind::AuthFailed)
        );
        assert_eq!(
            class_of_status(429),
            FailureClass::ProviderWide(ProviderWideKind::Throttled)
        );
        assert_eq!(class_of_status(502), FailureClass::Transient);
        assert_eq!(class_of_status(422), FailureClass::Permanent);
    }

    #[test]
    fn snippets_cut_on_a_char_boundary() {
        let long = "é".repeat(400);
        assert!(snippet(&long).ends_with('…'));
    }

    #[tokio::test]
    async fn refused_recipients_bounce_and_the_rest_is_sent_again() {
        let rcpts = vec!["a@x".to_owned(), "b@x".to_owned(), "c@x".to_owned()];
        let mut calls = Vec::new();
        let d = deliver_with_refusals(&rcpts, |p| {
            calls.push(p.clone());
            async move {
                if p.iter().any(|r| r == "b@x") {
                    Attempt::Refused(vec![("B@x".into(), Some(406), "inactive".into())])
                } else {
                    Attempt::Sent("id-1".into())
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1], vec!["a@x".to_owned(), "c@x".to_owned()]);
        let names: Vec<_> = d.recipients.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(names, ["a@x", "b@x", "c@x"]);
        assert!(matches!(
            d.recipients[1].1,
            RecipientOutcome::Bounced {
                code: Some(406),
                ..
            }
        ));
        assert!(matches!(
            d.recipients[0].1,
            RecipientOutcome::Delivered { .. }
        ));
    }
}
