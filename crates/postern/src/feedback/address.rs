//! Email addresses as they appear in bounce text: `<a@b>`, `a@b:`, `"a@b"`, `rfc822; a@b`.

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._%+-=!#$&'*/?^`{|}~".contains(c)
}

fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

/// Every address in `text`, in order of appearance, without duplicates.
pub(crate) fn addresses_in(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (at, _) in text.match_indices('@') {
        let (Some(before), Some(after)) = (text.get(..at), text.get(at + 1..)) else {
            continue;
        };
        let local: String = before
            .chars()
            .rev()
            .take_while(|c| is_local_char(*c))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let domain: String = after.chars().take_while(|c| is_domain_char(*c)).collect();
        if let Some(addr) = clean_address(&format!("{local}@{domain}"))
            && !out.contains(&addr)
        {
            out.push(addr);
        }
    }
    out
}

/// The address in a value such as `rfc822; <Bob@Example.org>`, lower-cased, if it is one.
pub(crate) fn clean_address(value: &str) -> Option<String> {
    let value = value.rsplit_once(';').map_or(value, |(_, v)| v);
    let value = value
        .trim()
        .trim_start_matches(['<', '"', '\'', '('])
        .trim_end_matches(['>', '"', '\'', ')', ':', ',', ';']);
    let value = value.split_whitespace().next().unwrap_or("");
    let value = value
        .trim_start_matches('<')
        .trim_end_matches(['>', '.', ':', ',']);
    let (local, domain) = value.rsplit_once('@')?;
    let local = local.trim_start_matches(['.', '<', '\'']);
    if local.is_empty()
        || !local.chars().all(is_local_char)
        || domain.len() < 3
        || !domain.contains('.')
        || !domain.chars().all(is_domain_char)
        || domain.starts_with(['.', '-'])
        || domain.ends_with(['.', '-'])
        || local.len() > 128
    {
        return None;
    }
    Some(format!("{}@{}", local, domain.to_ascii_lowercase()))
}

/// The address of a header such as `From: App <app@example.com>` (the angle-bracketed part
/// when there is one).
pub(crate) fn header_address(value: &str) -> Option<String> {
    let inner = value
        .rsplit_once('<')
        .map_or(value, |(_, r)| r.split('>').next().unwrap_or(""));
    clean_address(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_addresses() {
        assert_eq!(
            header_address("\"App, Inc\" <App@Example.com>").as_deref(),
            Some("App@example.com")
        );
        assert_eq!(
            header_address("app@example.com").as_deref(),
            Some("app@example.com")
        );
        assert_eq!(header_address("App <>"), None);
    }

    #[test]
    fn cleans_common_forms() {
        assert_eq!(
            clean_address("rfc822; <Bob@Example.ORG>").as_deref(),
            Some("Bob@example.org")
        );
        assert_eq!(
            clean_address("bob@example.org:").as_deref(),
            Some("bob@example.org")
        );
        assert_eq!(clean_address("not an address"), None);
        assert_eq!(clean_address("bob@localhost"), None);
    }

    #[test]
    fn finds_addresses_in_text() {
        let found = addresses_in("<a@x.example>: said no to b@y.example, a@x.example");
        assert_eq!(
            found,
            vec!["a@x.example".to_string(), "b@y.example".to_string()]
        );
    }
}
