#!/usr/bin/env bash
# Long soak: EVENTS (default 1e9) through the runtime from 4 producers with
# FullPolicy::Block and size rotation, verified incrementally as files
# rotate (verified rotated files are deleted to bound the disk), memory
# sampled. See examples/soak.rs for the settings.
# Usage: scripts/soak.sh [events]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --example soak -- "${1:-1000000000}"
