//! Builds every guest example and writes the paths of the resulting
//! components to `$OUT_DIR/artifacts.rs`: the one entry point for tests,
//! benchmarks and users (`cargo run --bin fdbox-guest-artifacts` builds them
//! and lists them).
//!
//! One module per language, each returning its [`Artifact`]s: Rust
//! (`build/rust.rs`), C (`build/c.rs`), Python (`build/python.rs`),
//! JavaScript (`build/js.rs`), and compositions (`build/compose.rs`). The
//! toolchains the non-Rust guests need are installed by
//! `guest-examples/toolchains.sh`, which is also the one place that says where
//! they are ([`Toolchains::locate`] asks it).

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
    /// Where the non-Rust toolchains are.
    pub toolchains: Toolchains,
}

/// The non-Rust guest toolchains, where `guest-examples/toolchains.sh`
/// installs them (the same with or without `CARGO_TARGET_DIR`).
pub struct Toolchains {
    /// The `componentize-py` executable.
    pub componentize_py: PathBuf,
    /// The `@bytecodealliance/componentize-js` package directory.
    pub componentize_js: PathBuf,
}

impl Toolchains {
    /// Ask `guest-examples/toolchains.sh --paths` (it installs nothing then).
    fn locate(repo: &Path) -> Self {
        let script = repo.join("guest-examples/toolchains.sh");
        println!("cargo:rerun-if-changed={}", script.display());
        for var in ["FDBOX_GUEST_TOOLCHAINS", "XDG_CACHE_HOME", "HOME"] {
            println!("cargo:rerun-if-env-changed={var}");
        }
        let output = std::process::Command::new("bash")
            .arg(&script)
            .arg("--paths")
            .output()
            .unwrap_or_else(|e| fail(&format!("cannot run bash {}: {e}", script.display())));
        if !output.status.success() {
            fail(&format!(
                "bash {} --paths failed ({}): {}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let path = |key: &str| -> PathBuf {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    fail(&format!(
                        "bash {} --paths did not name {key}",
                        script.display()
                    ))
                })
        };
        Self {
            componentize_py: path("componentize-py"),
            componentize_js: path("componentize-js"),
        }
    }
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
    let toolchains = Toolchains::locate(&repo);
    let ctx = Context {
        repo,
        out_dir,
        target_dir,
        toolchains,
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
    let Toolchains {
        componentize_py,
        componentize_js,
    } = &ctx.toolchains;
    writeln!(
        code,
        "/// The componentize-py the Python guests were built with \
         (`guest-examples/toolchains.sh --paths`).\n\
         pub const COMPONENTIZE_PY: &str = {:?};\n\
         /// The ComponentizeJS package the JavaScript guests were built with.\n\
         pub const COMPONENTIZE_JS: &str = {:?};",
        componentize_py
            .to_str()
            .expect("toolchain path is not UTF-8"),
        componentize_js
            .to_str()
            .expect("toolchain path is not UTF-8"),
    )
    .unwrap();
    fs::write(ctx.out_dir.join("artifacts.rs"), code).unwrap();
    report_progress();
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

/// What this run of the build script did, in order, for [`progress`].
static DONE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Reports a step to the person waiting: cargo shows a build script's output
/// only once the script has ended, and building every guest takes minutes
/// the first time (the Python and JavaScript ones 5-20 s each). So each step
/// is written at once to the terminal when there is one, and all of them are
/// repeated as cargo warnings when the script ends ([`report_progress`]).
/// `done` steps (with their time) are repeated; starting lines are not.
pub fn progress(line: &str, done: bool) {
    use std::io::Write as _;
    if let Ok(mut tty) = fs::OpenOptions::new().write(true).open("/dev/tty") {
        // Start of line, clear it: cargo's own progress bar may be there.
        let _ = write!(tty, "\r\x1b[K   guests  {line}\n");
    }
    eprintln!("{line}");
    if done {
        DONE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.to_owned());
    }
}

/// Repeats every finished step as a cargo warning (shown with the build
/// output; nothing when every guest was up to date).
fn report_progress() {
    for line in DONE.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!("cargo:warning=built {line}");
    }
}

/// Stops the build with `message` shown as a cargo error, without the panic
/// backtrace noise.
pub fn fail(message: &str) -> ! {
    report_progress();
    println!("cargo::error={message}");
    std::process::exit(1);
}
