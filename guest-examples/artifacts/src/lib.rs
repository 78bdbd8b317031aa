//! Paths of the example guest components in `guest-examples/rust`.
//!
//! The build script compiles them (`cargo build --release --target
//! wasm32-wasip2`) so that tests and benchmarks of the host only have to
//! depend on this crate to get fresh components:
//!
//! ```
//! // e.g. `Component::from_file(&engine, fdbox_guest_artifacts::PROBE)?`
//! let probe = std::path::Path::new(fdbox_guest_artifacts::PROBE);
//! assert!(probe.is_absolute() && probe.exists());
//! ```
//!
//! Each constant is the absolute path of a component binary.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// One of the two example scenarios written in one language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScenarioGuest {
    /// `counter` or `boxed-file`.
    pub scenario: &'static str,
    /// `Rust`, `C`, `Python` or `JavaScript`.
    pub language: &'static str,
    /// The component.
    pub path: &'static str,
}

/// The two scenarios (a counter in a boxed memory file; a boxed host file)
/// in every language built here, from the artifacts named `COUNTER` (Rust),
/// `COUNTER_C`, `COUNTER_PY`, `COUNTER_JS`, and likewise `BOXED_FILE*`.
pub fn scenario_guests() -> Vec<ScenarioGuest> {
    ALL.iter()
        .filter_map(|(name, path)| {
            let (scenario, rest) = if let Some(rest) = name.strip_prefix("COUNTER") {
                ("counter", rest)
            } else if let Some(rest) = name.strip_prefix("BOXED_FILE") {
                ("boxed-file", rest)
            } else {
                return None;
            };
            let language = match rest {
                "" => "Rust",
                "_C" => "C",
                "_PY" => "Python",
                "_JS" => "JavaScript",
                _ => return None,
            };
            Some(ScenarioGuest {
                scenario,
                language,
                path,
            })
        })
        .collect()
}
