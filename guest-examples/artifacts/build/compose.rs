//! Compositions: components made by plugging the exports of one component
//! into the imports of another, with the `wac-graph` crate (the library
//! behind `wac plug`), so no `wac` binary has to be installed.
//!
//! - `SCOPED_BOX`: the `scoped-box` wrapper itself (built by the Rust guest
//!   workspace, `guest-examples/rust/scoped-box`): imports and exports
//!   `fdbox:fdbox/boxes@0.1.0`, scoping box names under a prefix.
//! - `PROBE_SCOPED`: `probe` with the wrapper plugged into its import of
//!   `fdbox:fdbox/boxes@0.1.0`, i.e. `wac plug --plug scoped_box.wasm
//!   probe.wasm`.
//!
//! The prefix is fixed when the wrapper is compiled: `FDBOX_SCOPE` in the
//! environment of the build (the nested cargo of `build/rust.rs` inherits
//! it), default [`DEFAULT_SCOPE`].

use super::{Artifact, Context, fail};
use std::env;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};

/// The wrapper's prefix when `FDBOX_SCOPE` is not set; must match
/// `DEFAULT_PREFIX` in `guest-examples/rust/scoped-box/src/lib.rs`.
const DEFAULT_SCOPE: &str = "tenant-a.";

/// Build the compositions from the Rust guests' artifacts (`rust`, as
/// returned by `rust::build`); their artifacts.
pub fn build(ctx: &Context, rust: &[Artifact]) -> Vec<Artifact> {
    let wrapper_dir = ctx.repo.join("guest-examples/rust/scoped-box");
    println!("cargo:rerun-if-changed={}", wrapper_dir.display());
    println!("cargo:rerun-if-env-changed=FDBOX_SCOPE");
    let scope = env::var("FDBOX_SCOPE").unwrap_or_else(|_| DEFAULT_SCOPE.to_owned());

    let probe = find(rust, "PROBE");
    // The wrapper is a member of the same guest workspace, so the nested
    // build of `build/rust.rs` put it next to the probe (a cdylib: its file
    // name has `_` where the package name has `-`).
    let wrapper = probe.with_file_name("scoped_box.wasm");
    if !wrapper.is_file() {
        fail(&format!(
            "{} is missing: is `scoped-box` a member of guest-examples/rust/Cargo.toml?",
            wrapper.display()
        ));
    }

    let dir = ctx.target_dir.join("guest-examples/composed");
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", dir.display())));
    let probe_scoped = dir.join("probe-scoped.wasm");
    let bytes = plug(&wrapper, probe).unwrap_or_else(|e| {
        fail(&format!(
            "plugging {} into {} failed: {e}",
            wrapper.display(),
            probe.display()
        ))
    });
    write_atomically(&probe_scoped, &bytes);

    vec![
        Artifact::new(
            "SCOPED_BOX",
            wrapper,
            &format!(
                "The `scoped-box` wrapper (a library component, not a command): imports \
                 and exports `fdbox:fdbox/boxes@0.1.0`, rewriting every box name `n` \
                 as `{scope}n` on the way in and stripping `{scope}` on the way out \
                 (`list-boxes` shows only boxes under `{scope}`). Built with prefix \
                 `{scope}` (`FDBOX_SCOPE`)."
            ),
        ),
        Artifact::new(
            "PROBE_SCOPED",
            probe_scoped,
            &format!(
                "[`PROBE`] with [`SCOPED_BOX`] plugged into its import of \
                 `fdbox:fdbox/boxes@0.1.0` (`wac plug`): the same steps, but box \
                 `n` is the host's box `{scope}n`, and boxes outside `{scope}` \
                 cannot be reached whatever the host grants. Prefix: `{scope}`."
            ),
        ),
    ]
}

/// The path of the artifact named `constant`.
fn find<'a>(artifacts: &'a [Artifact], constant: &str) -> &'a Path {
    artifacts
        .iter()
        .find(|a| a.constant == constant)
        .map(|a| a.path.as_path())
        .unwrap_or_else(|| fail(&format!("no artifact {constant} to compose")))
}

/// `wac plug --plug PLUG SOCKET`: instantiates SOCKET with every export of
/// PLUG that matches (by name and type) one of its imports, exports what
/// SOCKET exports, and imports what either still needs. Both components
/// are embedded, so the result stands alone.
fn plug(plug: &Path, socket: &Path) -> Result<Vec<u8>, String> {
    let mut graph = CompositionGraph::new();
    let mut package = |name: &str, path: &Path| -> Result<_, String> {
        let package = Package::from_file(name, None, path, graph.types_mut())
            .map_err(|e| format!("{e:#}"))?;
        graph.register_package(package).map_err(|e| chain(&e))
    };
    let plug = package("fdbox:scoped-box", plug)?;
    let socket = package("fdbox:socket", socket)?;
    wac_graph::plug(&mut graph, vec![plug], socket).map_err(|e| chain(&e))?;
    // `validate` (on by default) checks the result with wasmparser: a
    // composition whose types do not line up fails here, not at run time.
    graph
        .encode(EncodeOptions::default())
        .map_err(|e| chain(&e))
}

/// `error: cause: cause ...`.
fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Writes `bytes` to `path` through a temporary file and a rename: builds
/// of other profiles share the target directory and may compose at the same
/// time, and a reader must never see half a component.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = PathBuf::from(format!("{}.{}.tmp", path.display(), std::process::id()));
    fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
}
