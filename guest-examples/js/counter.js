// `counter`: a `u64` counter that survives crashes of the instance.
//
// The JavaScript twin of `guest-examples/rust/counter`: same arguments, same
// output, same exit codes, and the same box layout, so a box written by one
// language is read by the other.
//
// The counter lives in a memory file inside the fdbox box `counter`. Each
// step takes the file out of the box, increments the counter, puts the file
// back and seals the box: that is the checkpoint. When the instance dies
// after a checkpoint, the next one (`fdbox run --restart on-failure`) finds
// the sealed box and carries on from the same count.
//
// Usage: `counter [--box NAME] [--until N] [--crash-every K]`
//
// Without `--until` it does one step and exits, so every run adds one.

import { Box } from 'fdbox:fdbox/boxes@0.1.0';
import { create as createMemoryFile } from 'fdbox:fdbox/memory-files@0.1.0';
import { getArguments } from 'wasi:cli/environment@0.2.12';
import { subscribeDuration } from 'wasi:clocks/monotonic-clock@0.2.12';

// The entry of the box that holds the memory file with the count.
const STATE = 'state';

const U64_MAX = (1n << 64n) - 1n;

// `wasi:cli/run`: returning is `ok`; throwing is `err`, which the host
// reports as exit code 1.
export const run = {
  run() {
    if (!main()) {
      throw 'failed';
    }
  },
};

// The program; whether it succeeded.
function main() {
  let args;
  try {
    args = parseArgs();
  } catch (e) {
    if (!(e instanceof Usage)) throw e;
    console.error(`counter: ${e.message}`);
    console.error('usage: counter [--box NAME] [--until N] [--crash-every K]');
    // The Rust guest returns `ExitCode::from(2)`, which its std (through
    // wasi-libc) passes to `wasi:cli/exit.exit` as a plain error: the host
    // sees 1, as it does for this failure.
    return false;
  }
  for (;;) {
    let count;
    try {
      count = step(args.boxName);
    } catch (e) {
      if (!(e instanceof Failure)) throw e;
      console.error(`counter: ${e.message}`);
      return false;
    }
    // Printed only after the checkpoint: a count on stdout is one that a
    // crash can no longer take back, so a restarted instance never prints
    // the same count twice.
    console.log(`count = ${count}`);
    if (args.until === null) return true;
    // `>=`, not `==`: a box left over from an earlier run may already be
    // past the target.
    if (count >= args.until) {
      console.log(`done at ${count}`);
      return true;
    }
    if (args.crashEvery !== null && count % args.crashEvery === 0n) {
      console.error(`crashing on purpose at ${count}`);
      // A trap, not an exit: this is the failure that `--restart
      // on-failure` answers by starting a new instance.
      trap();
    }
  }
}

// Traps the instance, as Rust's `std::process::abort` does.
//
// JavaScript has no way to run `unreachable`, and an exception that leaves
// `run` becomes its `err` (an exit with code 1), not a trap. Dropping a
// resource handle twice does trap: the second drop hands the canonical ABI
// a handle this instance does not own (the bindings cleared it to 0), and
// Wasmtime traps with "unknown handle index 0".
function trap() {
  const pollable = subscribeDuration(0n);
  pollable[Symbol.dispose]();
  pollable[Symbol.dispose]();
  // Not reached.
  throw new Error('the instance did not trap');
}

// One checkpointed increment; returns the new count.
function step(boxName) {
  const bx = openOrCreate(boxName);
  try {
    if (attempt('is-sealed', () => bx.isSealed())) {
      attempt('unseal', () => bx.unseal());
    }
    // An unsealed box may still hold the state when an instance died between
    // unseal and get; taking it from there keeps the count. Only a box
    // without it (the first run) starts from a fresh, empty memory file.
    let state;
    try {
      state = bx.get(STATE);
    } catch (e) {
      if (errorCode(e) !== 'not-found') throw new Failure('get state', errorCode(e));
      state = attempt('create memory file', () => createMemoryFile(STATE));
    }

    const count = BigInt.asUintN(64, readCount(state) + 1n);
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, count, true);
    writeAll(state, bytes, 0n);

    // Moves the descriptor: `state` is no longer ours.
    let entry;
    try {
      entry = bx.put(STATE, state);
    } catch (e) {
      throw new Failure('put state', errorCode(e).code);
    }
    entry[Symbol.dispose]();
    attempt('seal', () => bx.seal());
    return count;
  } finally {
    bx[Symbol.dispose]();
  }
}

// The little-endian `u64` at offset 0, or 0 while the file is still short of
// one (a new memory file is empty).
function readCount(fd) {
  const bytes = new Uint8Array(8);
  let done = 0;
  while (done < 8) {
    const [chunk, eof] = attempt('read state', () => fd.read(BigInt(8 - done), BigInt(done)));
    bytes.set(chunk, done);
    done += chunk.length;
    if (eof || chunk.length === 0) break;
  }
  return done === 8 ? new DataView(bytes.buffer).getBigUint64(0, true) : 0n;
}

// Writes all of `buf` at `offset`.
function writeAll(fd, buf, offset) {
  while (buf.length > 0) {
    const n = attempt('write state', () => fd.write(buf, offset));
    buf = buf.subarray(Number(n));
    offset += n;
  }
}

// Opens the box `name`, creating it if it does not exist yet.
function openOrCreate(name) {
  try {
    return Box.open(name);
  } catch (e) {
    if (errorCode(e) !== 'not-found') throw new Failure('open box', errorCode(e));
  }
  return attempt('create box', () => Box.create(name));
}

// `f()`, with a WIT error turned into a `Failure` of `op`.
function attempt(op, f) {
  try {
    return f();
  } catch (e) {
    throw new Failure(op, errorCode(e));
  }
}

// The WIT error of a failed import call (an `error-code` case, by its
// kebab-case name, or a record); any other exception goes on up.
function errorCode(e) {
  if (e !== null && typeof e === 'object' && 'payload' in e) return e.payload;
  throw e;
}

// An operation that failed, with the WIT `error-code` it failed with.
class Failure extends Error {
  constructor(op, code) {
    super(`${op} failed: ${code}`);
  }
}

// A bad command line.
class Usage extends Error {}

// Command-line options.
function parseArgs() {
  const args = { boxName: 'counter', until: null, crashEvery: null };
  // The first argument is the program's name.
  const argv = getArguments().slice(1);
  while (argv.length > 0) {
    const flag = argv.shift();
    const value = () => {
      if (argv.length === 0) throw new Usage(`${flag} needs a value`);
      return argv.shift();
    };
    if (flag === '--box') {
      args.boxName = value();
    } else if (flag === '--until') {
      args.until = parseNumber(flag, value());
    } else if (flag === '--crash-every') {
      const k = parseNumber(flag, value());
      if (k === 0n) throw new Usage('--crash-every must be at least 1');
      args.crashEvery = k;
    } else {
      throw new Usage(`unknown argument ${rustDebug(flag)}`);
    }
  }
  return args;
}

// A `u64` as Rust's `str::parse` reads it: ASCII digits, an optional leading
// `+`, no more than `u64::MAX`.
function parseNumber(flag, value) {
  if (/^\+?[0-9]+$/.test(value)) {
    const n = BigInt(value.replace(/^\+/, ''));
    if (n <= U64_MAX) return n;
  }
  throw new Usage(`${flag}: not a number: ${rustDebug(value)}`);
}

// `s` quoted as Rust's `{:?}` prints a string (common cases).
function rustDebug(s) {
  const escapes = { '\t': '\\t', '\r': '\\r', '\n': '\\n', '\\': '\\\\', '"': '\\"', '\0': '\\0' };
  let body = '';
  for (const c of s) {
    const code = c.codePointAt(0);
    body += escapes[c] ?? (code < 0x20 || code === 0x7f ? `\\u{${code.toString(16)}}` : c);
  }
  return `"${body}"`;
}
