#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine: npm packages, Debian packages, the compiled
# CLI and library (dist/), the test guest.
# Called by `npm test`, `npm run demo` and `npm run bench`; safe to run again (it does only what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. npm packages (node@24 comes from devDependencies), reinstalled when the lockfile changes.
lock_hash=$(sha256sum package-lock.json | cut -c1-16)
if [ ! -x node_modules/.bin/node ] || [ "$(cat node_modules/.snapwake-lock 2>/dev/null)" != "$lock_hash" ]; then
  echo "setup: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
  echo "$lock_hash" > node_modules/.snapwake-lock
fi

# 2. Debian packages used to build and run the test guest.
pkgs=(qemu-system-x86 qemu-utils linux-image-amd64 busybox-static e2fsprogs gcc libc6-dev cpio zstd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: install them as root: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# 3. dist/ (what bin/snapwake and the npm package run), recompiled only when src/ changed.
node_modules/.bin/node scripts/build-dist.ts >&2

# 4. The test guest (kernel + initramfs + data disk), rebuilt only when its inputs change.
node_modules/.bin/node scripts/build-guest.ts >&2
