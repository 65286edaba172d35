//! Postern: a self-hosted outbound messaging gateway. See ARCHITECTURE.md for the codemap.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod compose;
pub mod config;
pub mod domain;
pub mod feedback;
pub mod guard;
pub mod http;
pub mod init;
pub mod leaks;
pub mod providers;
pub mod queue;
pub mod secrets;
pub mod server;
pub mod smtp;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod tls;
