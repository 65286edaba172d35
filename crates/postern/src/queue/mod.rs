//! The durable queue: [`accept`] makes messages durable in group commits, [`worker`] claims
//! due messages, hands each to a provider and writes the outcome back.

pub mod accept;
pub mod worker;

pub use accept::{AcceptError, Acceptor};
pub use worker::{DeliveryPolicy, Worker, deliver_one};
