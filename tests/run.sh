#!/usr/bin/env bash
# The test command from README.md: unit and integration tests (integration tests start the
# real binary on loopback and talk to it with independent clients installed by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --bins
cargo test --locked -- --test-threads=4
