#!/usr/bin/env bash
# cargo fmt, plus the storage SQL shared by both backends (included with include!, which
# cargo fmt does not follow). Pass --check to verify only.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all "$@"
rustfmt --edition 2021 "$@" crates/adapters/src/storage/shared.rs crates/adapters/src/storage/registry.rs crates/adapters/src/storage/retention.rs crates/adapters/src/storage/eligibility.rs crates/adapters/src/storage/batches.rs crates/adapters/src/storage/bulk_registry.rs crates/adapters/src/storage/claims.rs crates/adapters/src/storage/claims_postgres.rs crates/adapters/src/storage/settlements.rs crates/adapters/src/storage/webhooks.rs
