use std::fmt;
use std::str::FromStr;

/// A mailbox address (`local@domain`) fit for an SMTP envelope and a header.
///
/// Validation is delegated to lettre's RFC 5321 address parser, plus the checks that matter for
/// a gateway: no control characters (header injection), RFC 5321 length limits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address contains a control character or whitespace")]
    ControlCharacter,
    #[error("address is longer than 254 characters")]
    TooLong,
    #[error("address is not of the form local@domain: {0}")]
    Syntax(String),
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(AddressError::ControlCharacter);
        }
        if s.len() > 254 {
            return Err(AddressError::TooLong);
        }
        let parsed =
            lettre::Address::from_str(s).map_err(|e| AddressError::Syntax(e.to_string()))?;
        if parsed.user().len() > 64 {
            return Err(AddressError::Syntax(
                "local part is longer than 64 characters".into(),
            ));
        }
        if !parsed.domain().contains('.') && !parsed.domain().starts_with('[') {
            return Err(AddressError::Syntax("domain has no dot".into()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }

    /// Comparison key: the domain is case-insensitive, and in practice so is the local part.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for a in [
            "a@example.com",
            "first.last+tag@sub.example.org",
            "x_y-z@e.co",
        ] {
            assert_eq!(EmailAddress::parse(a).unwrap().as_str(), a);
        }
    }

    #[test]
    fn rejects_injection_and_garbage() {
        assert_eq!(
            EmailAddress::parse("a@b.com\r\nBcc: x@y.z"),
            Err(AddressError::ControlCharacter)
        );
        assert_eq!(EmailAddress::parse(""), Err(AddressError::Empty));
        assert!(matches!(
            EmailAddress::parse("no-at-sign"),
            Err(AddressError::Syntax(_))
        ));
        assert!(matches!(
            EmailAddress::parse("a@localhost"),
            Err(AddressError::Syntax(_))
        ));
        assert!(matches!(
            EmailAddress::parse("a@@b.com"),
            Err(AddressError::Syntax(_))
        ));
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(matches!(
            EmailAddress::parse(&long),
            Err(AddressError::Syntax(_))
        ));
    }

    #[test]
    fn domain_is_after_the_last_at() {
        assert_eq!(
            EmailAddress::parse("a@Example.COM").unwrap().domain(),
            "Example.COM"
        );
    }
}
