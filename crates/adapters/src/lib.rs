//! Storage and connectors.
