#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the real tools (Terraform CLI,
# moto), checks formatting and lints, then runs unit and acceptance tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-tools.sh
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# Acceptance tests start one moto server and one terraform per test; two at a
# time fits a 2-core machine.
cargo test --locked --workspace --no-fail-fast -- --test-threads=2
