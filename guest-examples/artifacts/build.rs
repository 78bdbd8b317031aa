//! Builds every guest example and writes the paths of the resulting
//! components to `$OUT_DIR/artifacts.rs`: the one entry point for tests,
//! benchmarks and users (`cargo run -p fdbox-guest-artifacts` builds them
//! and lists them).
//!
//! One module per language, each returning its [`Artifact`]s: Rust
//! (`build/rust.rs`), C (`build/c.rs`), Python (`build/python.rs`),
//! JavaScript (`build/js.rs`), and compositions (`build/compose.rs`). The
//! toolchains the non-Rust guests need are installed by
//! `guest-examples/toolchains.sh` into `target/guest-toolchains`.

#[path = "build/c.rs"]
mod c;
#[path = "build/componentize.rs"]
mod componentize;
#[path = "build/compose.rs"]
mod compose;
#[path = "build/js.rs"]
mod js;
#[path = "build/python.rs"]
mod python;
#[path = "build/rust.rs"]
mod rust;

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// A built component.
pub struct Artifact {
    /// The Rust constant naming it.
    constant: String,
    /// Where it is.
    path: PathBuf,
    /// What it is, for the constant's docs.
    doc: String,
}

impl Artifact {
    /// An artifact; `path` must exist once the build is done.
    pub fn new(constant: &str, path: PathBuf, doc: &str) -> Self {
        Self {
            constant: constant.to_owned(),
            path,
            doc: doc.to_owned(),
        }
    }
}

/// What every language's build needs.
pub struct Context {
    /// The repository root.
    pub repo: PathBuf,
    /// This build script's `OUT_DIR`.
    pub out_dir: PathBuf,
    /// The outer build's target directory (build into a directory of its own
    /// below it).
    pub target_dir: PathBuf,
}

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // guest-examples/artifacts -> repository root.
    let repo = manifest_dir
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let target_dir = outer_target_dir(&out_dir, &repo);
    let ctx = Context {
        repo,
        out_dir,
        target_dir,
    };
    let mut artifacts = rust::build(&ctx);
    artifacts.extend(python::build(&ctx));
    artifacts.extend(js::build(&ctx));
    artifacts.extend(c::build(&ctx));
    // Last: compositions plug built components together.
    let composed = compose::build(&ctx, &artifacts);
    artifacts.extend(composed);

    let mut code = String::new();
    for Artifact {
        constant,
        path,
        doc,
    } in &artifacts
    {
        assert!(
            path.is_file(),
            "the build succeeded but {} is missing",
            path.display()
        );
        let path = path.to_str().expect("target directory path is not UTF-8");
        writeln!(code, "/// {doc}\npub const {constant}: &str = {path:?};").unwrap();
    }
    let list: Vec<String> = artifacts
        .iter()
        .map(|a| format!("({:?}, {})", a.constant, a.constant))
        .collect();
    writeln!(
        code,
        "/// Every component above, by constant name.\npub const ALL: &[(&str, &str)] = &[{}];",
        list.join(", ")
    )
    .unwrap();
    fs::write(ctx.out_dir.join("artifacts.rs"), code).unwrap();
}

/// The outer build's target directory: the ancestor of `OUT_DIR` that cargo
/// marked with `CACHEDIR.TAG` (`OUT_DIR` is
/// `<target>/[<triple>/]<profile>/build/<pkg>-<hash>/out`), else
/// `CARGO_TARGET_DIR`, else `<repo>/target`.
fn outer_target_dir(out_dir: &Path, repo: &Path) -> PathBuf {
    if let Some(dir) = out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
    {
        return dir.to_path_buf();
    }
    match env::var_os("CARGO_TARGET_DIR") {
        // Relative to the workspace root, where cargo is normally run.
        Some(dir) => repo.join(dir),
        None => repo.join("target"),
    }
}

/// Stops the build with `message` shown as a cargo error, without the panic
/// backtrace noise.
pub fn fail(message: &str) -> ! {
    println!("cargo::error={message}");
    std::process::exit(1);
}
