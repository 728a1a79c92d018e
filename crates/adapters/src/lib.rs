//! Implementations of the domain's ports: storage on PostgreSQL and SQLite, and the sending of
//! webhook deliveries.

mod audit_chain;
mod batch_loader;
pub mod public_address;
mod replica;
pub mod storage;
pub mod webhook_delivery;

pub use storage::{connect, Backend, Database, DatabaseOptions};

#[cfg(feature = "testing")]
pub mod testing;
