#!/usr/bin/env bash
# Soak test: 1,000 SIGKILLs of a writer on one log (see tests/crash.rs).
# Usage: scripts/crash-soak.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
AUDITRING_CRASH_ROUNDS="${1:-1000}" cargo test --release --test crash -- --nocapture
