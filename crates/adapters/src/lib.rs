//! Implementations of the domain's ports: storage on PostgreSQL and SQLite.

mod audit_chain;
mod batch_loader;
mod replica;
pub mod storage;

pub use storage::{connect, Backend, Database, DatabaseOptions};

#[cfg(feature = "testing")]
pub mod testing;
