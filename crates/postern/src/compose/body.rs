//! The body of a JSON send request as a MIME part's content, byte for byte what lettre's
//! `Body::new` makes of it, in a fraction of the time.
//!
//! Why by hand: lettre chooses the transfer encoding with `email-encoding` and encodes
//! quoted-printable with the `quoted_printable` crate, which appends one `char` at a time to a
//! `String`. For an ordinary 1 KB text that is the largest part of composing a message and about
//! a twentieth of an accept's CPU at full load (bench/README.md). Here the same rules copy runs of
//! plain bytes at once. Base64 (mostly non-ASCII text) is still lettre's. A property test checks
//! that the encoding chosen and every byte agree with `Body::new`.

use std::borrow::Cow;

use lettre::message::Body;
use lettre::message::header::ContentTransferEncoding;

/// Longest encoded line, before its CRLF (RFC 2045 6.7 (5)).
const LIMIT: usize = 76;

/// The body lettre's `Body::new(text)` would make.
pub(super) fn text_body(text: &str) -> Body {
    match choose(text.as_bytes()) {
        Choice::SevenBit => Body::dangerous_pre_encoded(
            crlf(text.as_bytes()).into_owned(),
            ContentTransferEncoding::SevenBit,
        ),
        Choice::QuotedPrintable => Body::dangerous_pre_encoded(
            quoted_printable(&crlf(text.as_bytes())),
            ContentTransferEncoding::QuotedPrintable,
        ),
        Choice::Base64 => Body::new(text.to_owned()),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Choice {
    SevenBit,
    QuotedPrintable,
    Base64,
}

/// `email-encoding`'s choice for a string when the server is not known to take UTF-8: 7bit for
/// ASCII whose lines are short, otherwise quoted-printable unless more than a third of the bytes
/// would need escaping. Read before the line endings become CRLF, as lettre does.
fn choose(b: &[u8]) -> Choice {
    if b.is_ascii() && !line_too_long(b) {
        return Choice::SevenBit;
    }
    let escaped = b
        .iter()
        .filter(|&&c| !matches!(c, b'\t' | b' '..=b'~'))
        .count();
    if escaped <= b.len() / 3 {
        Choice::QuotedPrintable
    } else {
        Choice::Base64
    }
}

/// `email-encoding`'s test, quirks included: a line counts from the last LF (or the start) to
/// the next LF (or the end), and is too long at 76.
fn line_too_long(b: &[u8]) -> bool {
    let mut last = 0;
    memchr::memchr_iter(b'\n', b).any(|i| {
        let before = std::mem::replace(&mut last, i);
        i - before >= LIMIT
    }) || b.len() - last >= LIMIT
}

/// Every LF not after a CR gets one (lettre's `encode_crlf`); borrowed when none is missing.
fn crlf(b: &[u8]) -> Cow<'_, [u8]> {
    let bare = |i: usize| b[i] == b'\n' && (i == 0 || b[i - 1] != b'\r');
    if !(0..b.len()).any(bare) {
        return Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len() + b.len() / 32 + 2);
    for (i, &c) in b.iter().enumerate() {
        if bare(i) {
            out.push(b'\r');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

fn plain(c: u8) -> bool {
    matches!(c, b'\t' | b' '..=b'<' | b'>'..=b'~')
}

/// Quoted-printable as the `quoted_printable` crate writes it for text: CRLF stays a line
/// break, a space or tab before one (or at the end) is escaped, a line is cut with a soft
/// break before it passes 76 characters.
fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut q = Qp {
        out: Vec::with_capacity(input.len() + input.len() / 16 + 8),
        on_line: 0,
        backup: 0,
    };
    let mut was_cr = false;
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        i += 1;
        if was_cr {
            was_cr = false;
            if c == b'\n' {
                q.escape_trailing_space();
                q.out.extend_from_slice(b"\r\n");
                q.on_line = 0;
                continue;
            }
            q.append(b"=0D");
        }
        if c == b'\r' {
            was_cr = true;
            continue;
        }
        if q.on_line + 3 <= LIMIT && plain(c) {
            // A run of plain bytes, up to two short of the limit, goes in at once.
            let start = i - 1;
            let stop = input.len().min(start + LIMIT - q.on_line - 2);
            let end = input[i..stop]
                .iter()
                .position(|&c| !plain(c))
                .map_or(stop, |p| i + p);
            q.out.extend_from_slice(&input[start..end]);
            q.on_line += end - start;
            q.backup = q.out.len();
            i = end;
            continue;
        }
        match c {
            b'=' => q.append(b"=3D"),
            c if plain(c) => q.append(&[c]),
            c => q.append(&hex(c)),
        }
    }
    if was_cr {
        q.append(b"=0D");
    } else {
        q.escape_trailing_space();
    }
    q.out
}

fn hex(c: u8) -> [u8; 3] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [b'=', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0x0f)]]
}

struct Qp {
    out: Vec<u8>,
    /// Characters on the current line.
    on_line: usize,
    /// Where the last thing appended begins: a soft break that no longer fits after it goes
    /// there instead.
    backup: usize,
}

impl Qp {
    fn append(&mut self, piece: &[u8]) {
        if self.on_line + piece.len() > LIMIT {
            if self.on_line == LIMIT {
                let moved = self.out.split_off(self.backup);
                self.on_line = moved.len();
                self.out.extend_from_slice(b"=\r\n");
                self.out.extend_from_slice(&moved);
            } else {
                self.out.extend_from_slice(b"=\r\n");
                self.on_line = 0;
            }
        }
        self.out.extend_from_slice(piece);
        self.on_line += piece.len();
        self.backup = self.out.len() - piece.len();
    }

    /// RFC 2045 6.7 (3): a space or tab may not end an encoded line.
    fn escape_trailing_space(&mut self) {
        let escaped: &[u8] = match self.out.last() {
            Some(b' ') => b"=20",
            Some(b'\t') => b"=09",
            _ => return,
        };
        self.out.pop();
        self.on_line = self.on_line.saturating_sub(1);
        self.append(escaped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same_as_lettre(text: &str) {
        let ours = text_body(text);
        let lettre = Body::new(text.to_owned());
        assert_eq!(ours.encoding(), lettre.encoding(), "encoding of {text:?}");
        assert_eq!(ours.as_ref(), lettre.as_ref(), "body of {text:?}");
    }

    #[test]
    fn agrees_with_lettre_on_the_edges() {
        let line = |n: usize| "x".repeat(n);
        for text in [
            String::new(),
            "short".into(),
            line(74),
            line(75),
            line(76),
            line(77),
            line(1000),
            format!("{}\n{}", line(75), line(10)),
            format!("{}\r\n{}", line(74), line(74)),
            format!("{} \n{}\t\r\nend ", line(80), line(3)),
            format!("{}=", line(75)),
            format!("{}=\n=", line(74)),
            format!("{}é", line(74)),
            format!("{}\r", line(90)),
            format!("{}\rx", line(90)),
            "\n\nleading newlines, then a long line ".repeat(5),
            "Grüße aus Köln, mit freundlichen Grüßen ".repeat(4),
            "📬📬📬📬📬📬 mostly not ASCII".into(),
            format!("{}\u{0}{}\u{7f}", line(40), line(40)),
            ("Hello, this is a benchmark message of ordinary size. ".repeat(20))[..1000].into(),
            // Exactly a third of the bytes to escape (quoted-printable), and one more (base64).
            "ab\u{1}".repeat(30),
            format!("{}\u{1}", "ab\u{1}".repeat(30)),
            "abcdé".repeat(15),
            "abcé".repeat(15),
        ] {
            same_as_lettre(&text);
        }
        // Every line length around the limits, each ending in LF, CRLF, a space, a tab, '=',
        // a lone CR or a non-ASCII letter, alone and between other lines.
        for n in 70..=80 {
            for end in [
                "\n", "\r\n", " ", " \n", "\t\r\n", "=", "=\n", "\r", "é", "ab",
            ] {
                same_as_lettre(&format!("{}{end}", line(n)));
                same_as_lettre(&format!("{}{end}{}", line(n), line(n + 3)));
                same_as_lettre(&format!("a\n{}{end}\nb", line(n)));
            }
        }
    }

    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            8 => "[a-zA-Z0-9.,;!?]{1,12}",
            3 => Just(" ".to_owned()),
            1 => Just("\t".to_owned()),
            1 => Just("=".to_owned()),
            1 => Just("\n".to_owned()),
            1 => Just("\r\n".to_owned()),
            1 => Just("\r".to_owned()),
            1 => Just("é".to_owned()),
            1 => Just("📬".to_owned()),
            1 => Just("\u{1}".to_owned()),
            1 => "x{60,90}",
            1 => any::<String>(),
        ];
        prop::collection::vec(piece, 0..120).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn every_body_is_what_lettre_makes(text in text()) {
            same_as_lettre(&text);
        }
    }
}
