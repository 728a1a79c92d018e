//! Bulk registration (API.md §5 Registrations, Bulk).
