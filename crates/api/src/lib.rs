//! Passerelle's HTTP API: axum routes, auth, problem+json errors and the OpenAPI document.
//! Thin: it translates HTTP into calls on the domain's ports.

pub mod app;
pub mod auth;
pub mod bulk;
pub mod config;
pub mod demo;
pub mod erasure;
pub mod extract;
pub mod fhir;
pub mod fields;
pub mod housekeeping;
pub mod http_server;
pub mod import;
pub mod json_numbers;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
pub mod routes;
pub mod state;
pub mod stdout;
pub mod telemetry;
pub mod unread_body;
pub mod webhook_worker;
