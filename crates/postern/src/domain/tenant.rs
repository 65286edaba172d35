use std::fmt;

/// A tenant's name: lowercase ASCII letters, digits, `-` and `_`, 1 to 63 characters,
/// starting with a letter or digit. Used in CLI arguments, routes and metrics labels.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TenantName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid tenant name {0:?}: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
)]
pub struct TenantError(pub String);

impl TenantName {
    pub fn parse(raw: &str) -> Result<Self, TenantError> {
        let ok = !raw.is_empty()
            && raw.len() <= 63
            && raw.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(TenantError(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(TenantName::parse("acme-1").is_ok());
        assert!(TenantName::parse("Acme").is_err());
        assert!(TenantName::parse("-x").is_err());
        assert!(TenantName::parse("").is_err());
        assert!(TenantName::parse("a b").is_err());
        assert!(TenantName::parse(&"a".repeat(64)).is_err());
    }
}
