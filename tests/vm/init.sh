#!/bin/sh
# PID 1 of the VM lane (tests/vm/run.sh): runs fdbox's checks on the real
# /dev/liveupdate, then kexecs into the same kernel and initramfs, and again,
# checking that what fdbox boxed is there in each new kernel.
#
# It prints one line per check, "fdbox-vm: PASS <name>" or
# "fdbox-vm: FAIL <name>: <why>", which run.sh reads from the serial console.
# The stage is `fdbox.stage=N` on the kernel command line; each kexec passes
# the next one.
#
#   stage 1: fdbox's conformance suite on LiveUpdateDevice and on the holder
#            daemon over it; tests/c/liveupdate_checks.c; the kernel's own
#            liveupdate selftest; the first halves of the kernel's two-stage
#            selftests and of liveupdate_checks' kexec checks. kexec.
#   stage 2: their second halves; `fdbox daemon --device liveupdate` starts
#            empty, the Rust and the C counter box their counts. kexec.
#   stage 3: the daemon adopts the boxes, both counters carry on. kexec.
#   stage 4: the same again: boxes carry on across a second kexec.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/fdbox
# In the rootfs, so Wasmtime's compilation cache travels with the initramfs
# into the next kernel.
export HOME=/root
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /usr/bin /usr/sbin /sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
ip link set lo up 2>/dev/null
ulimit -n 65536

stage=$(sed -n 's/.*fdbox\.stage=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
stage=${stage:-1}
echo "fdbox-vm: STAGE $stage (kernel $(uname -r))"
if [ "$stage" = probe ]; then
    # run.sh asking whether this accelerator runs a guest at all.
    poweroff -f
fi

failures=0
pass() { echo "fdbox-vm: PASS s$stage/$1"; }
fail() {
    echo "fdbox-vm: FAIL s$stage/$1: $2"
    failures=$((failures + 1))
}
# check NAME COMMAND...: PASS if it exits 0, else FAIL with its last lines.
check() {
    name=$1; shift
    if "$@" >/tmp/out 2>&1; then pass "$name"; else fail "$name" "exit $? ($(tail -n 3 /tmp/out | tr '\n' '|'))"; fi
    cat /tmp/out >>/tmp/log
}

# After a failure, what the checks printed, for run.sh to show.
show_log() {
    [ $failures = 0 ] && return
    echo "--- stage $stage: what the checks printed ---"
    tail -n 200 /tmp/log
    echo "--- the daemon's log ---"
    tail -n 30 /tmp/daemon.log 2>/dev/null
}

finish() {
    show_log
    echo "fdbox-vm: DONE"
    sync
    poweroff -f
}

next_kernel() {
    next=$((stage + 1))
    # The same kernel and the same files: the initramfs is made again from
    # what this one unpacked (less the mounts).
    (cd / && find . -xdev ! -path './proc*' ! -path './sys*' ! -path './dev/*' ! -path './tmp/*' ! -path './run/*' |
        cpio -o -H newc >/tmp/initramfs 2>/dev/null)
    cmdline=$(sed "s/fdbox\.stage=[0-9]*/fdbox.stage=$next/" /proc/cmdline)
    if kexec -s -l /boot/bzImage --initrd=/tmp/initramfs --command-line="$cmdline" >/tmp/out 2>&1; then
        pass kexec-load
    else
        fail kexec-load "$(tail -n 3 /tmp/out | tr '\n' '|')"
        finish
    fi
    show_log
    echo "fdbox-vm: KEXEC to stage $next"
    kexec -e
    fail kexec "kexec -e returned"
    finish
}

socket=/run/fdbox/fdbox.sock
start_daemon() {
    mkdir -p /run/fdbox && chmod 700 /run/fdbox
    fdbox daemon --device liveupdate --socket $socket >/tmp/daemon.log 2>&1 &
    daemon=$!
    # Up once it has adopted what the kernel carried (it listens before).
    i=0
    while ! grep -q 'sealed boxes adopted' /tmp/daemon.log && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    if [ -S $socket ] && grep -q 'sealed boxes adopted' /tmp/daemon.log; then
        adopted=$(sed -n 's/.*on \/dev\/liveupdate: \([0-9]*\) sealed boxes adopted.*/\1/p' /tmp/daemon.log)
        line=$(sed -n 's/.*on \/dev\/liveupdate: \([0-9]*\) sealed boxes adopted (\([0-9]*\) entries) in \([0-9.]*\) ms.*/\1 \2 \3/p' /tmp/daemon.log)
        echo "fdbox-vm: INFO daemon up, adopted ${adopted:-?} boxes"
        [ -n "$line" ] && echo "fdbox-vm: ADOPTION $line"
        [ "${adopted:-x}" = "$1" ] && pass daemon-adopts-$1-boxes || fail daemon-adopts-$1-boxes "adopted ${adopted:-?} ($(tail -n 3 /tmp/daemon.log | tr '\n' '|'))"
    else
        fail daemon-adopts-$1-boxes "not up after 60 s ($(tail -n 3 /tmp/daemon.log | tr '\n' '|'))"
    fi
}

# fill N M: N boxes adopt-1..N of M one-byte memory files each, sealed, put
# by a guest (the probe) on the daemon, for the next kernel's daemon to adopt.
fill() {
    steps=""
    b=1
    while [ $b -le $1 ]; do
        steps="$steps create adopt-$b"
        e=1
        while [ $e -le $2 ]; do steps="$steps put-memfd adopt-$b e$e x"; e=$((e + 1)); done
        steps="$steps seal adopt-$b"
        b=$((b + 1))
    done
    # shellcheck disable=SC2086 # the steps are words
    check fill-$1x$2 fdbox run --device daemon --socket $socket --box-prefix adopt- /fdbox/probe.wasm -- $steps
}

# unfill N: delete what fill left.
unfill() {
    steps=""
    b=1
    while [ $b -le $1 ]; do steps="$steps unseal adopt-$b delete adopt-$b"; b=$((b + 1)); done
    # shellcheck disable=SC2086
    check unfill-$1 fdbox run --device daemon --socket $socket --box-prefix adopt- /fdbox/probe.wasm -- $steps
}

# counter NAME COMPONENT EXPECTED: one step of a counter guest on the daemon,
# which must print "count = EXPECTED".
counter() {
    out=$(fdbox run --device daemon --socket $socket --box "counter-$1" "$2" -- --box "counter-$1" 2>&1)
    got=$(echo "$out" | sed -n 's/^count = \([0-9]*\)$/\1/p')
    if [ "$got" = "$3" ]; then
        pass "counter-$1-$3"
        echo "fdbox-vm: GUEST $1 count $got"
    else
        fail "counter-$1-$3" "got '${got:-nothing}' ($(echo "$out" | tail -n 3 | tr '\n' '|'))"
    fi
}

ls_sealed() {
    out=$(fdbox ls --socket $socket 2>&1)
    echo "$out" >>/tmp/log
    if echo "$out" | grep -q "counter-rust.*sealed" && echo "$out" | grep -q "counter-c.*sealed"; then
        pass boxes-listed-sealed
    else
        fail boxes-listed-sealed "$(echo "$out" | tr '\n' '|')"
    fi
}

# bench WHICH before|after: tests/vm/luo_bench.c on the real device
# (WHICH=real) or under `fdbox emulate` in this same VM (WHICH=emulated; its
# state directory is in the rootfs, so it travels with the initramfs).
# Prints "fdbox-vm: MEASURE WHICH NAME NS" for run.sh.
bench() {
    if [ "$1" = real ]; then
        set -- "$1" "$2" /fdbox/luo_bench "$2"
    else
        set -- "$1" "$2" fdbox emulate --device liveupdate --state-dir /root/emulator-state -- /fdbox/luo_bench "$2"
    fi
    which=$1 half=$2; shift 2
    if [ "$half" = before ]; then
        "$@" >/tmp/bench-$which 2>&1 &
        pid=$!
        i=0
        while ! grep -q '^ready' /tmp/bench-$which && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
        # Under the emulator, SIGTERM to it is the kexec: the session it
        # holds goes to its state directory. The real one waits for ours.
        [ "$which" = emulated ] && kill -TERM $pid && wait $pid
    else
        "$@" >/tmp/bench-$which 2>&1
    fi
    if grep -q '^measure' /tmp/bench-$which; then
        pass "bench-$half-$which"
        sed -n "s/^measure /fdbox-vm: MEASURE $which /p" /tmp/bench-$which
    else
        fail "bench-$half-$which" "$(tail -n 3 /tmp/bench-$which | tr '\n' '|')"
    fi
}

selftest_two_stage() {
    out=$(/selftests/"$1" --stage 2 2>&1)
    rc=$?
    echo "$out" >>/tmp/log
    if [ $rc = 0 ] && echo "$out" | grep -q "TEST PASSED"; then pass "selftest-$1"; else fail "selftest-$1" "exit $rc ($(echo "$out" | tail -n 3 | tr '\n' '|'))"; fi
}

[ -c /dev/liveupdate ] && pass device-node || fail device-node "no /dev/liveupdate (is liveupdate=on on the command line?)"

case $stage in
1)
    # fdbox's own suite on the real device: no emulator (FDBOX_REAL_DEVICE).
    for suite in liveupdate daemon_over_liveupdate; do
        out=$(FDBOX_REAL_DEVICE=1 RUST_BACKTRACE=1 /fdbox/kernel_device --test-threads=1 "$suite::" 2>&1)
        rc=$?
        echo "$out" >>/tmp/log
        result=$(echo "$out" | grep '^test result:' | tail -n 1)
        echo "fdbox-vm: INFO conformance $suite: $result"
        passed=$(echo "$result" | sed -n 's/.* \([0-9]*\) passed.*/\1/p')
        if [ $rc = 0 ] && echo "$result" | grep -q ' 0 failed' && [ "${passed:-0}" -ge 18 ]; then
            pass "conformance-$suite"
        else
            fail "conformance-$suite" "exit $rc: $result $(echo "$out" | grep -E 'panicked|FAILED' | head -n 3 | tr '\n' '|')"
        fi
    done

    check c-checks /fdbox/liveupdate_checks checks

    out=$(/selftests/liveupdate 2>&1)
    rc=$?
    echo "$out" >>/tmp/log
    totals=$(echo "$out" | grep 'Totals:')
    echo "fdbox-vm: INFO selftest liveupdate: $totals"
    # Skips count as failures: without the device the harness skips all
    # and still says PASSED.
    if [ $rc = 0 ] && echo "$totals" | grep -q 'pass:15 fail:0 xfail:0 xpass:0 skip:0 error:0'; then
        pass selftest-liveupdate
    else
        fail selftest-liveupdate "exit $rc: $totals"
    fi

    # First halves of the two-stage checks: each keeps its sessions in a
    # process that waits for the kexec. /dev/liveupdate opens once at a
    # time, so one after another.
    for t in luo_kexec_simple luo_multi_session; do
        check "selftest-$t-stage-1" /selftests/$t --stage 1
    done
    bench real before
    bench emulated before
    /fdbox/liveupdate_checks kexec-before >/tmp/kexec-before 2>&1 &
    i=0
    while ! grep -q '^ok ready' /tmp/kexec-before && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    grep -q '^ok ready' /tmp/kexec-before && pass c-kexec-before || fail c-kexec-before "$(tail -n 3 /tmp/kexec-before | tr '\n' '|')"
    next_kernel
    ;;
2)
    selftest_two_stage luo_kexec_simple
    selftest_two_stage luo_multi_session
    check c-kexec-after /fdbox/liveupdate_checks kexec-after
    bench real after
    bench emulated after
    start_daemon 0
    for n in 1 2 3; do counter rust /fdbox/counter.wasm $n; done
    for n in 1 2; do counter c /fdbox/counter-c.wasm $n; done
    ls_sealed
    fill 16 16
    next_kernel
    ;;
3)
    check c-kexec-third /fdbox/liveupdate_checks kexec-third
    start_daemon 18
    counter rust /fdbox/counter.wasm 4
    counter c /fdbox/counter-c.wasm 3
    ls_sealed
    unfill 16
    fill 48 16
    next_kernel
    ;;
4)
    start_daemon 50
    counter rust /fdbox/counter.wasm 5
    counter c /fdbox/counter-c.wasm 4
    ls_sealed
    finish
    ;;
*)
    fail stage "unknown stage $stage"
    finish
    ;;
esac
