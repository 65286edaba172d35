//! The well-known phrases of each reason (`reasons::Phrases`), read by `reasons::mentions`: those
//! of refusals of the sender or its message in `refused`, those of failures at the recipient or
//! on the way there in `delivery`.

// Generated from Sisimai's reason/why-*.go phrase lists (BSD-2-Clause); see reasons.rs.

mod delivery;
mod refused;

pub(super) use delivery::*;
pub(super) use refused::*;
