#!/usr/bin/env bash
# Runs every test: the Rust tests of the workspace, then a release build and the Playwright
# end-to-end suite (end2end/) against it. Stops at the first failure.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SSECHAT_ROOT"

step="ensure tools"
trap 'printf "\nTESTS FAILED (step: %s)\n" "$step" >&2' ERR

"$SSECHAT_ROOT/scripts/ensure-tools.sh"
PATH="$(ssechat_path)"
export PATH

step="cargo test --workspace"
log "$step"
cargo test --workspace

step="cargo leptos build --release"
log "$step"
cargo leptos build --release

step="end2end: npm ci"
log "$step"
(cd end2end && npm ci --no-audit --no-fund --loglevel=error)

step="end2end: npx tsc --noEmit (Playwright runs the tests without type-checking them)"
log "$step"
(cd end2end && npx tsc --noEmit -p .)

step="end2end: npx playwright test"
log "$step"
(cd end2end && npx playwright test)

trap - ERR
printf '\nALL TESTS PASSED (cargo test --workspace, end2end Playwright suite)\n'
