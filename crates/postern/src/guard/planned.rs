//! Planned sends: a burst announced in advance (a tenant's monthly newsletter) raises its key's
//! volume ceiling for the announced window, so the guard does not hold it. Only the volume
//! check is relaxed, and only up to the announced rate: bounce and complaint rates still apply.

use serde::Deserialize;

/// One announced send, `[[guard.planned]]` in postern.toml.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlannedSend {
    /// The API key id that will send it.
    pub key: String,
    /// RFC 3339 start and end of the window.
    #[serde(deserialize_with = "rfc3339_ms")]
    pub from: i64,
    #[serde(deserialize_with = "rfc3339_ms")]
    pub until: i64,
    /// Messages per minute the key may send inside the window.
    pub max_per_minute: u64,
}

fn rfc3339_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let s = String::deserialize(d)?;
    let t = time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "{s:?} is not an RFC 3339 time (like 2026-01-05T09:00:00Z): {e}"
            ))
        })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The per-minute ceiling an announcement gives `key` at `now`, if one covers it.
pub fn ceiling(planned: &[PlannedSend], key: &str, now: i64) -> Option<u64> {
    planned
        .iter()
        .filter(|p| p.key == key && (p.from..p.until).contains(&now))
        .map(|p| p.max_per_minute)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_covers_its_key_only_while_it_lasts() {
        #[derive(Deserialize)]
        struct T {
            planned: Vec<PlannedSend>,
        }
        let t: T = toml::from_str(
            r#"planned = [{ key = "k", from = "2026-01-05T09:00:00Z", until = "2026-01-05T10:00:00Z", max_per_minute = 9000 }]"#,
        )
        .expect("parses");
        let at = 1_767_603_600_000;
        assert_eq!(ceiling(&t.planned, "k", at), Some(9000));
        assert_eq!(ceiling(&t.planned, "k", at + 3_600_000), None);
        assert_eq!(ceiling(&t.planned, "other", at), None);
        let bad: Result<T, _> = toml::from_str(
            r#"planned = [{ key = "k", from = "tomorrow", until = "2026-01-05T10:00:00Z", max_per_minute = 1 }]"#,
        );
        assert!(bad.is_err());
    }
}
