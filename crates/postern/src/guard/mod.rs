//! Detection and containment. [`detect`] watches volume, bounce and complaint rates and orphan
//! feedback and holds what trips; [`pause`] is the kill switch: pauses by scope (everything, a tenant, a key, a
//! provider, a channel), held in memory on every node, persisted in the store and reloaded
//! within tens of milliseconds. Paused messages are held, never dropped.

pub mod detect;
pub mod pause;
pub mod planned;

pub use detect::{Guard, GuardConfig};
pub use pause::{Pause, PauseScope, Pauses};
