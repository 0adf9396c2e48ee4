#!/usr/bin/env bash
# Soak test: 1,000 SIGKILLs of a writer on one log (see cli/tests/crash.rs).
# Usage: scripts/crash-soak.sh [rounds] [verify every n-th round]
set -euo pipefail
cd "$(dirname "$0")/.."
AUDITRING_CRASH_ROUNDS="${1:-1000}" AUDITRING_CRASH_VERIFY_EVERY="${2:-25}" \
    cargo test --release -p auditring-cli --test crash -- --nocapture
