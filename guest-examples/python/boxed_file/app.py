"""`boxed-file`: an open file that outlives the instance that opened it.

The Python twin of `guest-examples/rust/boxed-file`: same output, same exit
codes, same box (`files`) and entry (`notes`).

The first instance opens `notes.txt` in the preopened directory `/data`,
writes a line, moves the open descriptor into the box `files` and seals it.
The next instance (the host runs it with `--restart always --max-restarts 1`)
never opens the file by path: it takes the very same descriptor out of the
box, reads what the first one wrote and appends to it.
"""

import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import boxes, preopens
from wit_world.imports import fdbox_fdbox_types as types
from wit_world.imports.wasi_filesystem_types import DescriptorFlags, OpenFlags, PathFlags

BOX = "files"
ENTRY = "notes"
FILE = "notes.txt"
PREOPEN = "/data"

# How much `read_to_end` asks for in one `descriptor.read` call.
READ_CHUNK = 64 * 1024


class Run(exports.Run):
    def run(self) -> None:
        try:
            run()
        except Failure as failure:
            print(f"boxed-file: {failure}", file=sys.stderr, flush=True)
            # `wasi:cli/run`'s error: the host reports exit code 1, as for
            # the Rust guest's `ExitCode::FAILURE`.
            raise Err(None)


def run():
    # Whether opening or creating it failed, the message is the same.
    with attempt(f"open box {BOX}"):
        try:
            bx = boxes.Box.open(BOX)
        except Err as e:
            if e.value != types.ErrorCode.NOT_FOUND:
                raise
            bx = boxes.Box.create(BOX)
    with bx:
        # A sealed box means an earlier instance got as far as its checkpoint.
        with attempt("is-sealed"):
            sealed = bx.is_sealed()
        if sealed:
            second_instance(bx)
        else:
            first_instance(bx)


def first_instance(bx):
    data = data_dir()
    with attempt(f"open {FILE}"):
        notes = data.open_at(
            PathFlags(0),
            FILE,
            OpenFlags.CREATE | OpenFlags.TRUNCATE,
            DescriptorFlags.READ | DescriptorFlags.WRITE,
        )
    with attempt(f"write {FILE}"):
        write_all(notes, b"hello from the first instance\n", 0)

    # From here on the host holds the open file, not this instance.
    try:
        bx.put(ENTRY, notes)
    except Err as e:
        raise Failure(f"put {ENTRY}", e.value.code)
    with attempt("seal"):
        bx.seal()
    out(f"boxed {FILE}")


def second_instance(bx):
    with attempt("unseal"):
        bx.unseal()
    with attempt(f"get {ENTRY}"):
        notes = bx.get(ENTRY)

    with attempt("read"):
        content = read_to_end(notes)
    # One line of output however the file ends; the final newline is the
    # file's, not part of the message.
    text = content.decode("utf-8", errors="replace")
    out(f"recovered: {text.removesuffix(chr(10))}")

    # Positional writes: append at the end of what was read.
    with attempt("append"):
        write_all(notes, b"and the second instance\n", len(content))
    out("appended")


def data_dir():
    """The directory the host preopened at `PREOPEN`
    (`fdbox run --dir HOST::/data`)."""
    for dir, guest_path in preopens.get_directories():
        if guest_path == PREOPEN:
            return dir
    raise Failure(f"no preopened directory {PREOPEN} (run with --dir HOST_DIR::{PREOPEN})")


def read_to_end(fd):
    """The whole file, read from offset 0 until end of file."""
    content = b""
    while True:
        chunk, eof = fd.read(READ_CHUNK, len(content))
        content += chunk
        if eof or not chunk:
            return content


def write_all(fd, buf, offset):
    """Writes all of `buf` at `offset`."""
    while buf:
        n = fd.write(buf, offset)
        buf = buf[n:]
        offset += n


class Failure(Exception):
    """What failed, as the Rust guest words it: `OP: error-code`."""

    def __init__(self, op, code=None):
        super().__init__(op if code is None else f"{op}: {wit_name(code)}")


class attempt:
    """`with attempt(op):` turns a WIT error raised inside into a `Failure`
    of `op`."""

    def __init__(self, op):
        self.op = op

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if isinstance(exc, Err):
            raise Failure(self.op, exc.value) from None
        return False


def wit_name(code):
    """The kebab-case WIT name of an `error-code` case (fdbox's or
    `wasi:filesystem`'s)."""
    return code.name.lower().replace("_", "-")


def out(line):
    print(line, flush=True)
