#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 or 13 machine: npm packages, Debian packages, QEMU 10.0
# (the reference), the compiled CLI and library (dist/), the test guest.
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

# >>> QEMU 10.0, the reference >>>
# Where it comes from depends on the release (scripts/qemu-source.ts reads /etc/os-release):
# - "system" (Debian 13, trixie): the qemu-system-x86 installed above from main is 10.0; no
#   7.2 is there (the 7.2 tests are skipped unless SNAPWAKE_QEMU_7_2 names one);
# - "given" (another release, SNAPWAKE_QEMU set): the QEMU it names;
# - "backports" (Debian 12, bookworm): 10.0 from bookworm-backports, unpacked with `dpkg -x`
#   into build/qemu-10.0 (the system QEMU stays Debian 12's 7.2, also supported). It runs with
#   `-L build/qemu-10.0/usr/share/qemu -L /usr/share/seabios` (src/vm/qemu-install.ts).
qemu10_source=$(node_modules/.bin/node scripts/qemu-source.ts)
qemu10_version='1:10.0.2+ds-2+deb13u1~bpo12+1'
qemu10_root=build/qemu-10.0
if [ "$qemu10_source" = backports ] &&
  [ "$(cat "$qemu10_root/.version" 2>/dev/null)" != "$qemu10_version" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: QEMU 10.0 is not unpacked in $qemu10_root; run this script as root once" >&2
    exit 1
  fi
  backports=/etc/apt/sources.list.d/snapwake-bookworm-backports.list
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "setup: adding bookworm-backports to apt sources ($backports)" >&2
    echo 'deb http://deb.debian.org/debian bookworm-backports main' > "$backports"
  fi
  # `apt-cache show pkg=version` exits 0 even when the version is unknown, so ask madison.
  if ! apt-cache madison qemu-system-x86 | grep -qF "$qemu10_version"; then
    apt-get update -qq >&2
  fi
  echo "setup: unpacking QEMU $qemu10_version into $qemu10_root" >&2
  download=$(mktemp -d)
  chmod 0777 "$download" # apt-get download fetches as the _apt user
  (cd "$download" && apt-get download -qq "qemu-system-x86=$qemu10_version" \
    "qemu-system-common=$qemu10_version" "qemu-system-data=$qemu10_version" >&2)
  rm -rf "$qemu10_root"
  mkdir -p "$qemu10_root"
  for deb in "$download"/*.deb; do dpkg -x "$deb" "$qemu10_root"; done
  rm -rf "$download"
  "$qemu10_root/usr/bin/qemu-system-x86_64" --version >&2
  echo "$qemu10_version" > "$qemu10_root/.version"
fi
# <<< QEMU 10.0 <<<

# 3. dist/ (what bin/snapwake and the npm package run), recompiled only when src/ changed.
node_modules/.bin/node scripts/build-dist.ts >&2

# 4. The test guest (kernel + initramfs + data disk), rebuilt only when its inputs change.
node_modules/.bin/node scripts/build-guest.ts >&2
