//! Detection and containment. [`detect`] feeds observations to the signals
//! ([`signals`]: volume, recipient novelty and spread, content uniformity, feedback rates,
//! access anomalies, provider ledger), [`policy`] scores their findings per key, tenant and
//! provider and picks the action, and [`contain`] carries it out (throttle, hold, revoke, take
//! a provider out of rotation) with an alert carrying the evidence; [`pause`] is the kill
//! switch: pauses by scope (everything, a tenant, a key, a provider, a channel), held in memory
//! on every node, persisted in the store and reloaded within tens of milliseconds. Paused
//! messages are held, never dropped.

pub mod config;
pub mod contain;
pub mod detect;
pub mod pause;
pub mod planned;
pub mod policy;
pub mod signals;

pub use config::GuardConfig;
pub use detect::Guard;
pub use pause::{Pause, PauseScope, Pauses};
pub use policy::{Action, PolicyConfig};

#[cfg(test)]
mod tests;
