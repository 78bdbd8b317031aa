#!/usr/bin/env bash
# The VM lane: fdbox on a real Linux kernel with Live Update, across real
# kexecs, in QEMU.
#
#   bash tests/vm/run.sh
#
# 1. tests/vm/kernel.sh builds (or finds cached) a kernel with LUO and KHO
#    from Debian's linux-source package, and the kernel's liveupdate
#    selftests from the same source.
# 2. An initramfs: busybox, tests/vm/init.sh as /init, this build's fdbox
#    and kernel_device test binary (with the shared libraries they need),
#    tests/c/liveupdate_checks.c, the Rust and C counter guests, kexec.
# 3. QEMU boots it (KVM when it works, else TCG: chosen here and printed);
#    init.sh runs the checks in four stages joined by three kexecs and
#    prints a line per check on the serial console.
#
# Prints one line per check and "N passed, N failed"; exits non-zero on any
# failure, a missing check included (a VM that died mid-way fails).
# FDBOX_VM_ACCEL=kvm|tcg forces the accelerator; FDBOX_VM_KEEP=1 keeps the
# work directory (initramfs, serial log).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}

say() { echo "vm: $*" >&2; }

kdir=$(bash tests/vm/kernel.sh)
say "kernel $(cat "$kdir/kernelrelease") from $kdir (built in $(cat "$kdir/build-seconds") s when it was built)"

work=$(mktemp -d "${TMPDIR:-/tmp}/fdbox-vm.XXXXXX")
cleanup() {
    if [ "${FDBOX_VM_KEEP:-}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- what goes in ---------------------------------------------------------
say "building fdbox, the kernel_device tests and the guests"
cargo build --bin fdbox >&2
tests_bin=$(cargo test --test kernel_device --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "kernel_device":
        print(m["executable"])')
[ -x "$tests_bin" ] || { say "error: cannot find the kernel_device test binary"; exit 1; }
guests=$target/guest-examples
for g in "$guests/wasm32-wasip2/release/counter.wasm" "$guests/c/counter-c.wasm"; do
    [ -f "$g" ] || { say "error: no $g: build the guests first (cargo test --workspace builds them)"; exit 1; }
done

rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,boot,fdbox,selftests,root,lib64,lib/x86_64-linux-gnu}
cp /bin/busybox "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/sh" # for /init's #!; it installs the rest
cp tests/vm/init.sh "$rootfs/init" && chmod 755 "$rootfs/init"
cp "$kdir/bzImage" "$rootfs/boot/bzImage"
cp "$kdir"/selftests/* "$rootfs/selftests/"
gcc -Wall -Werror -O2 -static -o "$rootfs/fdbox/liveupdate_checks" tests/c/liveupdate_checks.c
gcc -Wall -Werror -O2 -static -o "$rootfs/fdbox/luo_bench" tests/vm/luo_bench.c
# Debug info stripped: it is most of their size, and the VM holds the
# initramfs in memory twice (the kexec loads it again).
objcopy --strip-debug "$target/debug/fdbox" "$rootfs/fdbox/fdbox"
objcopy --strip-debug "$tests_bin" "$rootfs/fdbox/kernel_device"
cp "$(command -v kexec)" "$rootfs/bin/kexec"
cp "$guests/wasm32-wasip2/release/counter.wasm" "$guests/wasm32-wasip2/release/probe.wasm" "$guests/c/counter-c.wasm" "$rootfs/fdbox/"
for bin in "$rootfs/fdbox/fdbox" "$rootfs/fdbox/kernel_device" "$rootfs/bin/kexec"; do
    ldd "$bin" | awk '/=>/ {print $3} /^\t\/lib64/ {print $1}' | while read -r lib; do
        [ -f "$lib" ] && cp -nL "$lib" "$rootfs$lib" 2>/dev/null || true
    done
done
mkdir -p "$rootfs/lib/x86_64-linux-gnu" && cp -nL /lib64/ld-linux-x86-64.so.2 "$rootfs/lib64/"
initramfs=$work/initramfs.cpio.gz
(cd "$rootfs" && find . | cpio -o -H newc --quiet | gzip -1 >"$initramfs")
say "initramfs $(du -h "$initramfs" | cut -f1)"

# --- the accelerator --------------------------------------------------------
qemu=(qemu-system-x86_64 -m 3G -smp 2 -display none -no-reboot -monitor none
    -kernel "$kdir/bzImage" -initrd "$initramfs")
append="console=ttyS0 liveupdate=on panic=-1 quiet fdbox.stage=1"
accel=${FDBOX_VM_ACCEL:-}
if [ -z "$accel" ]; then
    accel=tcg
    if [ -w /dev/kvm ]; then
        # A /dev/kvm that opens is not one that runs a guest (a nested,
        # paravirtual one here dies at the first emulation failure): boot
        # once with it, to the first line of init, before trusting it.
        if timeout 60 "${qemu[@]}" -accel kvm -cpu host -append "console=ttyS0 panic=-1 quiet fdbox.stage=probe" \
            -serial stdio </dev/null 2>&1 | grep -q 'fdbox-vm: STAGE'; then
            accel=kvm
        else
            say "/dev/kvm is there but a guest does not run on it: using TCG"
        fi
    fi
fi
case $accel in
kvm) qemu+=(-accel kvm -cpu host) ;;
tcg) qemu+=(-accel tcg -cpu max) ;;
*) say "error: FDBOX_VM_ACCEL=$accel: use kvm or tcg"; exit 1 ;;
esac
say "accelerator: $accel"

# --- boot, and read the console -------------------------------------------
log=$work/serial.log
say "booting (stage 1 of 4; the serial log is $log)"
start=$EPOCHREALTIME
set +e
timeout "${FDBOX_VM_TIMEOUT:-1200}" "${qemu[@]}" -append "$append" -serial stdio </dev/null 2>&1 |
    while IFS= read -r line; do
        line=${line%$'\r'}
        printf '%s %s\n' "$EPOCHREALTIME" "$line" >>"$log"
        case $line in
        *"fdbox-vm: "*) echo "${line#*fdbox-vm: }" ;;
        esac
    done
status=${PIPESTATUS[0]}
set -e
say "the VM ran $(awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN {printf "%.1f", e - s}') s (qemu exit $status)"

# --- the verdict -------------------------------------------------------------
expected=(
    s1/device-node s1/conformance-liveupdate s1/conformance-daemon_over_liveupdate
    s1/c-checks s1/selftest-liveupdate
    s1/selftest-luo_kexec_simple-stage-1 s1/selftest-luo_multi_session-stage-1
    s1/bench-before-real s1/bench-before-emulated s1/c-kexec-before s1/kexec-load
    s2/device-node s2/selftest-luo_kexec_simple s2/selftest-luo_multi_session s2/c-kexec-after
    s2/bench-after-real s2/bench-after-emulated
    s2/daemon-adopts-0-boxes s2/counter-rust-1 s2/counter-rust-2 s2/counter-rust-3
    s2/counter-c-1 s2/counter-c-2 s2/boxes-listed-sealed s2/fill-16x16 s2/kexec-load
    s3/device-node s3/c-kexec-third s3/daemon-adopts-18-boxes s3/counter-rust-4 s3/counter-c-3
    s3/boxes-listed-sealed s3/unfill-16 s3/fill-48x16 s3/kexec-load
    s4/device-node s4/daemon-adopts-50-boxes s4/counter-rust-5 s4/counter-c-4 s4/boxes-listed-sealed
)
passed=0
failed=0
for name in "${expected[@]}"; do
    if grep -q "fdbox-vm: PASS $name\$" "$log"; then
        passed=$((passed + 1))
    elif grep -q "fdbox-vm: FAIL $name:" "$log"; then
        failed=$((failed + 1))
    else
        echo "FAIL $name: never reported (the VM stopped before it)"
        failed=$((failed + 1))
    fi
done
# A check the list does not know is a failure too, so the two stay in step.
while read -r name; do
    printf '%s\n' "${expected[@]}" | grep -qx "$name" || {
        echo "FAIL $name: reported but not expected (add it to tests/vm/run.sh)"
        failed=$((failed + 1))
    }
done < <(sed -n 's/.*fdbox-vm: \(PASS\|FAIL\) \([^:]*\).*/\2/p' "$log" | sort -u)

# Kexec to guest: from the line before `kexec -e` to the counter's first
# count in the next kernel, on the host's clock.
awk '
    / fdbox-vm: KEXEC / { t = $1; stage = $NF }
    / fdbox-vm: GUEST / && t { printf "kexec to stage %s: guest counting again %.2f s after kexec -e\n", stage, $1 - t; t = 0 }
' "$log"

# What adoption costs the daemon in each new kernel (LiveUpdateDevice::open:
# retrieve, finish and preserve again every sealed box).
awk '/ fdbox-vm: ADOPTION / { printf "daemon adoption: %d boxes, %d entries: %s ms\n", $4, $5, $6 }' "$log"

# Live Update's calls on the real kernel and under the emulator, in this
# same VM ($accel), with a do-nothing syscall as the baseline of each run.
awk -v accel="$accel" '
    / fdbox-vm: MEASURE / { v[$4 " " $5] = $6; names[$5] = 1 }
    END {
        printf "\nLive Update calls in the VM (%s), ns per call (median of rounds):\n", accel
        printf "| call | real kernel | emulator | emulator / real |\n|---|---|---|---|\n"
        split("baseline create_session+close preserve_fd retrieve_fd+close", order, " ")
        for (i = 1; i in order; i++) {
            n = order[i]; r = v["real " n]; e = v["emulated " n]
            if (r == "" || e == "") continue
            printf "| %s | %d | %d | %.1f |\n", n, r, e, (r > 0 ? e / r : 0)
        }
    }
' "$log"

if [ $failed -gt 0 ] && [ "${FDBOX_VM_KEEP:-}" != 1 ]; then
    echo "--- the VM's serial console, last 60 lines ---"
    tail -n 60 "$log" | cut -d' ' -f2-
fi
echo "vm lane: $passed passed, $failed failed"
[ $failed -eq 0 ]
