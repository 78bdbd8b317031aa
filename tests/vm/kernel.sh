#!/usr/bin/env bash
# The VM lane's kernel: Linux from Debian's linux-source package, built with
# Live Update (LUO) and Kexec HandOver, plus the kernel's own liveupdate
# selftests built from the same source. Cached outside the clone, keyed by the
# package version and everything that decides the build, so only the first
# run pays for it (about half an hour on 2 cores).
#
#   bash tests/vm/kernel.sh            # build or find; prints the cache dir
#   bash tests/vm/kernel.sh --packages # only install the host packages
#
# Another kernel: FDBOX_KERNEL_PACKAGE / FDBOX_KERNEL_VERSION name another
# Debian linux-source package and version (from unstable); or point
# FDBOX_KERNEL_SOURCE at an unpacked tree of your own (its `make
# kernelversion` becomes the key). FDBOX_VM_CACHE moves the cache
# (default ~/.cache/fdbox/vm).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
package=${FDBOX_KERNEL_PACKAGE:-linux-source-7.2}
version=${FDBOX_KERNEL_VERSION:-7.2.13-1}
cache=${FDBOX_VM_CACHE:-$HOME/.cache/fdbox/vm}
jobs=$(nproc)

say() { echo "vm kernel: $*" >&2; }
die() { echo "vm kernel: error: $*" >&2; exit 1; }

install_packages() {
    local need=() p
    for p in flex bison libelf-dev libssl-dev rsync bc cpio xz-utils busybox-static kexec-tools gcc make; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
    done
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
    [ ${#need[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing packages ${need[*]}: install them (apt-get install --no-remove ${need[*]}) or run as root"
    say "installing ${need[*]}"
    apt-get update -qq >/dev/null
    local qemu=()
    for p in "${need[@]}"; do [ "$p" = qemu-system-x86 ] && qemu=(qemu-system-x86); done
    local rest=()
    for p in "${need[@]}"; do [ "$p" = qemu-system-x86 ] || rest+=("$p"); done
    [ ${#rest[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove "${rest[@]}" >/dev/null
    if [ ${#qemu[@]} -gt 0 ]; then
        # Never let apt remove anything (a plain install of bookworm's qemu
        # removes a newer preinstalled qemu-utils). If bookworm's qemu does
        # not fit what is installed, take it from bookworm-backports.
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove --no-install-recommends qemu-system-x86 >/dev/null 2>&1; then
            say "bookworm's qemu-system-x86 conflicts with installed packages; using bookworm-backports"
            with_suite bookworm-backports install -y -qq --no-remove --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
        fi
    fi
}

# apt-get with one extra suite of the machine's own Debian source, in a
# private list directory: the system's sources are not changed.
with_suite() {
    local suite=$1; shift
    local dir=$cache/apt/$suite
    mkdir -p "$dir/lists/partial" "$dir/archives/partial"
    local uri
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$uri" ] || die "no Debian source found in /etc/apt to add $suite to"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >"$dir/sources.list"
    local opts=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache::archives=$dir/archives")
    if [ "$suite" = bookworm-backports ]; then
        # Installing needs the system's lists too: keep them, add the suite.
        opts=(-o "Dir::Etc::sourcelist=$dir/sources.list")
    else
        opts+=(-o "Dir::Etc::sourceparts=-")
    fi
    apt-get "${opts[@]}" update -qq >/dev/null
    apt-get "${opts[@]}" "$@"
}

install_packages
[ "${1:-}" = --packages ] && exit 0

# --- the key --------------------------------------------------------------
src_tree=${FDBOX_KERNEL_SOURCE:-}
if [ -n "$src_tree" ]; then
    [ -f "$src_tree/Makefile" ] || die "FDBOX_KERNEL_SOURCE=$src_tree is not a kernel source tree (no Makefile)"
    version="local-$(make -s -C "$src_tree" kernelversion)"
fi
# What decides the kernel: the source version and the config fragment (the
# recipe below changes rarely; bump recipe when it does).
recipe=1
key=$( (echo "recipe $recipe"; cat "$here/kernel.config") | sha256sum | cut -c1-12)
out=$cache/kernel-$version-$key
if [ -f "$out/bzImage" ] && [ -f "$out/selftests/liveupdate" ]; then
    say "cached: $out"
    echo "$out"
    exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$out/bzImage" ] && [ -f "$out/selftests/liveupdate" ]; then
    echo "$out"
    exit 0
fi

started=$(date +%s)
work=$cache/build-$version
mkdir -p "$cache"

# --- the source -----------------------------------------------------------
if [ -z "$src_tree" ]; then
    src_tree=$work/src
    if [ ! -f "$src_tree/Makefile" ]; then
        say "downloading $package=$version from Debian unstable (download only; nothing is installed from it)"
        rm -rf "$work" && mkdir -p "$work"
        (cd "$work" && with_suite sid download "$package=$version" >/dev/null 2>&1) \
            || die "could not download $package=$version from Debian unstable; set FDBOX_KERNEL_VERSION to a version it has (apt-cache policy $package with a sid source)"
        say "unpacking"
        dpkg-deb -x "$work"/"$package"_*.deb "$work/deb"
        mkdir -p "$src_tree"
        tar -xf "$work"/deb/usr/src/"$package".tar.* -C "$src_tree" --strip-components=1
        rm -rf "$work/deb" "$work"/*.deb
    fi
fi
if [ ! -f "$out/bzImage" ]; then
build=$work/obj
mkdir -p "$build"

# --- configure: defconfig + the selftests' fragment + ours ---------------
fragment=$src_tree/tools/testing/selftests/liveupdate/config
[ -f "$fragment" ] || die "$src_tree has no $fragment: is it Linux 6.19 or newer?"
say "configuring (x86_64 defconfig + liveupdate selftests fragment + tests/vm/kernel.config)"
make -s -C "$src_tree" O="$build" defconfig >/dev/null
"$src_tree/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$fragment" "$here/kernel.config" >/dev/null
make -s -C "$src_tree" O="$build" olddefconfig >/dev/null
for opt in KEXEC_FILE KEXEC_HANDOVER LIVEUPDATE LIVEUPDATE_MEMFD DEVTMPFS BLK_DEV_INITRD SERIAL_8250_CONSOLE; do
    grep -q "^CONFIG_$opt=y" "$build/.config" || die "CONFIG_$opt did not stay set after olddefconfig (a dependency is missing)"
done

# --- build ----------------------------------------------------------------
say "building bzImage with $jobs jobs (about 30 minutes on 2 cores the first time)"
make -s -C "$src_tree" O="$build" -j"$jobs" bzImage >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; die "kernel build failed (log: $work/build.log)"; }
make -s -C "$src_tree" O="$build" headers_install INSTALL_HDR_PATH="$build/hdr" >/dev/null


rm -rf "$out.tmp" && mkdir -p "$out.tmp"
cp "$build/arch/x86/boot/bzImage" "$build/.config" "$out.tmp/"
cp -r "$build/hdr" "$out.tmp/headers"
make -s -C "$src_tree" O="$build" kernelrelease >"$out.tmp/kernelrelease"
echo "$(( $(date +%s) - started ))" >"$out.tmp/build-seconds"
rm -rf "$out" && mv "$out.tmp" "$out"
# The object tree is 1-2 GB; the source stays for the selftests and another config.
rm -rf "$build"
say "built in $(cat "$out/build-seconds") s: $out"
fi

# --- the kernel's own liveupdate selftests, static for the initramfs ------
# Built from the downloaded source at test time; never copied into the repo.
st=$src_tree/tools/testing/selftests
rm -rf "$out/selftests.tmp" && mkdir -p "$out/selftests.tmp"
# As their Makefile builds them (each with luo_test_utils.c), static.
cflags=(-O2 -static -D_GNU_SOURCE= -Wno-unused-function -isystem "$out/headers/include" -I "$st" -I "$st/liveupdate")
for t in liveupdate luo_kexec_simple luo_multi_session; do
    gcc "${cflags[@]}" -o "$out/selftests.tmp/$t" "$st/liveupdate/$t.c" "$st/liveupdate/luo_test_utils.c"
done
cp "$st/liveupdate/do_kexec.sh" "$out/selftests.tmp/"
rm -rf "$out/selftests" && mv "$out/selftests.tmp" "$out/selftests"
say "selftests built: $out/selftests"
echo "$out"
