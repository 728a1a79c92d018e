//! Black-box HTTP tests: the real service on a loopback port, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step must stop the test loudly

mod audit;
mod auth;
mod batch_reports;
mod batches;
mod claims;
mod conventions;
mod eligibility;
mod errors;
mod examples;
mod extremes;
mod fhir;
mod merges;
mod organizations;
mod people;
mod products;
mod registry;
mod retention;
mod service;
mod settlements;
mod webhooks;
