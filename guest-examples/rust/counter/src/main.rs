//! `counter`: a `u64` counter that survives crashes of the instance.
//!
//! The counter lives in a memory file inside the fdbox box `counter`. Each
//! step takes the file out of the box, increments the counter, puts the file
//! back and seals the box: that is the checkpoint. When the instance dies
//! after a checkpoint, the next one (`fdbox run --restart on-failure`) finds
//! the sealed box and carries on from the same count.
//!
//! Usage: `counter [--box NAME] [--until N] [--crash-every K]`
//!
//! Without `--until` it does one step and exits, so every run adds one.

use std::process::ExitCode;

use fdbox_guest::fdbox::fdbox::{memory_files, types};
use fdbox_guest::wasi::filesystem::types::{self as fs, Descriptor};
use fdbox_guest::{open_or_create, read_up_to, write_all};

/// The entry of the box that holds the memory file with the count.
const STATE: &str = "state";

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("counter: {msg}");
            eprintln!("usage: counter [--box NAME] [--until N] [--crash-every K]");
            return ExitCode::from(2);
        }
    };
    loop {
        let count = match step(&args.box_name) {
            Ok(count) => count,
            Err(failure) => {
                eprintln!("counter: {failure}");
                return ExitCode::FAILURE;
            }
        };
        // Printed only after the checkpoint: a count on stdout is one that a
        // crash can no longer take back, so a restarted instance never prints
        // the same count twice.
        println!("count = {count}");
        match args.until {
            None => return ExitCode::SUCCESS,
            // `>=`, not `==`: a box left over from an earlier run may already
            // be past the target.
            Some(until) if count >= until => {
                println!("done at {count}");
                return ExitCode::SUCCESS;
            }
            Some(_) => {}
        }
        if args.crash_every.is_some_and(|k| count % k == 0) {
            eprintln!("crashing on purpose at {count}");
            // A trap, not an exit: this is the failure that
            // `--restart on-failure` answers by starting a new instance.
            std::process::abort();
        }
    }
}

/// One checkpointed increment; returns the new count.
fn step(box_name: &str) -> Result<u64, Failure> {
    // `e.op` tells "open box" from "create box" failures.
    let bx = open_or_create(box_name).map_err(|e| Failure(e.to_string()))?;
    if bx.is_sealed().or_fail("is-sealed")? {
        bx.unseal().or_fail("unseal")?;
    }
    // An unsealed box may still hold the state when an instance died between
    // unseal and get; taking it from there keeps the count. Only a box
    // without it (the first run) starts from a fresh, empty memory file.
    let state = match bx.get(STATE) {
        Ok(fd) => fd,
        Err(types::ErrorCode::NotFound) => {
            memory_files::create(STATE).or_fail("create memory file")?
        }
        Err(code) => return Err(Failure::new("get state", code.name())),
    };

    let count = read_count(&state)? + 1;
    write_all(&state, &count.to_le_bytes(), 0).or_fail("write state")?;

    bx.put(STATE, state)
        .map_err(|refused| Failure::new("put state", refused.code.name()))?;
    bx.seal().or_fail("seal")?;
    Ok(count)
}

/// The little-endian `u64` at offset 0, or 0 while the file is still short
/// of one (a new memory file is empty).
fn read_count(fd: &Descriptor) -> Result<u64, Failure> {
    let bytes = read_up_to(fd, 0, 8).or_fail("read state")?;
    Ok(bytes.try_into().map(u64::from_le_bytes).unwrap_or(0))
}

/// Command-line options.
struct Args {
    box_name: String,
    until: Option<u64>,
    crash_every: Option<u64>,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut args = Args {
            box_name: "counter".into(),
            until: None,
            crash_every: None,
        };
        let mut argv = std::env::args().skip(1);
        while let Some(flag) = argv.next() {
            let mut value = || argv.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--box" => args.box_name = value()?,
                "--until" => args.until = Some(parse_number(&flag, &value()?)?),
                "--crash-every" => match parse_number(&flag, &value()?)? {
                    0 => return Err("--crash-every must be at least 1".into()),
                    k => args.crash_every = Some(k),
                },
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        Ok(args)
    }
}

fn parse_number(flag: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: not a number: {value:?}"))
}

/// An operation that failed: what failed, with the WIT `error-code` it
/// failed with.
struct Failure(String);

impl Failure {
    fn new(op: &str, code: &str) -> Self {
        Failure(format!("{op} failed: {code}"))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Attaches the operation to both error-code enums (fdbox's and
/// `wasi:filesystem`'s), which each know their kebab-case WIT name.
trait OrFail<T> {
    fn or_fail(self, op: &'static str) -> Result<T, Failure>;
}

impl<T> OrFail<T> for Result<T, types::ErrorCode> {
    fn or_fail(self, op: &'static str) -> Result<T, Failure> {
        self.map_err(|code| Failure::new(op, code.name()))
    }
}

impl<T> OrFail<T> for Result<T, fs::ErrorCode> {
    fn or_fail(self, op: &'static str) -> Result<T, Failure> {
        self.map_err(|code| Failure::new(op, code.name()))
    }
}
