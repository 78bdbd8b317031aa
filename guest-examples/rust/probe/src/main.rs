//! `probe`: a scriptable fdbox client for the integration tests.
//!
//! The arguments are a sequence of steps, each a word followed by its
//! arguments, for example `probe create a put-memfd a x hello seal a`.
//! Every step prints exactly one line to stdout and the next step runs
//! whatever the outcome, so a test can check a whole scenario by comparing
//! lines:
//!
//! - `OK` or `OK <detail>` on success;
//! - `ERR <code>` on failure, where `<code>` is the kebab-case WIT
//!   `error-code` (fdbox's or `wasi:filesystem`'s), or one of the probe's own:
//!   `missing-argument`, `invalid-number`, `unknown-step`, `no-preopen`,
//!   `mismatch`, `handle-lost`.
//!
//! Steps (BOX and ENTRY are names, TEXT and PATH single arguments):
//!
//! | step                        | does                                            | detail on OK          |
//! |-----------------------------|-------------------------------------------------|-----------------------|
//! | `create BOX`                | `box.create`                                    |                       |
//! | `open BOX`                  | `box.open`                                      |                       |
//! | `delete BOX`                | `box.delete`                                    |                       |
//! | `seal BOX`, `unseal BOX`    | open, then seal / unseal                        |                       |
//! | `sealed BOX`                | open, then `is-sealed`                          | `true` / `false`      |
//! | `list`                      | `list-boxes`                                    | `a,b` (maybe empty)   |
//! | `entries BOX`               | open, `entries`, check each `box-name` is BOX   | `x:memory-file,y:file`|
//! | `put-memfd BOX ENTRY TEXT`  | new memory file ENTRY holding TEXT, put         |                       |
//! | `put-file BOX ENTRY PATH`   | open `/data/PATH` read-write, put               |                       |
//! | `put-dir BOX ENTRY`         | open `/data` itself as a new descriptor, put    |                       |
//! | `get BOX ENTRY`             | get, read it                                    | content or `dir:a,b`  |
//! | `cycles BOX N`              | one memory file put as `cycle` and got, N times | `N`                   |
//! | `write-file BOX ENTRY TEXT` | get, write TEXT at offset 0, put back           |                       |
//! | `trap`                      | abort the instance                              | (no line)             |
//! | `hang`                      | print `OK`, then sleep until killed             |                       |
//! | `exit N`                    | exit with status N (0 to 255)                   | (no line)             |
//!
//! `\0` in an argument stands for a NUL byte, which process arguments
//! cannot carry (`create a\0b` tries a name with a NUL in it).
//!
//! A refused put returns the handle to the guest; the put steps check that
//! it still works and print `ERR handle-lost` if it does not, else the
//! refusal's code. Newlines in `get` content are printed as `\n` to keep
//! the one-line-per-step rule.

// `boxes::Box` is never imported bare: it would shadow std's `Box` (see
// fdbox-guest).
use fdbox_guest::fdbox::fdbox::{boxes, memory_files, types};
use fdbox_guest::wasi::cli::exit;
use fdbox_guest::wasi::filesystem::types::{
    self as fs, Descriptor, DescriptorFlags, DescriptorType, OpenFlags, PathFlags,
};
use fdbox_guest::{read_to_end, write_all};

/// The preopened directory `put-file` and `put-dir` work in.
const PREOPEN: &str = "/data";

fn main() {
    // Process arguments cannot carry NUL bytes, yet names containing one are
    // worth testing: the two characters `\0` stand for a NUL.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|arg| arg.replace("\\0", "\0"))
        .collect();
    let mut words = args.iter().map(String::as_str);
    while let Some(step) = words.next() {
        match run_step(step, &mut words) {
            Ok(None) => println!("OK"),
            Ok(Some(detail)) => println!("OK {detail}"),
            Err(Code(code)) => println!("ERR {code}"),
        }
    }
}

/// What a step prints: `OK`, `OK <detail>` or `ERR <code>`.
type Outcome = Result<Option<String>, Code>;

/// The kebab-case error code of a failed step.
struct Code(&'static str);

// Both WIT `error-code` enums convert, so `?` works on fdbox and
// `wasi:filesystem` calls alike.
impl From<types::ErrorCode> for Code {
    fn from(code: types::ErrorCode) -> Self {
        Code(code.name())
    }
}

impl From<fs::ErrorCode> for Code {
    fn from(code: fs::ErrorCode) -> Self {
        Code(code.name())
    }
}

fn run_step<'a>(step: &str, words: &mut impl Iterator<Item = &'a str>) -> Outcome {
    let mut arg = || words.next().ok_or(Code("missing-argument"));
    match step {
        "create" => boxes::Box::create(arg()?).map(drop)?,
        "open" => boxes::Box::open(arg()?).map(drop)?,
        "delete" => boxes::Box::delete(arg()?)?,
        "seal" => boxes::Box::open(arg()?)?.seal()?,
        "unseal" => boxes::Box::open(arg()?)?.unseal()?,
        "sealed" => return Ok(Some(boxes::Box::open(arg()?)?.is_sealed()?.to_string())),
        "list" => return Ok(Some(boxes::list_boxes()?.join(","))),
        "entries" => return entries(arg()?),
        "put-memfd" => put_memfd(arg()?, arg()?, arg()?)?,
        "put-file" => put_file(arg()?, arg()?, arg()?)?,
        "put-dir" => put_dir(arg()?, arg()?)?,
        "get" => return get(arg()?, arg()?),
        "cycles" => return cycles(arg()?, parse(arg()?)?),
        "write-file" => write_file(arg()?, arg()?, arg()?)?,
        "trap" => std::process::abort(),
        "hang" => {
            // Lets a test kill the host while this instance is alive and
            // holding what the steps before left in boxes.
            println!("OK");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        "exit" => {
            // `exit-with-code` (WASI 0.2.12), not `std::process::exit`:
            // wasi-libc still calls `exit(result)`, which turns every
            // non-zero status into 1. Lines printed so far are already
            // flushed (stdout is line-buffered).
            exit::exit_with_code(parse(arg()?)?);
            unreachable!("exit-with-code returned");
        }
        _ => return Err(Code("unknown-step")),
    }
    Ok(None)
}

fn entries(box_name: &str) -> Outcome {
    let mut listed = Vec::new();
    for entry in boxes::Box::open(box_name)?.entries()? {
        if entry.box_name() != box_name {
            return Err(Code("mismatch"));
        }
        listed.push(format!("{}:{}", entry.name(), kind_name(entry.kind())));
    }
    Ok(Some(listed.join(",")))
}

/// The WIT name of a handle kind (wit-bindgen generates `name()` only for
/// enums used as errors).
fn kind_name(kind: types::HandleKind) -> &'static str {
    match kind {
        types::HandleKind::MemoryFile => "memory-file",
        types::HandleKind::File => "file",
        types::HandleKind::Directory => "directory",
        types::HandleKind::TcpListener => "tcp-listener",
        types::HandleKind::TcpConnection => "tcp-connection",
    }
}

fn put_memfd(box_name: &str, entry: &str, text: &str) -> Result<(), Code> {
    let bx = boxes::Box::open(box_name)?;
    let fd = memory_files::create(entry)?;
    write_all(&fd, text.as_bytes(), 0)?;
    // Writing again proves the refused handle is still a working memory file.
    put(&bx, entry, fd, |fd| {
        write_all(fd, text.as_bytes(), 0).is_ok()
    })
}

fn put_file(box_name: &str, entry: &str, path: &str) -> Result<(), Code> {
    let bx = boxes::Box::open(box_name)?;
    let flags = DescriptorFlags::READ | DescriptorFlags::WRITE;
    let fd = preopen()?.open_at(PathFlags::empty(), path, OpenFlags::empty(), flags)?;
    put(&bx, entry, fd, |fd| fd.stat().is_ok())
}

fn put_dir(box_name: &str, entry: &str) -> Result<(), Code> {
    let bx = boxes::Box::open(box_name)?;
    // A descriptor of its own for the preopened directory, opened as `.`:
    // the preopen stays with the WASI context, this one moves into the box.
    let fd = preopen()?.open_at(
        PathFlags::empty(),
        ".",
        OpenFlags::DIRECTORY,
        DescriptorFlags::READ,
    )?;
    put(&bx, entry, fd, |fd| fd.stat().is_ok())
}

/// `box.put`; on refusal, `still_usable` checks the handle that came back.
fn put(
    bx: &boxes::Box,
    entry: &str,
    fd: Descriptor,
    still_usable: impl FnOnce(&Descriptor) -> bool,
) -> Result<(), Code> {
    match bx.put(entry, fd) {
        Ok(_) => Ok(()),
        Err(refused) if still_usable(&refused.handle) => Err(refused.code.into()),
        Err(_) => Err(Code("handle-lost")),
    }
}

fn get(box_name: &str, entry: &str) -> Outcome {
    let fd = boxes::Box::open(box_name)?.get(entry)?;
    if fd.get_type()? == DescriptorType::Directory {
        let mut names = Vec::new();
        let listing = fd.read_directory()?;
        while let Some(dir_entry) = listing.read_directory_entry()? {
            names.push(dir_entry.name);
        }
        names.sort();
        return Ok(Some(format!("dir:{}", names.join(","))));
    }
    let content = read_to_end(&fd, 0)?;
    Ok(Some(String::from_utf8_lossy(&content).replace('\n', "\\n")))
}

fn cycles(box_name: &str, n: u32) -> Outcome {
    let bx = boxes::Box::open(box_name)?;
    let mut fd = memory_files::create("cycle")?;
    for _ in 0..n {
        bx.put("cycle", fd)
            .map_err(|refused| Code::from(refused.code))?;
        fd = bx.get("cycle")?;
    }
    Ok(Some(n.to_string()))
}

fn write_file(box_name: &str, entry: &str, text: &str) -> Result<(), Code> {
    let bx = boxes::Box::open(box_name)?;
    let fd = bx.get(entry)?;
    let written = write_all(&fd, text.as_bytes(), 0);
    // Put the handle back even when the write failed: dropping it would
    // close it and lose the entry.
    bx.put(entry, fd)
        .map_err(|refused| Code::from(refused.code))?;
    Ok(written?)
}

/// The directory the host preopened at [`PREOPEN`].
fn preopen() -> Result<Descriptor, Code> {
    fdbox_guest::preopen(PREOPEN).ok_or(Code("no-preopen"))
}

fn parse<T: std::str::FromStr>(word: &str) -> Result<T, Code> {
    word.parse().map_err(|_| Code("invalid-number"))
}
