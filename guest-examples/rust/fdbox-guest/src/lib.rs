//! What the command guests (`counter`, `boxed-file`, `probe`, `kv-service`,
//! `resp-service`, `http-service`) share: the bindings for the world
//! `fdbox:examples/command-guest`, small helpers around `wasi:filesystem`
//! descriptors and fdbox boxes, ([`service`]) the hand-over of a TCP
//! service, written once for every service guest, and ([`store`]) the key
//! space in a memory file that `resp-service` and `http-service` keep.
//!
//! The bindings are generated here once, not in each guest: every guest then
//! uses the very same `descriptor` and `box` types, and a change to the WIT
//! or to the generation options is made in one place.
//!
//! A library is enough for this: wit-bindgen makes every generated interface
//! module keep a reference to the custom section that describes the world's
//! imports, so the section reaches the final link of each guest (and
//! `wasm-component-ld` builds the component from it) although it is defined
//! in this crate.

mod bindings {
    // The WIT resource `box` becomes `fdbox::fdbox::boxes::Box`. That compiles:
    // the generated `boxes` module never needs std's `Box`, and wit-bindgen
    // has no option to rename a single resource. So the WIT name stays, and
    // the clash is avoided by scoping: code outside only ever writes
    // `boxes::Box` and never imports it bare, which would shadow std's `Box`.
    wit_bindgen::generate!({
        world: "fdbox:examples/command-guest",
        // The fdbox package and its WASI deps first, then the guest world that
        // refers to them (see ../wit/guest.wit for why it is not
        // `fdbox:fdbox/command`).
        path: ["../../../wit", "../wit"],
        // Generate the WASI interfaces too, so the `descriptor` that fdbox
        // takes and returns is the very type `wasi:filesystem/types` reads and
        // writes, and the descriptors `wasi:filesystem/preopens` hands out are
        // ones `box.put` accepts.
        generate_all,
    });
}

/// The generated bindings: `fdbox::fdbox::{boxes, memory_files, sockets,
/// lifecycle, types}` for fdbox, and `wasi::*` for the WASI interfaces the
/// world imports.
pub use bindings::{fdbox, wasi};

pub mod service;
pub mod store;

use fdbox::fdbox::{boxes, types};
use wasi::filesystem::preopens;
use wasi::filesystem::types::{Descriptor, ErrorCode};

/// How much [`read_up_to`] asks for in one `descriptor.read` call: a bound on
/// the buffer the host allocates per call, not on what can be read.
const READ_CHUNK: u64 = 64 * 1024;

/// Reads from `offset` until end of file: the rest of the file.
///
/// For a whole file, pass offset 0. `descriptor.read` reads at an explicit
/// offset, so this leaves no position behind for later calls to depend on.
pub fn read_to_end(fd: &Descriptor, offset: u64) -> Result<Vec<u8>, ErrorCode> {
    read_up_to(fd, offset, u64::MAX)
}

/// Reads up to `len` bytes from `offset`, fewer only if the file ends first.
///
/// `descriptor.read` may return fewer bytes than asked without being at end
/// of file, so a single call is not enough; this keeps reading until it has
/// `len` bytes, the read reports end of file, or it returns nothing (which
/// would otherwise loop forever).
pub fn read_up_to(fd: &Descriptor, offset: u64, len: u64) -> Result<Vec<u8>, ErrorCode> {
    let mut content = Vec::new();
    loop {
        let done = content.len() as u64;
        if done >= len {
            return Ok(content);
        }
        let (chunk, eof) = fd.read((len - done).min(READ_CHUNK), offset + done)?;
        content.extend_from_slice(&chunk);
        if eof || chunk.is_empty() {
            return Ok(content);
        }
    }
}

/// Writes all of `buf` at `offset`.
///
/// `descriptor.write` may write less than asked; this keeps going from where
/// the last write stopped until all of `buf` is written.
pub fn write_all(fd: &Descriptor, mut buf: &[u8], mut offset: u64) -> Result<(), ErrorCode> {
    while !buf.is_empty() {
        let n = fd.write(buf, offset)?;
        buf = &buf[n as usize..];
        offset += n;
    }
    Ok(())
}

/// The directory the host preopened at the guest path `path` (for example
/// `/data` with `fdbox run --dir HOST_DIR::/data`), or `None` if it did not.
///
/// The guests report a missing preopen each in their own way, so this does
/// not make an error of it.
pub fn preopen(path: &str) -> Option<Descriptor> {
    preopens::get_directories()
        .into_iter()
        .find_map(|(dir, guest_path)| (guest_path == path).then_some(dir))
}

/// Opens the box `name`, creating it if it does not exist yet.
///
/// A guest that checkpoints into a box needs the same box on its first run
/// (none yet) and after a restart (one left by the earlier instance).
pub fn open_or_create(name: &str) -> Result<boxes::Box, OpenOrCreateError> {
    let error = |op, code| OpenOrCreateError {
        op,
        name: name.to_owned(),
        code,
    };
    match boxes::Box::open(name) {
        Err(types::ErrorCode::NotFound) => {
            boxes::Box::create(name).map_err(|code| error("create box", code))
        }
        other => other.map_err(|code| error("open box", code)),
    }
}

/// Why [`open_or_create`] failed: which call did, on which box, and with
/// what code. Its `Display` names the box and, for `access-denied`, what the
/// host has to grant.
#[derive(Debug)]
pub struct OpenOrCreateError {
    /// The call that failed: `"open box"` or `"create box"`.
    pub op: &'static str,
    /// The box.
    pub name: String,
    /// The error code it failed with.
    pub code: types::ErrorCode,
}

impl std::fmt::Display for OpenOrCreateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { op, name, code } = self;
        write!(f, "{op} {name:?} failed: {}", code.name())?;
        match code {
            types::ErrorCode::AccessDenied => write!(
                f,
                " (the host did not grant this guest box {name:?}: run it with --box {name})"
            ),
            _ => Ok(()),
        }
    }
}
