//! Running a componentizer (componentize-py, ComponentizeJS) for one guest:
//! skipped when its inputs are unchanged, written aside and renamed so an
//! interrupted build leaves no component that looks complete.

use super::{fail, progress};
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// One componentize step: `program args -o component`.
pub struct Step<'a> {
    /// The tool's name, for messages.
    pub tool: &'a str,
    /// What to run.
    pub program: &'a Path,
    /// Its arguments, before `-o COMPONENT`.
    pub args: Vec<PathBuf>,
    /// Files and directories whose content decides whether to run again
    /// (sources, `wit/`, the tool's own files); `__pycache__` is skipped.
    pub inputs: Vec<&'a Path>,
    /// The component to write.
    pub component: &'a Path,
}

impl Step<'_> {
    /// Run the step, unless the component was built from the same inputs
    /// (a fingerprint next to it: a componentize takes seconds).
    pub fn run(&self) {
        let stamp = self.component.with_extension("wasm.fingerprint");
        let fingerprint = self.fingerprint();
        if self.component.is_file()
            && fs::read_to_string(&stamp).ok().as_deref() == Some(&fingerprint)
        {
            return;
        }
        let _ = fs::remove_file(&stamp);
        let partial = self.component.with_extension("wasm.partial");
        let _ = fs::remove_file(&partial);
        let name = self
            .component
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        progress(&format!("{}: {name} ...", self.tool), false);
        let started = Instant::now();
        let status = Command::new(self.program)
            .args(&self.args)
            .arg("-o")
            .arg(&partial)
            // Build-script stdout is cargo's instruction channel.
            .stdout(Stdio::from(std::io::stderr()))
            .status()
            .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", self.program.display())));
        if !status.success() || !partial.is_file() {
            fail(&format!(
                "{} failed ({status}) for {}; see the output above, or run: {} {} -o {}",
                self.tool,
                self.component.display(),
                self.program.display(),
                self.args
                    .iter()
                    .map(|a| a.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                self.component.display(),
            ));
        }
        fs::rename(&partial, self.component)
            .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", self.component.display())));
        fs::write(&stamp, fingerprint)
            .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", stamp.display())));
        progress(
            &format!(
                "{}: {name} in {:.1} s",
                self.tool,
                started.elapsed().as_secs_f64()
            ),
            true,
        );
    }

    /// A hash of the program, the arguments and every input (names and
    /// contents).
    fn fingerprint(&self) -> String {
        let mut hasher = DefaultHasher::new();
        for arg in
            std::iter::once(self.program.as_os_str()).chain(self.args.iter().map(|a| a.as_os_str()))
        {
            hasher.write(arg.as_encoded_bytes());
            hasher.write_u8(0);
        }
        for input in &self.inputs {
            hash_tree(&mut hasher, input);
        }
        format!("{:016x}", hasher.finish())
    }
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
