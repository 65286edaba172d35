//! The durable queue: [`accept`] makes messages durable in group commits, [`worker`] claims
//! due messages, hands each to a provider and writes the outcome back.

pub mod accept;
pub mod deliver;
pub mod routing;
pub mod worker;

pub use accept::{AcceptError, Acceptor};
pub use deliver::{DeliveryPolicy, Dispatch, deliver_one};
pub use routing::{RouteTable, Routes};
pub use worker::Worker;
