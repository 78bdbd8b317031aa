//! The Rust guests: the workspace `guest-examples/rust`, built with a nested
//! `cargo build --release --target wasm32-wasip2`.

use super::{Artifact, Context, fail, progress};
use std::env;
use std::path::Path;
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";

/// The guests: constant name, member, binary name, documentation.
const GUESTS: &[(&str, &str, &str, &str)] = &[
    (
        "COUNTER",
        "counter",
        "counter",
        "The `counter` command: a `u64` counter in a memory file in box `counter` \
         (`--box NAME`), checkpointed by sealing the box after each increment; \
         `--until N` and `--crash-every K`.",
    ),
    (
        "BOXED_FILE",
        "boxed-file",
        "boxed-file",
        "The `boxed-file` command: the first run boxes an open `/data/notes.txt` \
         in box `files` (entry `notes`), the second takes it back, prints it and \
         appends to it.",
    ),
    (
        "PROBE",
        "probe",
        "probe",
        "The `probe` command: runs the fdbox steps given as arguments and prints \
         one `OK ...` or `ERR <code>` line per step.",
    ),
    (
        "BENCH",
        "bench",
        "bench",
        "The `bench` component (not a command): exports \
         `put-get-cycles(box-name, n) -> u32`, which moves one memory file into \
         an existing box and back out `n` times; `put-memfds(box-name, n) -> u32`, \
         which creates `n` memory files and puts each as entry `0`..`n-1`; and \
         `get-all(box-name, n) -> u32`, which gets those entries back.",
    ),
    (
        "KV_V1",
        "kv-service",
        "kv-v1",
        "The `kv-v1` command: a line-protocol key/value service for `fdbox serve` \
         (`--listen main=ADDR --box kv`; `KV_BOX` renames the box) that hands its \
         listener, connections (request counts, unfinished lines) and map over \
         through the box on upgrade and stop. `PING`, `SET k v`, `GET k`, \
         `INCR k`, `COUNT`; `VERSION` answers `VERSION 1`; no `DEL`.",
    ),
    (
        "KV_V2",
        "kv-service",
        "kv-v2",
        "The `kv-v2` command: [`KV_V1`] with `VERSION 2`, and `DEL k` \
         (`OK`, or `NONE` if `k` was not set).",
    ),
    (
        "RESP_V1",
        "resp-service",
        "resp-v1",
        "The `resp-v1` command: a Redis-protocol (RESP2) service for `fdbox serve` \
         (`--listen main=ADDR --box resp`; `RESP_BOX` renames the box), enough for \
         `redis-cli` and `redis-benchmark` (`PING`, `ECHO`, `GET`, `SET`, `DEL`, \
         `EXISTS`, `INCR`, `INCRBY`, `DBSIZE`, `FLUSHDB`, `INFO`, `COMMAND`, \
         `CONFIG GET`, inline commands, pipelining), whose key space is a hash \
         table in a boxed memory file; `INFO` says `version:resp-v1`.",
    ),
    (
        "RESP_V2",
        "resp-service",
        "resp-v2",
        "The `resp-v2` command: [`RESP_V1`] with `version:resp-v2` in `INFO`, \
         and `STRLEN k`.",
    ),
    (
        "HTTP_V1",
        "http-service",
        "http-v1",
        "The `http-v1` command: an HTTP/1.1 service for `fdbox serve` \
         (`--listen main=ADDR --box http`; `HTTP_BOX` renames the box), enough for \
         `wrk` and `curl` (keep-alive, pipelining, `Content-Length` bodies): \
         `GET /`, `GET /count` (a counter), `POST`/`GET /kv/KEY`, whose counter \
         and keys are a hash table in a boxed memory file; `Server: fdbox-http-v1`.",
    ),
    (
        "HTTP_V2",
        "http-service",
        "http-v2",
        "The `http-v2` command: [`HTTP_V1`] with `Server: fdbox-http-v2`, \
         and `DELETE /kv/KEY`.",
    ),
    (
        "KV_BROKEN",
        "kv-service",
        "kv-broken",
        "The `kv-broken` command: imports what [`KV_V1`] does but traps as it \
         starts, before it touches the box or calls `lifecycle.ready`: an \
         upgrade to it must roll back.",
    ),
];

/// Inherited variables that would make the nested cargo build something
/// other than a plain `wasm32-wasip2` build of the guest workspace.
const SCRUBBED_VARS: &[&str] = &[
    // Flags meant for the outer build (host target, maybe `-C target-cpu`).
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    // Would point the nested build at the outer target directory, whose
    // lock the outer cargo holds: a deadlock.
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    // The outer jobserver: the nested cargo runs its own.
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    // Set by `cargo clippy` for the outer workspace only.
    "RUSTC_WORKSPACE_WRAPPER",
];

/// Build the Rust guests; their artifacts.
pub fn build(ctx: &Context) -> Vec<Artifact> {
    let Context { repo, out_dir, .. } = ctx;
    let (repo, out_dir) = (repo.as_path(), out_dir.as_path());
    let guests = repo.join("guest-examples/rust");

    rerun_if_changed(&guests, repo);
    check_target_installed();

    // A directory of its own inside the outer target directory: cargo locks
    // a target directory while it builds, and the outer cargo holds that
    // lock while this script runs.
    let target_dir = ctx.target_dir.join("guest-examples");

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(guests.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Build-script stdout is cargo's instruction channel: keep the nested
        // cargo's output on stderr, which cargo shows when the build fails.
        .stdout(Stdio::from(std::io::stderr()));
    for var in SCRUBBED_VARS {
        build.env_remove(var);
    }
    // Cargo sets these for this script from the *host* target and this
    // package's features. Nested build scripts get their own, but a stale
    // variable the wasm target does not set (`CARGO_CFG_UNIX`, ...) would
    // leak into them.
    for (var, _) in env::vars_os() {
        let var = var.to_string_lossy();
        if var.starts_with("CARGO_CFG_") || var.starts_with("CARGO_FEATURE_") {
            build.env_remove(&*var);
        }
    }

    progress(
        &format!("Rust: cargo build --release --target {TARGET} (guest-examples/rust) ..."),
        false,
    );
    let started = std::time::Instant::now();
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    if !status.success() {
        fail(&format!(
            "building the guest components failed ({status}); see the output above, \
             or run: cargo build --release --target {TARGET} --manifest-path {} --target-dir {}",
            guests.join("Cargo.toml").display(),
            target_dir.display(),
        ));
    }

    progress(
        &format!(
            "Rust: guest-examples/rust in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
        true,
    );
    let release = target_dir.join(TARGET).join("release");
    let _ = out_dir;
    GUESTS
        .iter()
        .map(|(constant, _, binary, doc)| {
            Artifact::new(constant, release.join(format!("{binary}.wasm")), doc)
        })
        .collect()
}

/// Rebuild when a guest's source, the guests' shared library, the guest
/// workspace or the fdbox WIT changes (cargo scans directories recursively).
fn rerun_if_changed(guests: &Path, repo: &Path) {
    let mut paths = vec![
        guests.join("Cargo.toml"),
        guests.join("Cargo.lock"),
        guests.join("wit"),
        // Not a guest itself (no component of its own), but compiled into
        // the command guests: their bindings and descriptor helpers.
        guests.join("fdbox-guest"),
        repo.join("wit"),
    ];
    paths.extend(GUESTS.iter().map(|(_, member, _, _)| guests.join(member)));
    for path in paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Fails early, with the fix, instead of with "can't find crate for `std`".
fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run rustc: {e}"));
    let sysroot = String::from_utf8_lossy(&output.stdout);
    let libdir = Path::new(sysroot.trim()).join("lib/rustlib").join(TARGET);
    if !output.status.success() || !libdir.is_dir() {
        fail(&format!(
            "the Rust target {TARGET} is not installed (no {}), and the fdbox guest \
             components are built for it. Install it with: rustup target add {TARGET}",
            libdir.display(),
        ));
    }
}
