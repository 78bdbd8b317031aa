// `boxed-file`: an open file that outlives the instance that opened it.
//
// The JavaScript twin of `guest-examples/rust/boxed-file`: same output, same
// exit codes, same box (`files`) and entry (`notes`).
//
// The first instance opens `notes.txt` in the preopened directory `/data`,
// writes a line, moves the open descriptor into the box `files` and seals it.
// The next instance (the host runs it with `--restart always --max-restarts
// 1`) never opens the file by path: it takes the very same descriptor out of
// the box, reads what the first one wrote and appends to it.

import { Box } from 'fdbox:fdbox/boxes@0.1.0';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

const BOX = 'files';
const ENTRY = 'notes';
const FILE = 'notes.txt';
const PREOPEN = '/data';

// How much `readToEnd` asks for in one `descriptor.read` call.
const READ_CHUNK = 64n * 1024n;

// `wasi:cli/run`: returning is `ok`; throwing is `err`, which the host
// reports as exit code 1 (the Rust guest's `ExitCode::FAILURE`).
export const run = {
  run() {
    try {
      main();
    } catch (e) {
      if (!(e instanceof Failure)) throw e;
      console.error(`boxed-file: ${e.message}`);
      throw 'failed';
    }
  },
};

function main() {
  // Whether opening or creating it failed, the message is the same.
  const bx = attempt(`open box ${BOX}`, () => {
    try {
      return Box.open(BOX);
    } catch (e) {
      if (errorCode(e) !== 'not-found') throw e;
      return Box.create(BOX);
    }
  });
  try {
    // A sealed box means an earlier instance got as far as its checkpoint.
    if (attempt('is-sealed', () => bx.isSealed())) {
      secondInstance(bx);
    } else {
      firstInstance(bx);
    }
  } finally {
    bx[Symbol.dispose]();
  }
}

function firstInstance(bx) {
  const data = dataDir();
  const notes = attempt(`open ${FILE}`, () =>
    data.openAt({}, FILE, { create: true, truncate: true }, { read: true, write: true }),
  );
  attempt(`write ${FILE}`, () =>
    writeAll(notes, new TextEncoder().encode('hello from the first instance\n'), 0n),
  );

  // From here on the host holds the open file, not this instance.
  let entry;
  try {
    entry = bx.put(ENTRY, notes);
  } catch (e) {
    throw new Failure(`put ${ENTRY}`, errorCode(e).code);
  }
  entry[Symbol.dispose]();
  attempt('seal', () => bx.seal());
  console.log(`boxed ${FILE}`);
}

function secondInstance(bx) {
  attempt('unseal', () => bx.unseal());
  const notes = attempt(`get ${ENTRY}`, () => bx.get(ENTRY));

  const content = attempt('read', () => readToEnd(notes));
  // One line of output however the file ends; the final newline is the
  // file's, not part of the message. Invalid UTF-8 becomes U+FFFD, as with
  // Rust's `String::from_utf8_lossy`.
  const text = new TextDecoder('utf-8').decode(content);
  console.log(`recovered: ${text.endsWith('\n') ? text.slice(0, -1) : text}`);

  // Positional writes: append at the end of what was read.
  attempt('append', () =>
    writeAll(notes, new TextEncoder().encode('and the second instance\n'), BigInt(content.length)),
  );
  console.log('appended');
  notes[Symbol.dispose]();
}

// The directory the host preopened at `PREOPEN` (`fdbox run --dir
// HOST::/data`).
function dataDir() {
  for (const [dir, guestPath] of getDirectories()) {
    if (guestPath === PREOPEN) return dir;
  }
  throw new Failure(`no preopened directory ${PREOPEN} (run with --dir HOST_DIR::${PREOPEN})`);
}

// The whole file, read from offset 0 until end of file.
function readToEnd(fd) {
  const chunks = [];
  let length = 0;
  for (;;) {
    const [chunk, eof] = fd.read(READ_CHUNK, BigInt(length));
    chunks.push(chunk);
    length += chunk.length;
    if (eof || chunk.length === 0) break;
  }
  const content = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    content.set(chunk, at);
    at += chunk.length;
  }
  return content;
}

// Writes all of `buf` at `offset`.
function writeAll(fd, buf, offset) {
  while (buf.length > 0) {
    const n = fd.write(buf, offset);
    buf = buf.subarray(Number(n));
    offset += n;
  }
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
  if (e instanceof Failure) throw e;
  if (e !== null && typeof e === 'object' && 'payload' in e) return e.payload;
  throw e;
}

// What failed, as the Rust guest words it: `OP: error-code`.
class Failure extends Error {
  constructor(op, code) {
    super(code === undefined ? op : `${op}: ${code}`);
  }
}
