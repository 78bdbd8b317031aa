//! The layering, checked on the source: the device layer and the holder
//! daemon do not depend on Wasmtime, and the daemon's modules depend on each
//! other in one direction only (docs/architecture.md).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn src(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel)
}

/// Lines that are code, not comments.
fn code(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_device_layer_and_the_daemon_do_not_depend_on_wasmtime() {
    for dir in ["device", "daemon"] {
        for file in rust_files(&src(dir)) {
            for line in code(&file) {
                assert!(
                    !line.contains("wasmtime") && !line.contains("crate::wasm"),
                    "{} depends on the Wasmtime layer: {line}",
                    file.display()
                );
            }
        }
    }
    // The control protocol is bytes only.
    for line in code(&src("control.rs")) {
        assert!(
            !line.contains("wasmtime") && !line.contains("crate::"),
            "control.rs depends on another layer: {line}"
        );
    }
    // And the device layer not on the daemon that serves it.
    for file in rust_files(&src("device")) {
        for line in code(&file) {
            assert!(
                !line.contains("crate::daemon::") || line.contains("[`crate::daemon"),
                "{} depends on the holder daemon: {line}",
                file.display()
            );
        }
    }
}

#[test]
fn the_daemon_modules_depend_on_each_other_in_one_direction() {
    // Each may use only those before it.
    let order = [
        "manifest", "fd_store", "budget", "owners", "holder", "session",
    ];
    for (i, module) in order.iter().enumerate() {
        let lines = code(&src(&format!("daemon/{module}.rs")));
        for later in &order[i + 1..] {
            for line in &lines {
                assert!(
                    !line.contains(&format!("super::{later}"))
                        && !line.contains(&format!("daemon::{later}")),
                    "daemon/{module}.rs uses the later module {later}: {line}"
                );
            }
        }
    }
}
