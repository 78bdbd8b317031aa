//! The JavaScript guests: `guest-examples/js/<guest>.js`, each made a
//! component with ComponentizeJS (`@bytecodealliance/componentize-js`,
//! installed by `guest-examples/toolchains.sh` into the directory it names
//! with `--paths`), run with node:
//!
//! ```sh
//! node <componentize-js>/src/cli.js \
//!     guest-examples/js/<guest>.js --wit wit --world-name fdbox:fdbox/command \
//!     --disable http fetch-event -o <guest>-js.wasm
//! ```
//!
//! `--disable http fetch-event`: without it the component would import
//! `wasi:http`, which fdbox does not provide. A componentize takes 7-10 s, so
//! a guest whose inputs (its source, `wit/`, the tool's version) are unchanged
//! since its last build is not built again (a fingerprint next to the
//! component).

use super::componentize::Step;
use super::{Artifact, Context, fail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The world the guests implement (`wit/fdbox.wit`).
const WORLD: &str = "fdbox:fdbox/command";

/// The guests: constant name, source in `guest-examples/js`, component name,
/// documentation.
const GUESTS: &[(&str, &str, &str, &str)] = &[
    (
        "COUNTER_JS",
        "counter.js",
        "counter-js",
        "The `counter` command in JavaScript (`guest-examples/js/counter.js`, \
         ComponentizeJS): the same arguments, output, exit codes and box layout \
         as [`COUNTER`] (a little-endian `u64` in a memory file, entry `state` of \
         box `counter`), so either continues a count the other left; \
         `--crash-every` traps by dropping a resource handle twice (Wasmtime: \
         `unknown handle index 0`).",
    ),
    (
        "BOXED_FILE_JS",
        "boxed-file.js",
        "boxed-file-js",
        "The `boxed-file` command in JavaScript (`guest-examples/js/boxed-file.js`, \
         ComponentizeJS): [`BOXED_FILE`] line for line (box `files`, entry \
         `notes`, `/data/notes.txt`).",
    ),
];

/// Build the JavaScript guests; their artifacts.
pub fn build(ctx: &Context) -> Vec<Artifact> {
    let sources = ctx.repo.join("guest-examples/js");
    let wit = ctx.repo.join("wit");
    for path in [&sources, &wit] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let package = &ctx.toolchains.componentize_js;
    let cli = package.join("src/cli.js");
    if !cli.is_file() {
        fail(&format!(
            "ComponentizeJS is not installed (no {}), and the JavaScript guest components \
             are built with it. Install it with: bash guest-examples/toolchains.sh",
            cli.display()
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(output) if output.status.success() => {}
        _ => fail(
            "cannot run node, which runs ComponentizeJS for the JavaScript guest components. \
             Install it with: bash guest-examples/toolchains.sh",
        ),
    }
    // A new version of the tool rebuilds the guests.
    let manifest = package.join("package.json");
    println!("cargo:rerun-if-changed={}", manifest.display());

    let out = ctx.target_dir.join("guest-examples/js");
    fs::create_dir_all(&out)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", out.display())));
    GUESTS
        .iter()
        .map(|(constant, source, name, doc)| {
            let component = out.join(format!("{name}.wasm"));
            componentize(&cli, &manifest, &wit, &sources.join(source), &component);
            Artifact::new(constant, component, doc)
        })
        .collect()
}

/// `node CLI SOURCE --wit WIT --world-name WORLD --disable http fetch-event
/// -o COMPONENT`, unless COMPONENT was built from the same inputs.
fn componentize(cli: &Path, manifest: &Path, wit: &Path, source: &Path, component: &Path) {
    let mut args: Vec<PathBuf> = vec![cli.into(), source.into(), "--wit".into(), wit.into()];
    args.extend(["--world-name", WORLD, "--disable", "http", "fetch-event"].map(PathBuf::from));
    Step {
        tool: "componentize-js",
        program: Path::new("node"),
        args,
        inputs: vec![manifest, wit, source],
        component,
    }
    .run();
}
