//! Black-box HTTP tests: the real service on a loopback port, on SQLite and on PostgreSQL.

mod audit;
mod auth;
mod errors;
mod organizations;
mod service;
