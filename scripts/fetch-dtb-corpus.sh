#!/usr/bin/env bash
# Fetch a corpus of real devicetree blobs (DTBs) from Debian's archive, for the FDT benchmark
# (`npm run bench`) and for corpus-wide checks. Usage: scripts/fetch-dtb-corpus.sh [DIR]
# (default /work/corpus/dtb).
#
# Works on any Debian architecture without touching the system's apt configuration: it only
# `apt-get download`s architecture-independent (`all`) packages into DIR/.debs:
#   - linux-source-X.Y (the kernel's source, found through the `linux-source` metapackage): its
#     arch/{arm64,riscv}/boot/dts/**/*.dts are preprocessed with cpp and compiled with dtc exactly as
#     the kernel's `make dtbs` does (cpp -nostdinc -undef -D__DTS__ -x assembler-with-cpp; dtc -O dtb
#     -b 0), giving the same blobs Debian's linux-image-* packages install under /usr/lib/linux-image-*;
#   - qemu-system-data: the .dtb files QEMU ships;
#   - u-boot-qemu: the control DTBs appended to the u-boot.bin/u-boot.rom images (carved out by
#     their FDT header and checked with dtc).
# Set KHO_DTB_ARCHES (default "arm64 riscv"; "arm" adds ~1500 more) to choose kernel architectures.
#
# Idempotent: a stamp file records the package versions used; when they are unchanged the script
# only says so. Needs apt's package lists (`apt-get update` once), cpp, dtc, python3, xz.
set -euo pipefail

DIR=${1:-/work/corpus/dtb}
ARCHES=${KHO_DTB_ARCHES:-arm64 riscv}
JOBS=$(nproc 2>/dev/null || echo 2)
say() { printf 'fetch-dtb-corpus: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

for tool in apt-get apt-cache dpkg-deb cpp dtc python3 xz tar; do
  command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install device-tree-compiler cpp xz-utils python3)"
done

# The kernel source package behind the `linux-source` metapackage (linux-source-6.1 on bookworm).
linux_pkg=$(apt-cache depends linux-source 2>/dev/null | awk '/Depends: linux-source-/ {print $2; exit}')
[ -n "$linux_pkg" ] || die "no linux-source package in apt's lists (run apt-get update)"
pkgs=("$linux_pkg" qemu-system-data u-boot-qemu)

version_of() { apt-cache show --no-all-versions "$1" 2>/dev/null | awk '/^Version:/ {print $2; exit}'; }
stamp_text="arches=$ARCHES"
for p in "${pkgs[@]}"; do
  v=$(version_of "$p")
  [ -n "$v" ] || die "package $p is not in apt's lists (run apt-get update)"
  stamp_text+=$'\n'"$p=$v"
done

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
stamp="$DIR/.corpus-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ]; then
  n=$(find "$DIR" -name '*.dtb' -type f | wc -l)
  say "up to date: $n DTBs in $DIR from $(echo "$stamp_text" | tail -n +2 | tr '\n' ' ')"
  exit 0
fi

debs="$DIR/.debs"
mkdir -p "$debs"
work=$(mktemp -d "${TMPDIR:-/tmp}/kho-dtb-corpus.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 1. Download the packages (only those not already in DIR/.debs at the candidate version).
for p in "${pkgs[@]}"; do
  v=$(version_of "$p")
  if compgen -G "$debs/${p}_${v//:/%3a}_*.deb" >/dev/null; then
    say "have $p $v"
  else
    say "downloading $p $v"
    # apt's sandbox user cannot write to every DIR; downloading as the caller is what we want here.
    (cd "$debs" && apt-get -q -o APT::Sandbox::User=root download "$p=$v" >/dev/null) ||
      die "apt-get download $p=$v failed"
  fi
done
deb_of() { ls "$debs/${1}_"*.deb | sort -V | tail -n 1; }

# Start from a clean tree of outputs so a changed version leaves no stale blob behind.
rm -rf "$DIR/linux" "$DIR/qemu" "$DIR/u-boot"

# 2. QEMU's DTBs.
dpkg-deb -x "$(deb_of qemu-system-data)" "$work/qemu"
mkdir -p "$DIR/qemu"
find "$work/qemu" -name '*.dtb' -type f -exec cp {} "$DIR/qemu/" \;
say "qemu-system-data: $(find "$DIR/qemu" -name '*.dtb' | wc -l) DTBs"

# 3. U-Boot's appended control DTBs.
dpkg-deb -x "$(deb_of u-boot-qemu)" "$work/uboot"
mkdir -p "$DIR/u-boot"
python3 - "$work/uboot/usr/lib/u-boot" "$DIR/u-boot" <<'PY'
import os, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for board in sorted(os.listdir(src)):
    for img in ("u-boot.bin", "u-boot.rom"):
        path = os.path.join(src, board, img)
        if not os.path.isfile(path):
            continue
        data = open(path, "rb").read()
        i, n = data.find(b"\xd0\x0d\xfe\xed"), 0
        while i >= 0:
            if i + 40 <= len(data):
                total, ver = struct.unpack(">I", data[i + 4:i + 8])[0], struct.unpack(">I", data[i + 20:i + 24])[0]
                if ver in (16, 17) and 64 < total <= len(data) - i:
                    out = os.path.join(dst, f"{board}-{img.replace('.', '_')}-{n}.dtb")
                    open(out, "wb").write(data[i:i + total])
                    n += 1
            i = data.find(b"\xd0\x0d\xfe\xed", i + 1)
PY
# Keep only carvings that dtc accepts as blobs.
for f in "$DIR"/u-boot/*.dtb; do
  [ -e "$f" ] || continue
  dtc -q -I dtb -O dtb -o /dev/null "$f" 2>/dev/null || rm -f "$f"
done
say "u-boot-qemu: $(find "$DIR/u-boot" -name '*.dtb' | wc -l) DTBs"

# 4. The kernel's DTBs, compiled as `make dtbs` does.
src_top=$work/linux
mkdir -p "$src_top"
members=()
for a in $ARCHES; do members+=("*/arch/$a/boot/dts/*"); done
# arm64 device trees include arm's .dtsi files through scripts/dtc/include-prefixes.
members+=("*/COPYING" "*/arch/arm/boot/dts/*" "*/include/dt-bindings/*" "*/include/uapi/*" "*/scripts/dtc/include-prefixes/*")
say "unpacking $linux_pkg device-tree sources"
dpkg-deb --fsys-tarfile "$(deb_of "$linux_pkg")" | tar -xO --wildcards './usr/src/linux-source-*.tar.*' |
  xz -dc -T"$JOBS" | tar -x -C "$src_top" --strip-components=1 --wildcards "${members[@]}"
mkdir -p "$DIR/linux"
export src_top DIR
compile_one() {
  local rel=$1 arch=${1#arch/}
  arch=${arch%%/*}
  local sub=${rel#arch/"$arch"/boot/dts/}
  local out="$DIR/linux/$arch/${sub%.dts}.dtb"
  mkdir -p "$(dirname "$out")"
  (cd "$src_top" &&
    cpp -nostdinc -I include -I "arch/$arch/boot/dts" -I scripts/dtc/include-prefixes -undef -D__DTS__ \
      -x assembler-with-cpp "$rel" 2>/dev/null | dtc -q -I dts -O dtb -b 0 -o "$out" - 2>/dev/null) ||
    {
      rm -f "$out"
      echo "failed: $rel" >&2
    }
}
export -f compile_one
for a in $ARCHES; do
  [ -d "$src_top/arch/$a/boot/dts" ] || die "no device trees for architecture $a in $linux_pkg"
  (cd "$src_top" && find "arch/$a/boot/dts" -name '*.dts' -type f | sort) |
    xargs -P "$JOBS" -I{} bash -c 'compile_one "$1"' _ {} 2>"$work/failed-$a.txt" || true
  nfail=$(grep -c '^failed:' "$work/failed-$a.txt" || true)
  say "$linux_pkg $a: $(find "$DIR/linux/$a" -name '*.dtb' | wc -l) DTBs compiled ($nfail sources failed to compile)"
done
cp "$src_top/COPYING" "$DIR/linux/COPYING" 2>/dev/null || true

printf '%s\n' "$stamp_text" >"$stamp"
total=$(find "$DIR" -name '*.dtb' -type f | wc -l)
bytes=$(find "$DIR" -name '*.dtb' -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
say "done: $total DTBs, $bytes bytes in $DIR"
