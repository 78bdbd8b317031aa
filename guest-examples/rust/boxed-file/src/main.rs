//! `boxed-file`: an open file that outlives the instance that opened it.
//!
//! The first instance opens `notes.txt` in the preopened directory `/data`,
//! writes a line, moves the open descriptor into the box `files` and seals
//! it. The next instance (the host runs it with `--restart always
//! --max-restarts 1`) never opens the file by path: it takes the very same
//! descriptor out of the box, reads what the first one wrote and appends to
//! it.

use std::process::ExitCode;

// `boxes::Box` is never imported bare: it would shadow std's `Box` (see
// fdbox-guest).
use fdbox_guest::fdbox::fdbox::boxes;
use fdbox_guest::wasi::filesystem::types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags};
use fdbox_guest::{open_or_create, preopen, read_to_end, write_all};

const BOX: &str = "files";
const ENTRY: &str = "notes";
const FILE: &str = "notes.txt";
const PREOPEN: &str = "/data";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("boxed-file: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let bx = open_or_create(BOX).map_err(|e| e.to_string())?;

    // A sealed box means an earlier instance got as far as its checkpoint.
    let sealed = bx
        .is_sealed()
        .map_err(|code| format!("is-sealed: {}", code.name()))?;
    if sealed {
        second_instance(&bx)
    } else {
        first_instance(&bx)
    }
}

fn first_instance(bx: &boxes::Box) -> Result<(), String> {
    let data = data_dir()?;
    let notes = data
        .open_at(
            PathFlags::empty(),
            FILE,
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::READ | DescriptorFlags::WRITE,
        )
        .map_err(|code| format!("open {FILE}: {}", code.name()))?;
    write_all(&notes, b"hello from the first instance\n", 0)
        .map_err(|code| format!("write {FILE}: {}", code.name()))?;

    // From here on the host holds the open file, not this instance.
    bx.put(ENTRY, notes)
        .map_err(|refused| format!("put {ENTRY}: {}", refused.code.name()))?;
    bx.seal().map_err(|code| format!("seal: {}", code.name()))?;
    println!("boxed {FILE}");
    Ok(())
}

fn second_instance(bx: &boxes::Box) -> Result<(), String> {
    bx.unseal()
        .map_err(|code| format!("unseal: {}", code.name()))?;
    let notes = bx
        .get(ENTRY)
        .map_err(|code| format!("get {ENTRY}: {}", code.name()))?;

    let content = read_to_end(&notes, 0).map_err(|code| format!("read: {}", code.name()))?;
    // One line of output however the file ends; the final newline is the
    // file's, not part of the message.
    let text = String::from_utf8_lossy(&content);
    println!("recovered: {}", text.strip_suffix('\n').unwrap_or(&text));

    // Positional writes: append at the end of what was read.
    write_all(&notes, b"and the second instance\n", content.len() as u64)
        .map_err(|code| format!("append: {}", code.name()))?;
    println!("appended");
    Ok(())
}

/// The directory the host preopened at [`PREOPEN`]
/// (`fdbox run --dir HOST::/data`).
fn data_dir() -> Result<Descriptor, String> {
    preopen(PREOPEN).ok_or_else(|| {
        format!("no preopened directory {PREOPEN} (run with --dir HOST_DIR::{PREOPEN})")
    })
}
