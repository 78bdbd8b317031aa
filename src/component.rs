//! Loading a component file, with errors that say what is wrong with it.

use anyhow::{Context, Result, bail};
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The preamble of a binary WebAssembly file: magic, then version and layer.
const MAGIC: &[u8] = b"\0asm";
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// Read and compile the component at `path`.
pub fn load(engine: &Engine, path: &Path) -> Result<Component> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(MAGIC) {
        if bytes.get(4..8) == Some(&CORE_MODULE_VERSION[..]) {
            bail!(
                "{} is a core WebAssembly module, not a component; build it for wasm32-wasip2 or wrap it with `wasm-tools component new`",
                path.display()
            );
        }
    } else if !looks_like_text(&bytes) {
        bail!(
            "{} is not a WebAssembly component (it does not start with \\0asm)",
            path.display()
        );
    }
    Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a valid component", path.display()))
}

/// Wasmtime also accepts the text format; anything else is surely not wasm.
fn looks_like_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes)
        .is_ok_and(|s| s.trim_start().starts_with('(') || s.trim_start().starts_with(";;"))
}
