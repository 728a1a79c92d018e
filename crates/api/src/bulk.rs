//! Bulk registration (API.md §5 Registrations, Bulk): uploads are spooled to disk, then a worker
//! reads them household by household. The HTTP routes (`routes::batches`), the background
//! runner and `passerelle import` all drive the same worker.

pub mod report;
pub mod runner;
pub mod spool;
pub mod worker;

use std::time::Duration;

/// The longest a bulk upload may take to arrive (the JSON routes keep `request_timeout`): 100 MiB
/// over a slow rural link takes minutes.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
