//! SMTP command parsing (RFC 5321 §4.1), strict about syntax and lenient only where common
//! clients deviate (a space after `MAIL FROM:`). Written here rather than taken from a crate
//! because the server needs exact control of limits and of every reply to malformed input,
//! and the command set of a submission server is small.

/// One parsed command line (without its CRLF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// Reverse path (empty for `<>`) and the SIZE parameter if given.
    Mail {
        from: String,
        size: Option<usize>,
    },
    Rcpt {
        to: String,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("500 5.5.2 Command not recognized")]
    Unknown,
    #[error("501 5.5.4 Syntax: {0}")]
    Syntax(&'static str),
    #[error("555 5.5.4 Unsupported parameter {0}")]
    Parameter(String),
}

pub fn parse(line: &str) -> Result<Command, ParseError> {
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line, ""),
    };
    let no_args = |c: Command| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax("no arguments allowed"))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" | "HELO" => {
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                return Err(ParseError::Syntax(
                    "EHLO/HELO takes one domain or address literal",
                ));
            }
            if verb.eq_ignore_ascii_case("EHLO") {
                Ok(Command::Ehlo(rest.into()))
            } else {
                Ok(Command::Helo(rest.into()))
            }
        }
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" => {
            let mut parts = rest.split_ascii_whitespace();
            let mechanism = parts
                .next()
                .ok_or(ParseError::Syntax("AUTH mechanism [initial-response]"))?;
            let initial = parts.next().map(str::to_owned);
            if parts.next().is_some() {
                return Err(ParseError::Syntax("AUTH mechanism [initial-response]"));
            }
            Ok(Command::Auth {
                mechanism: mechanism.to_ascii_uppercase(),
                initial,
            })
        }
        "MAIL" => {
            let (path, params) = path_arg(rest, "FROM:")
                .ok_or(ParseError::Syntax("MAIL FROM:<address> [SIZE=n]"))?;
            let mut size = None;
            for p in params.split_ascii_whitespace() {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                match k.to_ascii_uppercase().as_str() {
                    "SIZE" => {
                        size = Some(v.parse().map_err(|_| ParseError::Syntax("SIZE=<number>"))?)
                    }
                    "BODY"
                        if v.eq_ignore_ascii_case("8BITMIME") || v.eq_ignore_ascii_case("7BIT") => {
                    }
                    _ => return Err(ParseError::Parameter(k.to_owned())),
                }
            }
            Ok(Command::Mail { from: path, size })
        }
        "RCPT" => {
            let (path, params) =
                path_arg(rest, "TO:").ok_or(ParseError::Syntax("RCPT TO:<address>"))?;
            if !params.trim().is_empty() {
                return Err(ParseError::Parameter(params.trim().to_owned()));
            }
            if path.is_empty() {
                return Err(ParseError::Syntax("RCPT TO:<address>"));
            }
            Ok(Command::Rcpt { to: path })
        }
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => Ok(Command::Vrfy),
        "HELP" => Ok(Command::Help),
        _ => Err(ParseError::Unknown),
    }
}

/// `FROM:<path> params` → (`path`, `params`).
fn path_arg<'a>(rest: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    if rest.len() < keyword.len() || !rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    let after = rest[keyword.len()..].trim_start();
    let inner = after.strip_prefix('<')?;
    let end = inner.find('>')?;
    let path = &inner[..end];
    if path.contains(|c: char| c.is_whitespace() || c.is_control() || c == '<') {
        return None;
    }
    // A source route (`@a,@b:user@c`) is obsolete; keep the mailbox.
    let path = path
        .rsplit_once(':')
        .filter(|_| path.starts_with('@'))
        .map_or(path, |(_, m)| m);
    Some((path.to_owned(), &inner[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_submission_commands() {
        assert_eq!(
            parse("EHLO client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(
            parse("mail from:<a@b.com> SIZE=100 BODY=8BITMIME"),
            Ok(Command::Mail {
                from: "a@b.com".into(),
                size: Some(100)
            })
        );
        assert_eq!(
            parse("MAIL FROM: <a@b.com>"),
            Ok(Command::Mail {
                from: "a@b.com".into(),
                size: None
            })
        );
        assert_eq!(
            parse("MAIL FROM:<>"),
            Ok(Command::Mail {
                from: String::new(),
                size: None
            })
        );
        assert_eq!(
            parse("RCPT TO:<c@d.org>"),
            Ok(Command::Rcpt {
                to: "c@d.org".into()
            })
        );
        assert_eq!(
            parse("AUTH plain AGtleQ=="),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGtleQ==".into())
            })
        );
        assert_eq!(parse("DATA"), Ok(Command::Data));
        assert_eq!(parse("STARTTLS"), Ok(Command::StartTls));
    }

    #[test]
    fn rejects_malformed_commands() {
        assert_eq!(parse("FOO"), Err(ParseError::Unknown));
        assert!(matches!(
            parse("MAIL FROM:a@b.com"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(parse("RCPT TO:<>"), Err(ParseError::Syntax(_))));
        assert!(matches!(
            parse("MAIL FROM:<a@b.com> XYZ=1"),
            Err(ParseError::Parameter(_))
        ));
        assert!(matches!(parse("EHLO"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("DATA now"), Err(ParseError::Syntax(_))));
        assert!(matches!(
            parse("MAIL FROM:<a b@c.d>"),
            Err(ParseError::Syntax(_))
        ));
    }
}
