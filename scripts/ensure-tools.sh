#!/usr/bin/env bash
# Installs (only what is missing) every tool that building and testing ssechat needs:
#   - Debian packages: chromium (Playwright's browser), redis-server, nginx
#   - the wasm32-unknown-unknown Rust target
#   - cargo-leptos 0.3.10 (built with no_downloads: it takes the tools below from PATH)
#   - wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock
#   - wasm-opt from npm's binaryen@132, in .tools/ (never Debian's binaryen: its wasm-opt
#     produces wasm that fails to hydrate)
# Fast (a few seconds) when everything is there already.
#
# Run it (./scripts/ensure-tools.sh) or source it (source scripts/ensure-tools.sh): sourced, it
# also puts ~/.cargo/bin and .tools/node_modules/.bin on the PATH of your shell, which is what
# `cargo leptos watch` / `cargo leptos build --release` need. Sourcing does not change your
# shell's options: the installing runs in a child bash with `set -euo pipefail`.

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  # Sourced: install in a child process, then put the tools on the caller's PATH (the same
  # entries as ssechat_path in lib.sh, which is not sourced here to keep the caller's shell clean).
  if bash "${BASH_SOURCE[0]}"; then
    PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
    export PATH
  else
    printf 'error: scripts/ensure-tools.sh failed\n' >&2
    return 1
  fi
  return 0
fi

set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PATH="$(ssechat_path)"
export PATH
cd "$SSECHAT_ROOT"

# --- Debian packages --------------------------------------------------------------------
apt_packages=(chromium redis-server nginx)
ensure_apt_packages "${apt_packages[@]}"
[[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium is missing after installing chromium"
log "apt: ${apt_packages[*]} ok"

# --- Rust -------------------------------------------------------------------------------
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
command -v rustup >/dev/null || die "rustup not found: install Rust with rustup first"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup: adding target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
log "rust: $(rustc --version), wasm32-unknown-unknown ok"

if [[ ! -f Cargo.lock ]]; then
  log "cargo: no Cargo.lock yet, generating it"
  cargo generate-lockfile
fi

# --- cargo-leptos -----------------------------------------------------------------------
cargo_leptos_ok() {
  [[ "$(cargo leptos --version 2>/dev/null || true)" == "cargo-leptos $SSECHAT_CARGO_LEPTOS_VERSION" ]]
}
if ! cargo_leptos_ok; then
  wait_for_other_cargo_installs
  if ! cargo_leptos_ok; then
    log "cargo: installing cargo-leptos $SSECHAT_CARGO_LEPTOS_VERSION (takes ~10 minutes)"
    cargo install cargo-leptos --version "$SSECHAT_CARGO_LEPTOS_VERSION" --locked --features no_downloads
  fi
  cargo_leptos_ok || die "cargo leptos --version does not say $SSECHAT_CARGO_LEPTOS_VERSION"
fi
log "cargo-leptos $SSECHAT_CARGO_LEPTOS_VERSION ok"

# --- wasm-bindgen-cli -------------------------------------------------------------------
wb_version="$(wasm_bindgen_lock_version)"
wasm_bindgen_ok() {
  [[ "$(wasm-bindgen --version 2>/dev/null || true)" == "wasm-bindgen $wb_version" ]]
}
if ! wasm_bindgen_ok; then
  wait_for_other_cargo_installs
  if ! wasm_bindgen_ok; then
    log "cargo: installing wasm-bindgen-cli $wb_version (the version in Cargo.lock)"
    # Deliberately without --locked.
    cargo install wasm-bindgen-cli --version "$wb_version" --force
  fi
  wasm_bindgen_ok || die "wasm-bindgen --version does not say $wb_version"
fi
log "wasm-bindgen-cli $wb_version ok"

# --- wasm-opt (npm binaryen) ------------------------------------------------------------
command -v npm >/dev/null || die "npm not found: install Node.js 20+"
binaryen_pkg="$SSECHAT_ROOT/.tools/node_modules/binaryen/package.json"
binaryen_ok() {
  [[ -f "$binaryen_pkg" ]] &&
    [[ "$(node -p "require(process.argv[1]).version" "$binaryen_pkg" 2>/dev/null)" == "$SSECHAT_BINARYEN_VERSION".* ]] &&
    [[ -x "$SSECHAT_ROOT/.tools/node_modules/.bin/wasm-opt" ]]
}
if ! binaryen_ok; then
  log "npm: installing binaryen@$SSECHAT_BINARYEN_VERSION into .tools/"
  mkdir -p .tools
  npm install --prefix .tools --no-audit --no-fund --loglevel=error "binaryen@$SSECHAT_BINARYEN_VERSION" >/dev/null
  binaryen_ok || die "binaryen@$SSECHAT_BINARYEN_VERSION did not install into .tools/"
fi
[[ "$(command -v wasm-opt)" == "$SSECHAT_ROOT/.tools/node_modules/.bin/wasm-opt" ]] ||
  die "wasm-opt on PATH is $(command -v wasm-opt), not the one in .tools/"
log "wasm-opt: binaryen $SSECHAT_BINARYEN_VERSION (.tools/node_modules/.bin) ok"
