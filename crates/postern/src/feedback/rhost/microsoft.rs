//! Microsoft's reader (Exchange Online, Microsoft 365): its table of enhanced status codes and
//! phrases per reason. Adapted from Sisimai's rhost/for-microsoft.go (BSD-2-Clause, Copyright
//! azumakuniyuki and the sisimai development team).

use super::Facts;

/// Microsoft's table: (status code or its prefix, third-number range, phrase). A prefix ending
/// in `.` takes the range of the third number; an exact code takes (0, 0).
type MsRow = (&'static str, u32, u32, &'static str);

const MICROSOFT: &[(&str, &[MsRow])] = &[
    (
        "authfailure",
        &[
            (
                "4.7.26",
                0,
                0,
                "must pass either spf or dkim validation, this message is not signed",
            ),
            (
                "5.7.23",
                0,
                0,
                "the message was rejected because of sender policy framework violation",
            ),
            ("5.7.509", 0, 0, "does not pass dmarc verification"),
        ],
    ),
    (
        "badreputation",
        &[(
            "4.7.650",
            0,
            0,
            "has been temporarily rate limited due to ip reputation",
        )],
    ),
    (
        "blocked",
        &[
            ("4.4.2", 0, 0, "connection dropped"),
            ("4.7.", 850, 899, "access denied, please try again later"),
            ("5.7.25", 0, 0, "must have a reverse dns record"),
            ("5.7.506", 0, 0, "access denied, bad helo"),
            ("5.7.507", 0, 0, "access denied, rejected by recipient"),
            ("5.7.510", 0, 0, "does not accept email over ipv6"),
            ("5.7.511", 0, 0, "access denied, banned sender"),
            ("5.7.513", 0, 0, "using customer block list"),
            ("5.7.", 606, 649, "access denied, banned sending ip "),
            ("4.7.", 500, 699, "access denied, please try again later"),
            ("5.5.4", 0, 0, "invalid domain name"),
            (
                "5.7.1",
                0,
                0,
                "part of their network is on our block list (s3150)",
            ),
        ],
    ),
    (
        "contenterror",
        &[
            ("5.3.0", 0, 0, "too many related errors"),
            ("5.6.11", 0, 0, "invalid characters"),
            ("5.4.11", 0, 0, "agent generated message depth exceeded"),
            ("5.5.6", 0, 0, "invalid message content"),
        ],
    ),
    (
        "exceedlimit",
        &[(
            "5.2.3",
            0,
            0,
            "resolver.rst.recipsizelimit; message too large for this recipient",
        )],
    ),
    (
        "expired",
        &[
            ("4.4.1", 0, 0, "connection timed out"),
            ("4.4.7", 0, 0, "message delayed"),
            ("4.4.7", 0, 0, "queue expired; message expired"),
            ("4.4.7", 0, 0, "message expired"),
            ("5.4.300", 0, 0, "message expired"),
            ("5.4.316", 0, 0, "message expired"),
        ],
    ),
    (
        "failedstarttls",
        &[
            ("4.4.8", 0, 0, " failed mta-sts validation"),
            ("5.4.8", 0, 0, " failed mta-sts validation"),
            ("4.4.317", 0, 0, "starttls is required to send mail"),
            ("5.4.317", 0, 0, "starttls is required to send mail"),
            (
                "4.7.5",
                0,
                0,
                "remote certificate failed mta-sts validation",
            ),
            (
                "5.7.5",
                0,
                0,
                "remote certificate failed mta-sts validation",
            ),
            (
                "5.7.51",
                0,
                0,
                "restrictdomainstoipaddresses or restrictdomainstocertificate",
            ),
            (
                "4.7.321",
                0,
                0,
                "starttls-not-supported: destination mail server must support tls to receive mail",
            ),
            (
                "5.7.321",
                0,
                0,
                "starttls-not-supported: destination mail server must support tls to receive mail",
            ),
            (
                "5.7.322",
                0,
                0,
                "certificate-expired: destination mail server's certificate is expired",
            ),
            (
                "4.7.323",
                0,
                0,
                "tlsa-invalid: the domain failed dane validation",
            ),
            (
                "5.7.323",
                0,
                0,
                "tlsa-invalid: the domain failed dane validation",
            ),
            (
                "4.7.324",
                0,
                0,
                "dnssec-invalid: destination domain returned invalid dnssec records",
            ),
            (
                "5.7.324",
                0,
                0,
                "dnssec-invalid: destination domain returned invalid dnssec records",
            ),
            (
                "4.7.325",
                0,
                0,
                "certificate-host-mismatch: remote certificate must have a common name or subject alternative name matching the hostname (dane)",
            ),
            (
                "5.7.325",
                0,
                0,
                "certificate-host-mismatch: remote certificate must have a common name or subject alternative name matching the hostname (dane)",
            ),
        ],
    ),
    ("mailboxfull", &[("5.2.2", 0, 0, "mailbox full")]),
    (
        "mesgtoobig",
        &[
            (
                "5.3.4",
                0,
                0,
                "message size exceeds fixed maximum message size",
            ),
            ("5.3.4", 0, 0, "message too big for system"),
        ],
    ),
    (
        "networkerror",
        &[
            (
                "5.4.4",
                0,
                0,
                "smtpsend.dns.nonexistentdomain; nonexistent domain",
            ),
            ("5.4.6", 0, 0, "hop count exceeded - possible mail loop"),
            ("4.4.312", 0, 0, "dns query failed"),
            ("5.4.312", 0, 0, "dns query failed"),
            ("4.4.316", 0, 0, "connection refused"),
            ("5.4.316", 0, 0, "connection refused"),
            ("5.4.4", 0, 0, "invalid arguments"),
            ("5.4.6", 0, 0, "routing loop detected"),
            ("5.4.14", 0, 0, "routing loop detected"),
        ],
    ),
    (
        "norelaying",
        &[
            ("5.7.1", 0, 0, "unable to relay"),
            ("5.7.1", 0, 0, "client was not authenticated"),
            ("5.4.1", 0, 0, "relay access denied"),
            ("5.7.64", 0, 0, "tenantattribution; relay access denied"),
            ("5.4.310", 0, 0, "does not exist"),
        ],
    ),
    (
        "notaccept",
        &[
            ("4.3.2", 0, 0, "system not accepting network messages"),
            (
                "4.4.4",
                0,
                0,
                "hosted tenant which has no mail-enabled subscriptions",
            ),
            (
                "5.3.2",
                0,
                0,
                "storedrv.deliver: missing or bad storedriver mdb properties",
            ),
        ],
    ),
    (
        "policyviolation",
        &[
            ("5.0.350", 0, 0, "x-dg-ref header is too long"),
            (
                "5.0.350",
                0,
                0,
                "requested action not taken: policy violation detected (as345)",
            ),
            ("5.7.", 900, 999, "delivery not authorized, message refused"),
        ],
    ),
    (
        "rejected",
        &[
            ("5.1.7", 0, 0, "invalid address"),
            ("5.1.7", 0, 0, "unknown sender address"),
            ("5.1.0", 0, 0, "sender denied"),
            ("5.1.8", 0, 0, "access denied, bad outbound sender"),
            ("5.7.1", 0, 0, "delivery not authorized"),
            (
                "5.7.12",
                0,
                0,
                "sender was not authenticated by organization",
            ),
            ("5.7.124", 0, 0, "sender not in allowed-senders list"),
            ("5.7.133", 0, 0, "sender not authenticated for group"),
            ("5.7.134", 0, 0, "sender was not authenticated for mailbox"),
            (
                "5.7.13",
                0,
                0,
                "sender was not authenticated for public folder",
            ),
            (
                "5.7.135",
                0,
                0,
                "sender was not authenticated for public folder",
            ),
            ("5.7.136", 0, 0, "sender was not authenticated"),
            ("5.7.", 501, 503, "access denied, spam abuse detected"),
            (
                "5.7.512",
                0,
                0,
                "access denied, message must be rfc 5322 section 3.6.2 compliant",
            ),
            (
                "5.7.750",
                0,
                0,
                "service unavailable. client blocked from sending from unregistered domains",
            ),
            ("5.7.", 501, 503, "access denied, banned sender"),
        ],
    ),
    (
        "securityerror",
        &[
            (
                "5.7.3",
                0,
                0,
                "cannot achieve exchange server authentication",
            ),
            ("5.7.3", 0, 0, "not authorized"),
            (
                "5.7.57",
                0,
                0,
                "client was not authenticated to send anonymous mail during mail from",
            ),
        ],
    ),
    (
        "spamdetected",
        &[(
            "5.2.1",
            0,
            0,
            "content filter agent quarantined this message",
        )],
    ),
    (
        "speeding",
        &[
            (
                "4.3.2",
                0,
                0,
                "storedrv.deliver; recipient thread limit exceeded",
            ),
            (
                "5.1.90",
                0,
                0,
                "your message can't be sent because you've reached your daily limit for message recipients",
            ),
            ("5.2.2", 0, 0, "submission quota exceeded"),
            (
                "5.2.121",
                0,
                0,
                "recipient's per hour message receive limit from specific sender exceeded",
            ),
            (
                "5.2.122",
                0,
                0,
                "recipient's per hour message receive limit exceeded",
            ),
            ("5.7.508", 0, 0, "has exceeded permitted limits within"),
            (
                "5.7.",
                700,
                749,
                "access denied, tenant has exceeded threshold",
            ),
            (
                "5.7.",
                700,
                749,
                "access denied, traffic not accepted from this ip",
            ),
        ],
    ),
    (
        "suspend",
        &[
            ("5.7.504", 0, 0, "recipient address rejected: access denied"),
            ("5.7.505", 0, 0, "access denied, banned recipient"),
            ("5.2.1", 0, 0, "mailbox cannot be accessed"),
        ],
    ),
    (
        "syntaxerror",
        &[
            ("5.3.3", 0, 0, "unrecognized command"),
            ("5.5.2", 0, 0, "send hello first"),
        ],
    ),
    (
        "systemerror",
        &[
            ("4.3.2", 0, 0, "service not available"),
            ("4.3.2", 0, 0, "service not active"),
            ("5.3.5", 0, 0, "system incorrectly configured"),
            (
                "5.3.190",
                0,
                0,
                "journaling on-premises messages to microsoft 365 or office 365 not supported when journaling archive is disabled",
            ),
            ("5.0.0", 0, 0, "helo / ehlo requires domain address"),
            ("5.1.4", 0, 0, "destination mailbox address ambiguous"),
            ("5.2.4", 0, 0, "mailing list expansion problem"),
            ("5.2.14", 0, 0, "misconfigured forwarding address"),
            (
                "4.4.3",
                0,
                0,
                "temporary server error. please try again later attr18",
            ),
            (
                "4.7.0",
                0,
                0,
                "temporary server error. please try again later. prx4 nexthop:",
            ),
            (
                "4.4.24",
                0,
                0,
                "message failed to be replicated: insufficient system resource:",
            ),
            (
                "4.4.25",
                0,
                0,
                "message failed to be replicated: no healthy secondary server available to accept replica at this time.",
            ),
            (
                "4.4.28",
                0,
                0,
                "message failed to be replicated: the operation was canceled",
            ),
            ("4.4.318", 0, 0, "(suspiciousremoteservererror)"),
            ("5.4.318", 0, 0, "(suspiciousremoteservererror)"),
            ("4.7.500", 0, 0, "server busy. please try again later from "),
            ("4.7.700", 0, 0, "pfa agent busy, please try again."),
        ],
    ),
    (
        "systemfull",
        &[("4.3.1", 0, 0, "insufficient system resources")],
    ),
    (
        "toomanyconn",
        &[
            ("5.5.3", 0, 0, "too many recipients"),
            ("4.5.3", 0, 0, "too many recipients"),
            (
                "4.7.652",
                0,
                0,
                "has exceeded the maximum number of connections",
            ),
            (
                "5.2.122",
                0,
                0,
                "the recipient has exceeded their limit for",
            ),
        ],
    ),
    (
        "userunknown",
        &[
            ("5.1.1", 0, 0, "resolver.adr.exrecipnotfound; not found"),
            ("5.1.1", 0, 0, "user unknown"),
            ("5.1.3", 0, 0, "storedrv.submit; invalid recipient address"),
            ("5.1.", 4, 5, "recipient address reserved by rfc 2606"),
            (
                "5.1.6",
                0,
                0,
                "recipient addresses in single label domains not accepted",
            ),
            ("5.1.1", 0, 0, "bad destination mailbox address"),
            ("5.1.10", 0, 0, "recipient not found"),
            ("5.4.1", 0, 0, "recipient address rejected: access denied"),
            (
                "5.5.0",
                0,
                0,
                "requested action not taken: mailbox unavailable",
            ),
            ("5.1.2", 0, 0, "invalid x.400 address"),
            (
                "5.1.351",
                0,
                0,
                "remote server returned unknown recipient or mailbox unavailable",
            ),
        ],
    ),
];

pub(super) fn microsoft(f: &Facts<'_>) -> Option<&'static str> {
    let third: u32 = f.status.split('.').nth(2)?.parse().ok()?;
    let text = f.diagnosis.to_ascii_lowercase();
    for (reason, rows) in MICROSOFT {
        for (code, lo, hi, phrase) in *rows {
            let code_fits = if lo == hi {
                f.status == *code
            } else {
                f.status.starts_with(code) && (*lo..=*hi).contains(&third)
            };
            if code_fits && text.contains(phrase) {
                return Some(reason);
            }
        }
    }
    None
}
