"""`counter`: a `u64` counter that survives crashes of the instance.

The Python twin of `guest-examples/rust/counter`: same arguments, same
output, same exit codes, and the same box layout, so a box written by one
language is read by the other.

The counter lives in a memory file inside the fdbox box `counter`. Each step
takes the file out of the box, increments the counter, puts the file back and
seals the box: that is the checkpoint. When the instance dies after a
checkpoint, the next one (`fdbox run --restart on-failure`) finds the sealed
box and carries on from the same count.

Usage: `counter [--box NAME] [--until N] [--crash-every K]`

Without `--until` it does one step and exits, so every run adds one.
"""

import os
import re
import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import boxes, environment, memory_files
from wit_world.imports import fdbox_fdbox_types as types

# The entry of the box that holds the memory file with the count.
STATE = "state"

U64_MAX = 2**64 - 1


class Run(exports.Run):
    def run(self) -> None:
        # `wasi:cli/run` returns `result`: raising `Err(None)` is its error,
        # which the host reports as exit code 1.
        if not main():
            raise Err(None)


def main():
    """The program; whether it succeeded."""
    try:
        args = Args.parse()
    except Usage as usage:
        eprint(f"counter: {usage}")
        eprint("usage: counter [--box NAME] [--until N] [--crash-every K]")
        # The Rust guest returns `ExitCode::from(2)`, which its std (through
        # wasi-libc) passes to `wasi:cli/exit.exit` as a plain error: the
        # host sees 1, as it does for this failure.
        return False
    while True:
        try:
            count = step(args.box_name)
        except Failure as failure:
            eprint(f"counter: {failure}")
            return False
        # Printed only after the checkpoint: a count on stdout is one that a
        # crash can no longer take back, so a restarted instance never prints
        # the same count twice.
        out(f"count = {count}")
        if args.until is None:
            return True
        # `>=`, not `==`: a box left over from an earlier run may already be
        # past the target.
        if count >= args.until:
            out(f"done at {count}")
            return True
        if args.crash_every is not None and count % args.crash_every == 0:
            eprint(f"crashing on purpose at {count}")
            # A trap, not an exit: this is the failure that `--restart
            # on-failure` answers by starting a new instance. wasi-libc's
            # `abort()` (behind `os.abort`) executes `unreachable`, as Rust's
            # `std::process::abort` does.
            os.abort()


def step(box_name):
    """One checkpointed increment; returns the new count."""
    with open_or_create(box_name) as bx:
        if call("is-sealed", bx.is_sealed):
            call("unseal", bx.unseal)
        # An unsealed box may still hold the state when an instance died
        # between unseal and get; taking it from there keeps the count. Only
        # a box without it (the first run) starts from a fresh, empty memory
        # file.
        try:
            state = bx.get(STATE)
        except Err as e:
            if e.value != types.ErrorCode.NOT_FOUND:
                raise Failure("get state", e.value)
            state = call("create memory file", memory_files.create, STATE)

        count = (read_count(state) + 1) & U64_MAX
        write_all(state, count.to_bytes(8, "little"), 0)

        try:
            # Moves the descriptor: `state` is no longer ours.
            bx.put(STATE, state)
        except Err as e:
            raise Failure("put state", e.value.code)
        call("seal", bx.seal)
        return count


def read_count(fd):
    """The little-endian `u64` at offset 0, or 0 while the file is still
    short of one (a new memory file is empty)."""
    data = b""
    while len(data) < 8:
        chunk, eof = call("read state", fd.read, 8 - len(data), len(data))
        data += chunk
        if eof or not chunk:
            break
    return int.from_bytes(data, "little") if len(data) == 8 else 0


def write_all(fd, buf, offset):
    """Writes all of `buf` at `offset`."""
    while buf:
        n = call("write state", fd.write, buf, offset)
        buf = buf[n:]
        offset += n


def open_or_create(name):
    """Opens the box `name`, creating it if it does not exist yet."""
    try:
        return boxes.Box.open(name)
    except Err as e:
        if e.value != types.ErrorCode.NOT_FOUND:
            raise Failure("open box", e.value)
    return call("create box", boxes.Box.create, name)


def call(op, f, *args):
    """`f(*args)`, with a WIT error turned into a `Failure` of `op`."""
    try:
        return f(*args)
    except Err as e:
        raise Failure(op, e.value)


class Failure(Exception):
    """An operation that failed, with the WIT `error-code` it failed with."""

    def __init__(self, op, code):
        super().__init__(f"{op} failed: {wit_name(code)}")


def wit_name(code):
    """The kebab-case WIT name of an `error-code` case (fdbox's or
    `wasi:filesystem`'s)."""
    return code.name.lower().replace("_", "-")


class Usage(Exception):
    """A bad command line."""


class Args:
    """Command-line options."""

    def __init__(self):
        self.box_name = "counter"
        self.until = None
        self.crash_every = None

    @classmethod
    def parse(cls):
        args = cls()
        # The first argument is the program's name.
        argv = iter(environment.get_arguments()[1:])
        for flag in argv:
            def value():
                v = next(argv, None)
                if v is None:
                    raise Usage(f"{flag} needs a value")
                return v

            if flag == "--box":
                args.box_name = value()
            elif flag == "--until":
                args.until = parse_number(flag, value())
            elif flag == "--crash-every":
                k = parse_number(flag, value())
                if k == 0:
                    raise Usage("--crash-every must be at least 1")
                args.crash_every = k
            else:
                raise Usage(f"unknown argument {rust_debug(flag)}")
        return args


def parse_number(flag, value):
    """A `u64` as Rust's `str::parse` reads it: ASCII digits, an optional
    leading `+`, no more than `u64::MAX`."""
    if re.fullmatch(r"\+?[0-9]+", value, re.ASCII) and int(value) <= U64_MAX:
        return int(value)
    raise Usage(f"{flag}: not a number: {rust_debug(value)}")


def rust_debug(s):
    """`s` quoted as Rust's `{:?}` prints a string (common cases)."""
    escapes = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", '"': '\\"', "\0": "\\0"}
    body = "".join(
        escapes.get(c) or (f"\\u{{{ord(c):x}}}" if ord(c) < 0x20 or ord(c) == 0x7F else c)
        for c in s
    )
    return f'"{body}"'


def out(line):
    # Flushed at once: a line still in Python's buffer would be lost by a
    # trap (Rust's stdout is line-buffered).
    print(line, flush=True)


def eprint(line):
    print(line, file=sys.stderr, flush=True)
