//! Passerelle's domain: types, rules and the coordination-of-benefits arithmetic.
//! No I/O and no framework here; the outside world is reached through the ports.

pub mod audit;
pub mod batch;
pub mod beneficiary;
pub mod claim;
pub mod clock;
pub mod coordination;
pub mod coverage;
pub mod dates;
pub mod eligibility;
pub mod error;
pub mod json_members;
pub mod merge;
pub mod money;
pub mod nul;
pub mod organization;
pub mod pagination;
pub mod paid_run;
pub mod policy;
pub mod ports;
pub mod product;
pub mod registration;
pub mod retention;
pub mod scope;
pub mod settlement;
pub mod text;
pub mod webhook;
