//! The feedback classifier (MIME, DSN, ARF, MTA-specific reports) on arbitrary bytes: it must
//! never panic, and a reading it returns always names a recipient.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(readings) = postern::feedback::classify(data) {
        assert!(!readings.is_empty());
        for r in readings {
            assert!(!r.recipient.is_empty());
        }
    }
});
