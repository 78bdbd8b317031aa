//! Generates the Wasmtime bindings of `wit/` into `$OUT_DIR/bindings.rs`.
//!
//! This is exactly what `wasmtime::component::bindgen!` does, with the same
//! generator and options, plus one edit: every module bindgen! generates
//! starts with `use wasmtime::component::__internal::Box;`, and the WIT
//! resource `box` becomes a Rust type `Box` in that same module, which is a
//! name clash no `with:` mapping avoids. Our bindings are synchronous and never
//! use that import, so it is dropped.

use std::path::Path;
use wasmtime_internal_wit_bindgen::{FunctionConfig, FunctionFilter, FunctionFlags, Opts};
use wit_parser::Resolve;

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    println!("cargo:rerun-if-changed={}", wit.display());

    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_path(&wit).expect("parse wit/");
    let world = resolve
        .select_world(&[pkg], Some("fdbox:fdbox/imports"))
        .expect("world fdbox:fdbox/imports");

    let mut imports = FunctionConfig::new();
    imports.push(FunctionFilter::Default, FunctionFlags::TRAPPABLE);
    let opts = Opts {
        imports,
        with: [
            // WASI's types are wasmtime-wasi's own, so the descriptors fdbox
            // takes and returns are the ones the guest's WASI imports use.
            ("wasi", "wasmtime_wasi::p2::bindings"),
            ("fdbox:fdbox/boxes.box", "crate::wasm::bindings::BoxRef"),
            (
                "fdbox:fdbox/boxes.box-fd",
                "crate::wasm::bindings::BoxFdRef",
            ),
            (
                "fdbox:fdbox/sockets.tcp-listener",
                "crate::wasm::sockets::TcpListener",
            ),
            (
                "fdbox:fdbox/sockets.tcp-connection",
                "crate::wasm::sockets::TcpConnection",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        // Required by the `wasi` mapping above, as for bindgen!.
        require_store_data_send: true,
        ..Opts::default()
    };
    let code = opts
        .generate(&mut resolve, world)
        .expect("generate bindings");

    let clashing_import = "use wasmtime::component::__internal::Box;";
    assert!(
        code.contains(clashing_import),
        "bindgen output changed: re-check the `box` workaround in host/build.rs"
    );
    let code = code.replace(clashing_import, "");

    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("bindings.rs");
    std::fs::write(out, code).expect("write bindings.rs");
}
