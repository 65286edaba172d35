//! Content uniformity: a 64-bit SimHash of each message (word 3-shingles of the subject and
//! the first 2 KiB of the body, at most 64 shingles, so the cost is bounded whatever the
//! size), clustered per key by Hamming distance (≤ 12 bits is "near-identical": the same
//! template with another name, link or MIME boundary).
//!
//! Transactional mail is uniform by nature (a password reset is one template), so uniformity
//! alone says little; what a stolen key shows is a **new** template (first seen less than
//! `content_new_secs` ago, on a key with older history) that suddenly makes up most of the
//! key's mail: at least `content_min_messages` (50) in ten seconds and `content_share` (50%) of
//! the key's messages in those ten seconds, to at least 10 distinct recipient domains.

use serde_json::json;

use super::{Finding, Ring, fnv, round4};
use crate::guard::{GuardConfig, PauseScope};

/// Clusters (templates) remembered per key.
const CLUSTERS: usize = 32;
const NEAR_BITS: u32 = 12;
const MAX_SHINGLES: usize = 64;
const BODY_BYTES: usize = 2048;

/// The SimHash of a message: subject and the start of the body after the header block.
/// Lines that are MIME machinery (boundaries, part headers) are skipped.
pub fn simhash(subject: Option<&str>, raw: &[u8]) -> u64 {
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw, |i| &raw[i + 4..]);
    let body = &body[..body.len().min(BODY_BYTES)];
    let mut acc = [0i32; 64];
    let mut words: [u64; 3] = [0; 3];
    let mut n_words = 0usize;
    let mut shingles = 0usize;
    let mut add_word = |w: u64, acc: &mut [i32; 64]| {
        words = [words[1], words[2], w];
        n_words += 1;
        if n_words >= 3 && shingles < MAX_SHINGLES {
            shingles += 1;
            let h = fnv(
                &(words[0] ^ words[1].rotate_left(21) ^ words[2].rotate_left(42)).to_le_bytes(),
            );
            // Branch-free, so the 64 lanes vectorise.
            for (i, a) in acc.iter_mut().enumerate() {
                *a += ((h >> i) & 1) as i32 * 2 - 1;
            }
        }
    };
    let mut feed = |text: &[u8], acc: &mut [i32; 64]| {
        for word in text
            .split(|b| !b.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in word {
                h ^= u64::from(b.to_ascii_lowercase());
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            add_word(h, acc);
        }
    };
    if let Some(s) = subject {
        feed(s.as_bytes(), &mut acc);
    }
    for line in body.split(|b| *b == b'\n') {
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        let machinery =
            l.starts_with(b"--") || l.starts_with(b"Content-") || l.starts_with(b"MIME-Version");
        if !machinery {
            feed(l, &mut acc);
        }
    }
    acc.iter()
        .enumerate()
        .fold(0u64, |h, (i, a)| if *a > 0 { h | 1 << i } else { h })
}

#[derive(Debug, Clone)]
struct Cluster {
    hash: u64,
    first_seen: i64,
    last_seen: i64,
    minute: Ring<10>,
}

#[derive(Debug, Clone)]
pub struct KeyContent {
    clusters: Vec<Cluster>,
    minute: Ring<10>,
    first_seen: i64,
}

impl Default for KeyContent {
    fn default() -> Self {
        Self {
            clusters: Vec::with_capacity(CLUSTERS),
            minute: Ring::new(1_000),
            first_seen: 0,
        }
    }
}

impl KeyContent {
    /// Counts a message with this SimHash; `distinct_domains` is the key's current recipient
    /// domain spread (from the novelty signal).
    pub fn observe(
        &mut self,
        key: &str,
        now: i64,
        hash: u64,
        distinct_domains: usize,
        cfg: &GuardConfig,
    ) -> Option<Finding> {
        if self.first_seen == 0 {
            self.first_seen = now;
        }
        self.minute.add(now, 1);
        let i = match self
            .clusters
            .iter()
            .position(|c| (c.hash ^ hash).count_ones() <= NEAR_BITS)
        {
            Some(i) => i,
            None => {
                let c = Cluster {
                    hash,
                    first_seen: now,
                    last_seen: now,
                    minute: Ring::new(1_000),
                };
                if self.clusters.len() < CLUSTERS {
                    self.clusters.push(c);
                    self.clusters.len() - 1
                } else {
                    let (lru, _) = self
                        .clusters
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, c)| c.last_seen)?;
                    self.clusters[lru] = c;
                    lru
                }
            }
        };
        let c = &mut self.clusters[i];
        c.last_seen = now;
        c.minute.add(now, 1);
        let in_cluster = c.minute.count(now);
        let all = self.minute.count(now).max(1);
        let new_ms = cfg.content_new_secs as i64 * 1000;
        let new_template = now - c.first_seen < new_ms && c.first_seen - self.first_seen >= new_ms;
        let share = in_cluster as f64 / all as f64;
        if new_template
            && in_cluster >= cfg.content_min_messages
            && share >= cfg.content_share
            && distinct_domains >= 10
        {
            return Some(Finding {
                scope: PauseScope::Key(key.to_owned()),
                signal: "content",
                value: share,
                threshold: cfg.content_share,
                window_secs: self.minute.span_secs(),
                detail: json!({
                    "template_messages_last_10s": in_cluster,
                    "messages_last_10s": all,
                    "template_age_secs": (now - c.first_seen) / 1000,
                    "simhash": format!("{:016x}", c.hash),
                    "distinct_recipient_domains": distinct_domains,
                    "share": round4(share),
                }),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mime(body: &str, boundary: &str) -> Vec<u8> {
        format!("From: a@b.example\r\nSubject: x\r\n\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n{body}\r\n--{boundary}--\r\n").into_bytes()
    }

    #[test]
    fn near_identical_bodies_hash_close_and_different_ones_far() {
        let spam = "Congratulations! You have been selected to receive an exclusive offer on our premium watches, claim your discount today before it expires, limited stock available now";
        let a = simhash(
            Some("Exclusive offer"),
            &mime(&format!("Dear Alice, {spam}"), "b1"),
        );
        let b = simhash(
            Some("Exclusive offer"),
            &mime(&format!("Dear Bob, {spam}"), "zz9"),
        );
        let other = simhash(
            Some("Your invoice"),
            &mime(
                "Hello, your invoice number 1042 for October is attached; payment is due within thirty days of the date shown",
                "b1",
            ),
        );
        assert!(
            (a ^ b).count_ones() <= NEAR_BITS,
            "{}",
            (a ^ b).count_ones()
        );
        assert!(
            (a ^ other).count_ones() > NEAR_BITS,
            "{}",
            (a ^ other).count_ones()
        );
    }

    #[test]
    fn a_new_template_dominating_an_established_key_is_found() {
        let cfg = GuardConfig::default();
        let mut k = KeyContent::default();
        let t0 = 1_000_000;
        let usual = simhash(
            Some("Reset your password"),
            b"\r\n\r\nClick the link below to reset your password for your account today",
        );
        for i in 0..700 {
            assert!(k.observe("k", t0 + i * 1_000, usual, 4, &cfg).is_none());
        }
        let spam = simhash(
            Some("Cheap watches"),
            b"\r\n\r\nBuy cheap replica watches now with free shipping worldwide and big discounts",
        );
        let t1 = t0 + 700_000;
        let n = (0..200)
            .position(|i| k.observe("k", t1 + i * 2, spam, 40, &cfg).is_some())
            .expect("no finding");
        assert!(n < 60, "{n}");
        // A new key's first template is not "new": it has no history to differ from.
        let mut fresh = KeyContent::default();
        assert!((0..200).all(|i| fresh.observe("f", t1 + i * 2, spam, 40, &cfg).is_none()));
    }
}
