//! `boxed-file`: an open file that outlives the instance that opened it.
//!
//! The first instance opens `notes.txt` in the preopened directory `/data`,
//! writes a line, moves the open descriptor into the box `files` and seals
//! it. The next instance (the host runs it with `--restart always
//! --max-restarts 1`) never opens the file by path: it takes the very same
//! descriptor out of the box, reads what the first one wrote and appends to
//! it.

mod bindings {
    // The WIT resource `box` becomes `fdbox::fdbox::boxes::Box`, which would
    // shadow std's `Box` if imported bare; this file always writes
    // `boxes::Box` instead (wit-bindgen cannot rename one resource, and the
    // WIT name is worth keeping). See ../wit/guest.wit for the world.
    wit_bindgen::generate!({
        world: "fdbox:examples/command-guest",
        path: ["../../../wit", "../wit"],
        // WASI bindings from the same generation: the descriptors that
        // `wasi:filesystem/preopens` hands out are then the type `box.put`
        // accepts.
        generate_all,
    });
}

use std::process::ExitCode;

use bindings::fdbox::fdbox::{boxes, types};
use bindings::wasi::filesystem::preopens;
use bindings::wasi::filesystem::types::{
    self as fs, Descriptor, DescriptorFlags, OpenFlags, PathFlags,
};

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
    let bx = match boxes::Box::open(BOX) {
        Err(types::ErrorCode::NotFound) => boxes::Box::create(BOX),
        other => other,
    }
    .map_err(|code| format!("open box {BOX}: {}", code.name()))?;

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
    let data = preopen(PREOPEN)?;
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

    let content = read_all(&notes).map_err(|code| format!("read: {}", code.name()))?;
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

/// The directory the host preopened at `path` (`fdbox run --dir HOST::/data`).
fn preopen(path: &str) -> Result<Descriptor, String> {
    preopens::get_directories()
        .into_iter()
        .find_map(|(dir, guest_path)| (guest_path == path).then_some(dir))
        .ok_or_else(|| format!("no preopened directory {path} (run with --dir HOST_DIR::{path})"))
}

/// The whole file, read from offset 0 until end of file.
fn read_all(fd: &Descriptor) -> Result<Vec<u8>, fs::ErrorCode> {
    let mut content = Vec::new();
    loop {
        let (chunk, eof) = fd.read(64 * 1024, content.len() as u64)?;
        content.extend_from_slice(&chunk);
        if eof || chunk.is_empty() {
            return Ok(content);
        }
    }
}

/// `descriptor.write` may write less than asked; keep going until all is.
fn write_all(fd: &Descriptor, mut buf: &[u8], mut offset: u64) -> Result<(), fs::ErrorCode> {
    while !buf.is_empty() {
        let n = fd.write(buf, offset)?;
        buf = &buf[n as usize..];
        offset += n;
    }
    Ok(())
}
