//! The kexec simulation (`--state-dir`): what KHO (Kexec HandOver) would
//! carry into the next kernel, written when the emulator exits and read when
//! it starts.
//!
//! As with the RFC's KHO support, only sealed boxes travel, only memfds in
//! them (the one kind with FDBox support), and they come back sealed;
//! unsealed boxes are dropped. What travels is each memfd's content: the
//! file offset and the memfd's own seals do not (a new memfd is filled, at
//! offset 0).
//!
//! Layout: `manifest.json` lists the boxes, their entries and each entry's
//! size and content file (`<generation>-<n>.mem`). A save writes new content
//! files first, then replaces the manifest by rename, then removes content
//! files the new manifest does not name: a crash at any point leaves the
//! old or the new state, never a mix.

use anyhow::{Context, Result, bail};
use fdbox_host::{Handle, HandleKind, MemoryDevice, Name};
use serde_json::json;
use std::fs::File;
use std::io::{Seek, Write};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

const MANIFEST: &str = "manifest.json";

/// A sealed box as saved: its name, and each memfd's name and content.
type SavedBox = (Name, Vec<(Name, Vec<u8>)>);
const VERSION: u64 = 1;

/// Put the boxes saved in `dir` into `device`, sealed. Returns how many.
/// No manifest (a first run) is an empty state.
pub fn restore(dir: &Path, device: &MemoryDevice) -> Result<usize> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let manifest: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if manifest["version"].as_u64() != Some(VERSION) {
        bail!(
            "{}: unknown version {}",
            path.display(),
            manifest["version"]
        );
    }
    let boxes = manifest["boxes"].as_array().cloned().unwrap_or_default();
    for b in &boxes {
        let box_name = Name::new(b["name"].as_str().unwrap_or_default())
            .with_context(|| format!("{}: bad box name", path.display()))?;
        let mut entries = Vec::new();
        for e in b["entries"].as_array().cloned().unwrap_or_default() {
            let entry = Name::new(e["name"].as_str().unwrap_or_default())
                .with_context(|| format!("{}: bad entry name in {box_name:?}", path.display()))?;
            let file = e["file"].as_str().unwrap_or_default();
            if file.is_empty() || file.contains('/') {
                bail!("{}: bad content file {file:?}", path.display());
            }
            let content = std::fs::read(dir.join(file))
                .with_context(|| format!("cannot read {}", dir.join(file).display()))?;
            if Some(content.len() as u64) != e["size"].as_u64() {
                bail!(
                    "{}: {file} is not the size the manifest says",
                    dir.display()
                );
            }
            let handle = Handle::new_memory_file(&entry)?;
            let fd = handle.fd().try_clone_to_owned()?;
            let mut memfd = File::from(fd);
            memfd.write_all(&content)?;
            memfd.rewind()?;
            entries.push((entry, handle));
        }
        device
            .insert_box(box_name.clone(), true, entries)
            .map_err(|refused| refused.error)
            .with_context(|| format!("cannot restore box {box_name:?}"))?;
    }
    Ok(boxes.len())
}

/// Write what would survive a kexec of `device` to `dir`. Returns how many
/// boxes.
pub fn save(dir: &Path, device: &MemoryDevice) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Copy contents under the device's lock (nothing else runs now anyway),
    // write files after.
    let saved: Vec<SavedBox> = device.inspect(|boxes| {
        boxes
            .into_iter()
            .filter(|b| b.sealed)
            .map(|b| {
                let entries = b
                    .entries
                    .into_iter()
                    .filter(|(_, h)| h.kind() == HandleKind::MemoryFile)
                    .filter_map(|(name, h)| match read_all(h) {
                        Ok(content) => Some((name.clone(), content)),
                        Err(e) => {
                            tracing::warn!("cannot read {name:?} of box {:?}: {e}", b.name);
                            None
                        }
                    })
                    .collect();
                (b.name.clone(), entries)
            })
            .collect()
    });
    let generation = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let mut keep = vec![MANIFEST.to_owned()];
    let mut boxes = Vec::new();
    for (box_name, entries) in &saved {
        let mut listed = Vec::new();
        for (entry, content) in entries {
            let file = format!("{generation}-{}.mem", keep.len());
            write_synced(&dir.join(&file), content)?;
            listed.push(json!({"name": entry.as_str(), "size": content.len(), "file": file}));
            keep.push(file);
        }
        boxes.push(json!({"name": box_name.as_str(), "entries": listed}));
    }
    let manifest = serde_json::to_vec_pretty(&json!({"version": VERSION, "boxes": boxes}))?;
    let temporary = dir.join(format!(".{MANIFEST}.{generation}"));
    write_synced(&temporary, &manifest)?;
    std::fs::rename(&temporary, dir.join(MANIFEST))
        .with_context(|| format!("cannot replace {}", dir.join(MANIFEST).display()))?;
    File::open(dir)?.sync_all()?;
    // Old content files, and leftovers of an interrupted save.
    for old in std::fs::read_dir(dir)? {
        let old = old?.file_name();
        let old = old.to_string_lossy();
        if old.ends_with(".mem") && !keep.iter().any(|k| *k == old) {
            let _ = std::fs::remove_file(dir.join(&*old));
        }
    }
    Ok(saved.len())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// A memfd's whole content, read without moving its offset.
fn read_all(handle: &Handle) -> std::io::Result<Vec<u8>> {
    let file = File::from(handle.fd().try_clone_to_owned()?);
    let size = file.metadata()?.len();
    let mut content = vec![0u8; usize::try_from(size).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut content, 0)?;
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdbox_host::Device;

    #[test]
    fn sealed_memfds_travel_and_the_rest_is_dropped() {
        let dir = std::env::temp_dir().join(format!("fdbox-state-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let device = MemoryDevice::new();
        let name = |s: &str| Name::new(s).unwrap();
        for b in ["kept", "open"] {
            device.create_box(&name(b)).unwrap();
            let memfd = Handle::new_memory_file(&name("m")).unwrap();
            File::from(memfd.fd().try_clone_to_owned().unwrap())
                .write_all(b"hello")
                .unwrap();
            device.put(&name(b), &name("m"), memfd).unwrap();
        }
        device.seal(&name("kept")).unwrap();
        assert_eq!(save(&dir, &device).unwrap(), 1);
        // Saving twice leaves one generation of content files.
        assert_eq!(save(&dir, &device).unwrap(), 1);
        let mems = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".mem")
            })
            .count();
        assert_eq!(mems, 1);

        let next = MemoryDevice::new();
        assert_eq!(restore(&dir, &next).unwrap(), 1);
        let boxes = next.boxes().unwrap();
        assert_eq!(boxes.len(), 1);
        assert!(boxes[0].sealed);
        next.unseal(&name("kept")).unwrap();
        let back = next.get(&name("kept"), &name("m")).unwrap();
        assert_eq!(read_all(&back).unwrap(), b"hello");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
