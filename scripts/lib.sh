# Shared helpers for the scripts in this folder. Source it; it does nothing on its own.
# shellcheck shell=bash

# Repository root (the folder that holds Cargo.toml and scripts/).
SSECHAT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SSECHAT_ROOT

# The only tool versions that are pinned here rather than read from the workspace.
# shellcheck disable=SC2034  # used by the scripts that source this file
SSECHAT_CARGO_LEPTOS_VERSION="0.3.10"
# Debian's binaryen produces wasm that fails to hydrate: only ever use npm's, in .tools/.
# shellcheck disable=SC2034
SSECHAT_BINARYEN_VERSION="132"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# PATH entries every script needs: cargo-installed tools and the npm binaryen (wasm-opt).
# .tools comes first so that no other wasm-opt (e.g. Debian's) is ever picked up.
ssechat_path() {
  printf '%s:%s:%s' "$SSECHAT_ROOT/.tools/node_modules/.bin" "$HOME/.cargo/bin" "$PATH"
}

# Version of the `wasm-bindgen` crate in Cargo.lock (the wasm-bindgen-cli must match it).
# Cargo.lock must exist. Fails when there is none or more than one version.
wasm_bindgen_lock_version() {
  local lock="$SSECHAT_ROOT/Cargo.lock" versions count
  [[ -f "$lock" ]] || die "no Cargo.lock at $lock"
  versions="$(awk '
    /^\[\[package\]\]/ { name = "" }
    /^name = /         { name = $3 }
    /^version = / && name == "\"wasm-bindgen\"" { v = $3; gsub(/"/, "", v); print v }
  ' "$lock" | sort -u)"
  count="$(printf '%s' "$versions" | grep -c . || true)"
  [[ "$count" == 1 ]] || die "expected exactly one wasm-bindgen version in Cargo.lock, found ${count}: ${versions//$'\n'/ }"
  printf '%s\n' "$versions"
}

# Installs the Debian packages named as arguments that are not installed yet (apt, as root or
# through sudo). Fast when all are there: one dpkg-query per package.
ensure_apt_packages() {
  local pkg missing=() sudo=()
  for pkg in "$@"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
      missing+=("$pkg")
    fi
  done
  (( ${#missing[@]} > 0 )) || return 0
  log "apt: installing ${missing[*]}"
  if (( EUID != 0 )); then
    command -v sudo >/dev/null || die "need root (or sudo) to install ${missing[*]}"
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Wait (up to SSECHAT_INSTALL_WAIT seconds, default 1800) while some other `cargo install`
# runs on this machine, so that we never build the same tool twice at the same time.
wait_for_other_cargo_installs() {
  local waited=0 limit="${SSECHAT_INSTALL_WAIT:-1800}"
  while pgrep -f "cargo install" >/dev/null 2>&1; do
    if (( waited >= limit )); then
      die "another 'cargo install' is still running after ${limit}s; try again when it is done"
    fi
    if (( waited % 30 == 0 )); then
      log "waiting for another 'cargo install' to finish (${waited}s so far)"
    fi
    sleep 5
    waited=$(( waited + 5 ))
  done
}
