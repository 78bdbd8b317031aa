//! The C guests: `guest-examples/c`, compiled with Debian's clang 19 against
//! Debian's wasi-libc (`wasm32-wasi`, WASI preview 1 only) and turned into
//! components here, in the build script, with no CLI besides clang:
//!
//! 1. `wit-bindgen-c` (as a library) generates the C bindings of the world
//!    `fdbox:fdbox/command` (`wit/fdbox.wit`): `command.h`, `command.c` and
//!    `command_component_type.o`, the object whose custom section describes
//!    the world to `wit-component`. Next to them goes `wit_names.h`, the case
//!    names of the two `error-code` enums taken from the same WIT, which the
//!    guests print as the Rust guests do.
//! 2. `clang-19 --target=wasm32-wasi -mexec-model=reactor` links each guest
//!    with the bindings into a core module. *Reactor*: the guest implements
//!    the world's `wasi:cli/run@0.2.12` export itself
//!    (`exports_wasi_cli_run_run`), so there is no `main` or `_start`;
//!    `wit-component` calls the module's `_initialize` (wasi-libc's
//!    constructors) before the export.
//! 3. `wit-component`'s `ComponentEncoder` makes the component, with the
//!    *reactor* preview-1 adapter of the `wasi-preview1-component-adapter-provider`
//!    crate (the same Wasmtime release as the host) for wasi-libc's preview-1
//!    imports. The command adapter would export a `wasi:cli/run` of its own
//!    around `_start`, next to the guest's. The result is a `wasi:cli`
//!    command: WASI 0.2 and fdbox imports, the `run` export.
//!
//! The generated files and the components go to
//! `<target>/guest-examples/c/`; the toolchain comes from
//! `guest-examples/toolchains.sh`.

use super::{Artifact, Context, fail, progress};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::wit_parser::{PackageId, Resolve, TypeDefKind};
use wit_component::ComponentEncoder;

/// The C compiler (Debian package `clang-19`, which also needs `lld-19` for
/// `wasm-ld` and `libclang-rt-19-dev-wasm32` for the builtins).
const CLANG: &str = "clang-19";

/// The target of Debian's wasi-libc (package `wasi-libc`).
const TARGET: &str = "wasm32-wasi";

/// The world the guests implement, in package `fdbox:fdbox` (`wit/`). Its
/// name is also the prefix of the generated files and of the world-wide C
/// types (`command_string_t`).
const WORLD: &str = "command";

/// The guest sources shared by every guest, in `guest-examples/c`.
const SHARED_SOURCES: &[&str] = &["fdbox_guest.c"];

/// The guests: constant name, source in `guest-examples/c`, component name,
/// documentation.
const GUESTS: &[(&str, &str, &str, &str)] = &[
    (
        "COUNTER_C",
        "counter.c",
        "counter-c",
        "The `counter` command in C (`guest-examples/c/counter.c`): the same \
         arguments, output, exit codes and box layout as [`COUNTER`] (a \
         little-endian `u64` in a memory file, entry `state` of box `counter`), \
         so either continues a count the other left.",
    ),
    (
        "BOXED_FILE_C",
        "boxed_file.c",
        "boxed-file-c",
        "The `boxed-file` command in C (`guest-examples/c/boxed_file.c`): \
         [`BOXED_FILE`] line for line (box `files`, entry `notes`, \
         `/data/notes.txt`).",
    ),
];

/// Build the C guests; their artifacts.
pub fn build(ctx: &Context) -> Vec<Artifact> {
    let sources = ctx.repo.join("guest-examples/c");
    let wit = ctx.repo.join("wit");
    for path in [&sources, &wit] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    check_toolchain();

    let out = ctx.target_dir.join("guest-examples/c");
    let bindings = out.join("bindings");
    generate_bindings(&wit, &bindings);

    GUESTS
        .iter()
        .map(|(constant, source, name, doc)| {
            let started = std::time::Instant::now();
            progress(&format!("C: {name}.wasm ..."), false);
            let core = out.join(format!("{name}.core.wasm"));
            compile(&sources, source, &bindings, &core);
            let component = out.join(format!("{name}.wasm"));
            componentize(&core, &component);
            let seconds = started.elapsed().as_secs_f64();
            progress(&format!("C: {name}.wasm in {seconds:.1} s"), true);
            Artifact::new(constant, component, doc)
        })
        .collect()
}

/// Fails early, with the fix, when clang, the linker, the builtins or
/// wasi-libc are missing (rather than with clang's own error for the first
/// file it cannot find).
fn check_toolchain() {
    const FIX: &str = "Install the C guest toolchain (Debian packages clang-19, lld-19, \
                       libclang-rt-19-dev-wasm32 and wasi-libc) with: \
                       bash guest-examples/toolchains.sh";
    let clang = |arg: &str| {
        Command::new(CLANG)
            .arg(format!("--target={TARGET}"))
            .arg(arg)
            .output()
    };
    match clang("--version") {
        Ok(output) if output.status.success() => {}
        Ok(output) => fail(&format!(
            "{CLANG} --version failed ({}), and the C guest components are built with it. {FIX}",
            output.status
        )),
        Err(e) => fail(&format!(
            "cannot run {CLANG} ({e}), and the C guest components are built with it. {FIX}"
        )),
    }
    // clang prints an absolute path for what it finds, the bare name otherwise.
    let found = |arg: &str, what: &str| {
        let output = clang(arg).unwrap_or_else(|e| panic!("cannot run {CLANG}: {e}"));
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if !output.status.success() || !path.is_absolute() || !path.exists() {
            fail(&format!(
                "{CLANG} finds no {what} for {TARGET} ({CLANG} --target={TARGET} {arg} \
                 prints {:?}). {FIX}",
                path.display().to_string(),
            ));
        }
    };
    found("-print-prog-name=wasm-ld", "linker wasm-ld (lld-19)");
    found("-print-file-name=libc.a", "wasi-libc (libc.a)");
    found(
        "-print-file-name=crt1-reactor.o",
        "wasi-libc (crt1-reactor.o)",
    );
    found(
        "-print-libgcc-file-name",
        "compiler builtins (libclang-rt-19-dev-wasm32)",
    );
}

/// Generates the C bindings of [`WORLD`] and `wit_names.h` into `dir`.
fn generate_bindings(wit: &Path, dir: &Path) {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(wit)
        .unwrap_or_else(|e| fail(&format!("cannot parse {}: {e:#}", wit.display())));
    let world = resolve
        .select_world(&[package], Some(WORLD))
        .unwrap_or_else(|e| fail(&format!("no world {WORLD} in {}: {e:#}", wit.display())));

    let names = wit_names(&resolve, package);

    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .unwrap_or_else(|e| fail(&format!("wit-bindgen-c failed: {e:#}")));

    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let files = files
        .iter()
        .map(|(name, bytes)| (name.to_owned(), bytes.to_vec()))
        .chain([("wit_names.h".to_owned(), names.into_bytes())]);
    for (name, bytes) in files {
        write_if_changed(&dir.join(name), &bytes);
    }
}

/// `wit_names.h`: the case names of `fdbox:fdbox/types.error-code` and
/// `wasi:filesystem/types.error-code`, in WIT order (the values the
/// bindings give the cases), as C string arrays.
fn wit_names(resolve: &Resolve, fdbox: PackageId) -> String {
    let filesystem = resolve
        .packages
        .iter()
        .find(|(_, p)| p.name.namespace == "wasi" && p.name.name == "filesystem")
        .map(|(id, _)| id)
        .unwrap_or_else(|| fail("the fdbox WIT has no wasi:filesystem package"));
    let mut code = String::from(
        "// Generated by guest-examples/artifacts/build/c.rs from the WIT. DO NOT EDIT!\n",
    );
    for (package, array) in [
        (fdbox, "FDBOX_ERROR_CODE_NAMES"),
        (filesystem, "WASI_FILESYSTEM_ERROR_CODE_NAMES"),
    ] {
        let name = &resolve.packages[package].name;
        let cases = resolve.packages[package]
            .interfaces
            .get("types")
            .and_then(|&interface| resolve.interfaces[interface].types.get("error-code"))
            .and_then(|&ty| match &resolve.types[ty].kind {
                TypeDefKind::Enum(e) => Some(&e.cases),
                _ => None,
            })
            .unwrap_or_else(|| fail(&format!("{name} has no enum types.error-code")));
        writeln!(code, "\n// The cases of `{name}/types.error-code`.").unwrap();
        writeln!(code, "static const char *const {array}[] = {{").unwrap();
        for case in cases {
            writeln!(code, "    {:?},", case.name).unwrap();
        }
        writeln!(code, "}};").unwrap();
    }
    code
}

/// Compiles and links `source` (in `sources`), the shared sources and the
/// bindings into the core module `core`.
fn compile(sources: &Path, source: &str, bindings: &Path, core: &Path) {
    let mut cc = Command::new(CLANG);
    cc.arg(format!("--target={TARGET}"))
        .args(["-mexec-model=reactor", "-O2", "-std=c11"])
        .args(["-Wall", "-Wextra", "-Werror"])
        // Generated code, not held to the guests' warnings.
        .arg("-Wno-unused-parameter")
        .arg("-I")
        .arg(sources)
        .arg("-I")
        .arg(bindings)
        .arg(sources.join(source));
    for shared in SHARED_SOURCES {
        cc.arg(sources.join(shared));
    }
    cc.arg(bindings.join(format!("{WORLD}.c")))
        .arg(bindings.join(format!("{WORLD}_component_type.o")))
        .arg("-o")
        .arg(core)
        // Build-script stdout is cargo's instruction channel.
        .stdout(Stdio::from(std::io::stderr()));
    let status = cc
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {CLANG}: {e}")));
    if !status.success() {
        fail(&format!(
            "compiling the C guest {source} failed ({status}); see the output above, \
             or run: {cc:?}"
        ));
    }
}

/// Makes the component `component` of the core module `core`, adapting its
/// WASI preview-1 imports to WASI 0.2.
fn componentize(core: &Path, component: &Path) {
    let module = fs::read(core).unwrap_or_else(|e| panic!("cannot read {}: {e}", core.display()));
    let bytes = ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .and_then(|encoder| {
            encoder.adapter(
                WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .and_then(|encoder| encoder.encode())
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot make a component of {}: {e:#}",
                core.display()
            ))
        });
    write_if_changed(component, &bytes);
}

/// Writes `bytes` to `path` unless it holds them already, so the mtime
/// changes only with the content.
fn write_if_changed(path: &Path, bytes: &[u8]) {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return;
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
