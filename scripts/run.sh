#!/usr/bin/env bash
# Builds ssechat in release mode and runs it: http://127.0.0.1:3000 unless told otherwise.
# Arguments go to the server: ./scripts/run.sh --addr 0.0.0.0:8080 (or env SSECHAT_ADDR);
# see target/release/server --help.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SSECHAT_ROOT"

"$SSECHAT_ROOT/scripts/ensure-tools.sh"
PATH="$(ssechat_path)"
export PATH

log "cargo leptos build --release"
cargo leptos build --release

export LEPTOS_SITE_ROOT="$SSECHAT_ROOT/target/site"
log "starting target/release/server $*"
exec "$SSECHAT_ROOT/target/release/server" "$@"
