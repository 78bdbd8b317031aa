//! The Python guests: `guest-examples/python/<guest>/app.py`, each made a
//! component with componentize-py (installed by `guest-examples/toolchains.sh`
//! into the directory it names with `--paths`):
//!
//! ```sh
//! componentize-py -d wit -w fdbox:fdbox/command componentize \
//!     -p <target>/guest-examples/python/src/<guest> app -o <guest>-py.wasm
//! ```
//!
//! The sources are copied to `<target>/guest-examples/python/src` first:
//! componentize-py imports `app` to snapshot it and leaves `__pycache__`
//! next to it, which in the source tree would make cargo rerun this script
//! on every build. A componentize takes 6-20 s, so a guest whose inputs (its
//! sources, `wit/`, the tool) are unchanged since its last build is not built
//! again (a fingerprint next to the component).

use super::componentize::Step;
use super::{Artifact, Context, fail};
use std::fs;
use std::path::{Path, PathBuf};

/// The world the guests implement (`wit/fdbox.wit`).
const WORLD: &str = "fdbox:fdbox/command";

/// The guests: constant name, directory in `guest-examples/python`, component
/// name, documentation.
const GUESTS: &[(&str, &str, &str, &str)] = &[
    (
        "COUNTER_PY",
        "counter",
        "counter-py",
        "The `counter` command in Python (`guest-examples/python/counter/app.py`, \
         componentize-py): the same arguments, output, exit codes and box layout \
         as [`COUNTER`] (a little-endian `u64` in a memory file, entry `state` of \
         box `counter`), so either continues a count the other left; \
         `--crash-every` traps with `os.abort()`.",
    ),
    (
        "BOXED_FILE_PY",
        "boxed_file",
        "boxed-file-py",
        "The `boxed-file` command in Python \
         (`guest-examples/python/boxed_file/app.py`, componentize-py): \
         [`BOXED_FILE`] line for line (box `files`, entry `notes`, \
         `/data/notes.txt`).",
    ),
];

/// Build the Python guests; their artifacts.
pub fn build(ctx: &Context) -> Vec<Artifact> {
    let sources = ctx.repo.join("guest-examples/python");
    let wit = ctx.repo.join("wit");
    for path in [&sources, &wit] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let tool = &ctx.toolchains.componentize_py;
    if !tool.is_file() {
        fail(&format!(
            "componentize-py is not installed (no {}), and the Python guest components \
             are built with it. Install it with: bash guest-examples/toolchains.sh",
            tool.display()
        ));
    }
    // A new version of the tool rebuilds the guests.
    println!("cargo:rerun-if-changed={}", tool.display());

    let out = ctx.target_dir.join("guest-examples/python");
    GUESTS
        .iter()
        .map(|(constant, dir, name, doc)| {
            let staged = out.join("src").join(dir);
            stage(&sources.join(dir), &staged);
            let component = out.join(format!("{name}.wasm"));
            componentize(tool, &wit, &staged, &component);
            Artifact::new(constant, component, doc)
        })
        .collect()
}

/// Replaces `to` with a copy of the source files of `from` (not
/// `__pycache__`).
fn stage(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    copy_dir(from, to).unwrap_or_else(|e| {
        fail(&format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        ))
    });
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "__pycache__" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(&name))?;
        } else {
            fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// `componentize-py -d WIT -w WORLD componentize -p SRC app -o COMPONENT`,
/// unless COMPONENT was built from the same inputs.
fn componentize(tool: &Path, wit: &Path, src: &Path, component: &Path) {
    let mut args: Vec<PathBuf> = vec!["-d".into(), wit.into(), "-w".into(), WORLD.into()];
    args.extend(["componentize".into(), "-p".into(), src.into(), "app".into()]);
    Step {
        tool: "componentize-py",
        program: tool,
        args,
        // The tool's script changes when it is reinstalled or upgraded.
        inputs: vec![tool, wit, src],
        component,
    }
    .run();
}
