//! Implementations of the domain's ports: storage on PostgreSQL and SQLite.

mod audit_chain;
pub mod storage;

pub use storage::{connect, Backend, Database, DatabaseOptions};

#[cfg(feature = "testing")]
pub mod testing;
