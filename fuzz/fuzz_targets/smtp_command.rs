//! The SMTP command parser on arbitrary lines: it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = postern::smtp::parse(line);
    }
});
