#!/usr/bin/env bash
# Install the oracles the tests compare against, when missing:
#   dtc, fdtdump, fdtget (Debian: device-tree-compiler), pylibfdt for /usr/bin/python3 (python3-libfdt),
#   libfdt's C library and headers for the benchmark's C harness (libfdt-dev), a C compiler,
#   Debian's Chromium (the kho map HTML page is checked in it, headless), xxd, binutils, libfuse2.
# Debian's pylibfdt is built for /usr/bin/python3, not for another python3 on PATH, so we check that one.
set -u
need=()
command -v dtc >/dev/null 2>&1 || need+=(device-tree-compiler)
command -v fdtdump >/dev/null 2>&1 || need+=(device-tree-compiler)
/usr/bin/python3 -c 'import libfdt' >/dev/null 2>&1 || need+=(python3-libfdt)
[ -f /usr/include/libfdt.h ] || need+=(libfdt-dev)
command -v cc >/dev/null 2>&1 || need+=(gcc)
[ -x /usr/bin/chromium ] || need+=(chromium)
# The shell's tools are checked against the real ones: xxd (Debian's xxd), readelf (binutils).
command -v xxd >/dev/null 2>&1 || need+=(xxd)
command -v readelf >/dev/null 2>&1 || need+=(binutils)
# kho debugfs mount: fuse-native needs libfuse.so.2 (its test skips only where /dev/fuse is absent).
[ -e /usr/lib/x86_64-linux-gnu/libfuse.so.2 ] || [ "$(uname -m)" != x86_64 ] || need+=(libfuse2)
[ ${#need[@]} -eq 0 ] && exit 0
echo "setup-oracles: installing ${need[*]}" >&2
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "setup-oracles: not root and no sudo; install ${need[*]} yourself" >&2; exit 1; fi
else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update >/dev/null 2>&1
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" >&2
}
