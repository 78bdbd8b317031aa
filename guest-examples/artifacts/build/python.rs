//! The Python guests: `guest-examples/python/<guest>/app.py`, each made a
//! component with componentize-py (installed by `guest-examples/toolchains.sh`
//! into `<target>/guest-toolchains/venv`):
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

use super::{Artifact, Context, fail};
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

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
    let tool = ctx
        .target_dir
        .join("guest-toolchains/venv/bin/componentize-py");
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
            componentize(&tool, &wit, &staged, &component);
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

    let stamp = component.with_extension("wasm.fingerprint");
    let fingerprint = fingerprint(&[tool, wit, src], &args);
    if component.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(&fingerprint) {
        return;
    }
    let _ = fs::remove_file(&stamp);

    // Written aside and renamed: an interrupted build leaves no component
    // that looks complete.
    let partial = component.with_extension("wasm.partial");
    let _ = fs::remove_file(&partial);
    let started = Instant::now();
    let status = Command::new(tool)
        .args(&args)
        .arg("-o")
        .arg(&partial)
        // Build-script stdout is cargo's instruction channel.
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", tool.display())));
    if !status.success() || !partial.is_file() {
        fail(&format!(
            "componentize-py failed ({status}) for {}; see the output above, or run: {} {} -o {}",
            src.display(),
            tool.display(),
            args.iter()
                .map(|a| a.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            component.display(),
        ));
    }
    fs::rename(&partial, component)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", component.display())));
    fs::write(&stamp, fingerprint)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", stamp.display())));
    // Shown by `cargo build -vv`.
    eprintln!(
        "componentize-py: {} in {:.1} s",
        component.display(),
        started.elapsed().as_secs_f64()
    );
}

/// A hash of the arguments and of every file under `paths` (name and
/// content; for the tool, its size and modification time).
fn fingerprint(paths: &[&Path], args: &[PathBuf]) -> String {
    let mut hasher = DefaultHasher::new();
    for arg in args {
        hasher.write(arg.as_os_str().as_encoded_bytes());
        hasher.write_u8(0);
    }
    let (tool, trees) = paths.split_first().unwrap();
    hasher.write(tool.as_os_str().as_encoded_bytes());
    if let Ok(meta) = fs::metadata(tool) {
        hasher.write_u64(meta.len());
        if let Ok(modified) = meta.modified() {
            hasher.write(format!("{modified:?}").as_bytes());
        }
    }
    for tree in trees {
        hash_tree(&mut hasher, tree);
    }
    format!("{:016x}", hasher.finish())
}

fn hash_tree(hasher: &mut DefaultHasher, path: &Path) {
    hasher.write(path.as_os_str().as_encoded_bytes());
    hasher.write_u8(0);
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.retain(|p| p.file_name().is_some_and(|n| n != "__pycache__"));
        entries.sort();
        for entry in entries {
            hash_tree(hasher, &entry);
        }
    } else {
        let content = fs::read(path).unwrap_or_default();
        hasher.write_u64(content.len() as u64);
        hasher.write(&content);
    }
}
