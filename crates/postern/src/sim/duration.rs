//! Durations in a scenario file: `"500ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"`, or seconds.

use serde::Deserialize;

/// A duration: `"500ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"`, or a number of seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dur(pub i64);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(f64),
            Text(String),
        }
        let ms = match Raw::deserialize(d)? {
            Raw::Secs(s) if s >= 0.0 && s.is_finite() => (s * 1000.0).round() as i64,
            Raw::Secs(s) => return Err(serde::de::Error::custom(format!("{s} is not a duration"))),
            Raw::Text(t) => parse_ms(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{t:?} is not a duration (like 500ms, 10s, 5m, 1h)"
                ))
            })?,
        };
        Ok(Dur(ms))
    }
}

pub(super) fn parse_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    Some((n * unit_ms).round() as i64)
}
