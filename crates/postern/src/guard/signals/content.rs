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

use super::{Finding, Ring, round4};
use crate::guard::{GuardConfig, PauseScope};

/// Clusters (templates) remembered per key.
const CLUSTERS: usize = 32;
const NEAR_BITS: u32 = 12;
const MAX_SHINGLES: usize = 64;
const BODY_BYTES: usize = 2048;

/// The SimHash of a message: subject and the start of the body after the header block.
/// Lines that are MIME machinery (boundaries, part headers) are skipped.
pub fn simhash(subject: Option<&str>, raw: &[u8]) -> u64 {
    let body = memchr::memmem::find(raw, b"\r\n\r\n").map_or(raw, |i| &raw[i + 4..]);
    let body = &body[..body.len().min(BODY_BYTES)];
    let mut sh = Shingles::default();
    if let Some(s) = subject {
        sh.feed(s.as_bytes());
    }
    for line in body.split(|b| *b == b'\n') {
        if sh.full() {
            break;
        }
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        let machinery =
            l.starts_with(b"--") || l.starts_with(b"Content-") || l.starts_with(b"MIME-Version");
        if !machinery {
            sh.feed(l);
        }
    }
    sh.majority()
}

/// Word 3-shingles hashed and counted per bit. The SimHash of n shingles sets bit i when more
/// than half of them have bit i set; the counts are kept bit-sliced (plane k holds bit k of
/// all 64 counters), so adding a shingle is a few word operations instead of 64 lane updates.
#[derive(Default)]
struct Shingles {
    words: [u64; 3],
    n_words: usize,
    n: usize,
    /// 7 planes count up to 127 > MAX_SHINGLES.
    planes: [u64; 7],
}

impl Shingles {
    fn full(&self) -> bool {
        self.n >= MAX_SHINGLES
    }

    fn feed(&mut self, text: &[u8]) {
        let mut h: u64 = FNV_OFFSET;
        let mut in_word = false;
        for &b in text {
            let c = WORD_BYTE[usize::from(b)];
            if c != 0 {
                h ^= u64::from(c);
                h = h.wrapping_mul(FNV_PRIME);
                in_word = true;
            } else if in_word {
                self.word(h);
                if self.full() {
                    return;
                }
                h = FNV_OFFSET;
                in_word = false;
            }
        }
        if in_word {
            self.word(h);
        }
    }

    fn word(&mut self, w: u64) {
        self.words = [self.words[1], self.words[2], w];
        self.n_words += 1;
        if self.n_words < 3 {
            return;
        }
        self.n += 1;
        let w = &self.words;
        let mut carry = mix(w[0] ^ w[1].rotate_left(21) ^ w[2].rotate_left(42));
        for plane in &mut self.planes {
            if carry == 0 {
                break;
            }
            let sum = *plane ^ carry;
            carry &= *plane;
            *plane = sum;
        }
    }

    /// Bit i set when 2 × count_i > n (the sign of the ±1 sum), i.e. count_i ≥ n/2 + 1:
    /// compared bit-sliced from the top plane down, all 64 counters at once.
    fn majority(&self) -> u64 {
        let t = self.n / 2 + 1;
        let (mut gt, mut eq) = (0u64, u64::MAX);
        for (k, plane) in self.planes.iter().enumerate().rev() {
            if (t >> k) & 1 == 1 {
                eq &= plane;
            } else {
                gt |= eq & plane;
                eq &= !plane;
            }
        }
        // t < 128 always (n ≤ MAX_SHINGLES), so no bit of t is above the planes.
        gt | eq
    }
}

/// SplitMix64's finaliser: every input bit flips about half the output bits, in two
/// multiplies (FNV over the 8 bytes took eight, one after the other).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The byte a word hashes (ASCII alphanumerics, lowercased), 0 for a separator.
const WORD_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_alphanumeric() {
            t[i] = b.to_ascii_lowercase();
        }
        i += 1;
    }
    t
};

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
    use super::super::fnv;
    use super::*;

    fn mime(body: &str, boundary: &str) -> Vec<u8> {
        format!("From: a@b.example\r\nSubject: x\r\n\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n{body}\r\n--{boundary}--\r\n").into_bytes()
    }

    /// The textbook SimHash (a ±1 counter per bit), which the bit-sliced counter must equal.
    fn simhash_lanes(subject: Option<&str>, raw: &[u8]) -> u64 {
        let body = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(raw, |i| &raw[i + 4..]);
        let body = &body[..body.len().min(BODY_BYTES)];
        let mut text: Vec<&[u8]> = subject.map(str::as_bytes).into_iter().collect();
        for line in body.split(|b| *b == b'\n') {
            let l = line.strip_suffix(b"\r").unwrap_or(line);
            if !(l.starts_with(b"--")
                || l.starts_with(b"Content-")
                || l.starts_with(b"MIME-Version"))
            {
                text.push(l);
            }
        }
        let words: Vec<u64> = text
            .iter()
            .flat_map(|t| {
                t.split(|b| !b.is_ascii_alphanumeric())
                    .filter(|w| !w.is_empty())
            })
            .map(|w| fnv(&w.to_ascii_lowercase()))
            .collect();
        let mut acc = [0i32; 64];
        for w in words.windows(3).take(MAX_SHINGLES) {
            let h = mix(w[0] ^ w[1].rotate_left(21) ^ w[2].rotate_left(42));
            for (i, a) in acc.iter_mut().enumerate() {
                *a += if (h >> i) & 1 == 1 { 1 } else { -1 };
            }
        }
        acc.iter()
            .enumerate()
            .fold(0u64, |h, (i, a)| if *a > 0 { h | 1 << i } else { h })
    }

    #[test]
    fn the_bit_sliced_count_equals_the_textbook_simhash() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let vocab = [
            "offer",
            "Dear",
            "invoice",
            "a",
            "the",
            "WATCH",
            "x1",
            "reset",
            "--b",
            "Content-Type: x",
        ];
        for n in 0..400 {
            let mut body = String::new();
            for _ in 0..(n % 90) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                body.push_str(vocab[(seed % vocab.len() as u64) as usize]);
                body.push_str(if seed & 64 == 0 { " " } else { "\r\n" });
            }
            let raw = format!("Subject: s\r\n\r\n{body}");
            let subject = (n % 3 != 0).then_some("Hello there friend");
            assert_eq!(
                simhash(subject, raw.as_bytes()),
                simhash_lanes(subject, raw.as_bytes()),
                "{n}: {raw:?}"
            );
        }
        assert_eq!(simhash(None, b""), simhash_lanes(None, b""));
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
