//! The durable queue: [`accept`] makes messages durable in group commits, [`worker`] claims
//! due messages, hands each to a provider and writes the outcome back.

pub mod accept;
pub mod routing;
pub mod worker;

pub use accept::{AcceptError, Acceptor};
pub use routing::{RouteTable, Routes};
pub use worker::{DeliveryPolicy, Dispatch, Worker, deliver_one};
