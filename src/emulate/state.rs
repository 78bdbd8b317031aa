//! The kexec simulation (`--state-dir`): what KHO (Kexec HandOver) would
//! carry into the next kernel, written when the emulator exits and read when
//! it starts.
//!
//! FDBox: as with the RFC's KHO support, only sealed boxes travel, only
//! memfds in them (the one kind with FDBox support), and they come back
//! sealed; unsealed boxes are dropped. What travels is each memfd's content:
//! the file offset and the memfd's own seals do not (a new memfd is filled,
//! at offset 0).
//!
//! LUO: the outgoing sessions open at the kexec moment travel, with each
//! preserved memfd's content, file offset and seals ([`SavedSession`]), as
//! Linux 7.2's memfd_luo carries them; they come back as incoming sessions
//! (see [`super::liveupdate`]).
//!
//! Layout: `manifest.json` names the device it was written for (`"device"`:
//! `"fdbox"`, the default for manifests older than the field, or
//! `"liveupdate"`; a state directory of the other device is refused) and
//! lists the boxes and their entries, or the sessions (names as arrays of
//! bytes, since a session name need not be UTF-8) and their files, each
//! with its size and content file (`<generation>-<n>.mem`). A save writes
//! new content files first, then replaces the manifest by rename, then
//! removes content files the new manifest does not name: a crash at any
//! point leaves the old or the new state, never a mix.

use anyhow::{Context, Result, bail};
use fdbox_host::{Handle, HandleKind, MemoryDevice, Name};
use serde_json::json;
use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

const MANIFEST: &str = "manifest.json";

/// A sealed box as saved: its name, and each memfd's name and content.
type SavedBox = (Name, Vec<(Name, Vec<u8>)>);
const VERSION: u64 = 1;
/// The `"device"` of a manifest written for FDBox, and of one without it.
pub const FDBOX: &str = "fdbox";
/// The `"device"` of a manifest written for LUO.
pub const LIVEUPDATE: &str = "liveupdate";

/// An outgoing LUO session as it travels: its name and its memfds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SavedSession {
    /// The session name (1 to 63 bytes, no NUL).
    pub name: Vec<u8>,
    /// Its preserved memfds.
    pub files: Vec<SavedFile>,
}

/// A preserved memfd as it travels.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SavedFile {
    /// Its token in the session.
    pub token: u64,
    /// Its whole content.
    pub content: Vec<u8>,
    /// Its file offset.
    pub offset: u64,
    /// Its memfd seals (`F_SEAL_*`) when it was preserved, re-applied in
    /// the next kernel; 0 in manifests older than the field.
    pub seals: u32,
}

/// The manifest in `dir`, checked to be of this version and written for
/// `device`; `None` if there is none (a first run: an empty state).
fn read_manifest(dir: &Path, device: &str) -> Result<Option<serde_json::Value>> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
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
    let written_for = manifest["device"].as_str().unwrap_or(FDBOX);
    if written_for != device {
        bail!(
            "{} holds the state of --device {written_for}, not of --device {device}; \
             use another --state-dir",
            path.display()
        );
    }
    Ok(Some(manifest))
}

/// The content file a manifest entry names, checked against its size.
fn read_content(dir: &Path, entry: &serde_json::Value) -> Result<Vec<u8>> {
    let file = entry["file"].as_str().unwrap_or_default();
    if file.is_empty() || file.contains('/') {
        bail!(
            "{}: bad content file {file:?}",
            dir.join(MANIFEST).display()
        );
    }
    let content = std::fs::read(dir.join(file))
        .with_context(|| format!("cannot read {}", dir.join(file).display()))?;
    if Some(content.len() as u64) != entry["size"].as_u64() {
        bail!(
            "{}: {file} is not the size the manifest says",
            dir.display()
        );
    }
    Ok(content)
}

/// Put the boxes saved in `dir` into `device`, sealed. Returns how many.
/// No manifest (a first run) is an empty state.
pub fn restore(dir: &Path, device: &MemoryDevice) -> Result<usize> {
    let Some(manifest) = read_manifest(dir, FDBOX)? else {
        return Ok(0);
    };
    let path = dir.join(MANIFEST);
    let boxes = manifest["boxes"].as_array().cloned().unwrap_or_default();
    for b in &boxes {
        let box_name = Name::new(b["name"].as_str().unwrap_or_default())
            .with_context(|| format!("{}: bad box name", path.display()))?;
        let mut entries = Vec::new();
        for e in b["entries"].as_array().cloned().unwrap_or_default() {
            let entry = Name::new(e["name"].as_str().unwrap_or_default())
                .with_context(|| format!("{}: bad entry name in {box_name:?}", path.display()))?;
            let content = read_content(dir, &e)?;
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
                    .filter_map(|(name, h)| match read_all(h.fd()) {
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
    let mut writer = Writer::new(dir)?;
    let mut boxes = Vec::new();
    for (box_name, entries) in &saved {
        let mut listed = Vec::new();
        for (entry, content) in entries {
            let mut e = writer.content(content)?;
            e.insert("name".into(), json!(entry.as_str()));
            listed.push(e);
        }
        boxes.push(json!({"name": box_name.as_str(), "entries": listed}));
    }
    writer.commit(FDBOX, "boxes", boxes)?;
    Ok(saved.len())
}

/// The LUO sessions saved in `dir`, to come back as incoming sessions. No
/// manifest (a first run) is none.
pub fn restore_sessions(dir: &Path) -> Result<Vec<SavedSession>> {
    let Some(manifest) = read_manifest(dir, LIVEUPDATE)? else {
        return Ok(Vec::new());
    };
    let path = dir.join(MANIFEST);
    let mut sessions = Vec::new();
    for s in manifest["sessions"].as_array().cloned().unwrap_or_default() {
        let name: Vec<u8> = serde_json::from_value(s["name"].clone())
            .with_context(|| format!("{}: bad session name", path.display()))?;
        let mut files = Vec::new();
        for f in s["files"].as_array().cloned().unwrap_or_default() {
            let (Some(token), Some(offset)) = (f["token"].as_u64(), f["offset"].as_u64()) else {
                bail!("{}: a file without token or offset", path.display());
            };
            let content = read_content(dir, &f)?;
            let seals = match &f["seals"] {
                serde_json::Value::Null => 0,
                seals => seals
                    .as_u64()
                    .and_then(|s| u32::try_from(s).ok())
                    .with_context(|| format!("{}: bad seals {seals}", path.display()))?,
            };
            files.push(SavedFile {
                token,
                content,
                offset,
                seals,
            });
        }
        sessions.push(SavedSession { name, files });
    }
    Ok(sessions)
}

/// Write the LUO sessions that would survive a kexec to `dir`.
pub fn save_sessions(dir: &Path, saved: &[SavedSession]) -> Result<()> {
    let mut writer = Writer::new(dir)?;
    let mut sessions = Vec::new();
    for session in saved {
        let mut files = Vec::new();
        for file in &session.files {
            let mut f = writer.content(&file.content)?;
            f.insert("token".into(), json!(file.token));
            f.insert("offset".into(), json!(file.offset));
            f.insert("seals".into(), json!(file.seals));
            files.push(f);
        }
        sessions.push(json!({"name": session.name, "files": files}));
    }
    writer.commit(LIVEUPDATE, "sessions", sessions)
}

/// One save: content files first, the manifest by rename last.
struct Writer<'a> {
    dir: &'a Path,
    /// Unique to this save, in every file name it writes.
    generation: String,
    /// The files the new manifest names.
    keep: Vec<String>,
}

impl<'a> Writer<'a> {
    fn new(dir: &'a Path) -> Result<Self> {
        fdbox_host::device::daemon::private::create_dir(dir, 0o700)?;
        let generation = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        Ok(Self {
            dir,
            generation,
            keep: vec![MANIFEST.to_owned()],
        })
    }

    /// Write a content file; its manifest entry so far (size and file).
    fn content(&mut self, content: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>> {
        let file = format!("{}-{}.mem", self.generation, self.keep.len());
        write_synced(&self.dir.join(&file), content)?;
        let mut entry = serde_json::Map::new();
        entry.insert("size".into(), json!(content.len()));
        entry.insert("file".into(), json!(file));
        self.keep.push(file);
        Ok(entry)
    }

    /// Replace the manifest with one for `device` whose `key` lists `items`,
    /// then remove the content files it does not name.
    fn commit(self, device: &str, key: &str, items: Vec<serde_json::Value>) -> Result<()> {
        let dir = self.dir;
        let mut manifest = serde_json::Map::new();
        manifest.insert("version".into(), json!(VERSION));
        manifest.insert("device".into(), json!(device));
        manifest.insert(key.into(), json!(items));
        let manifest = serde_json::to_vec_pretty(&manifest)?;
        let temporary = dir.join(format!(".{MANIFEST}.{}", self.generation));
        write_synced(&temporary, &manifest)?;
        std::fs::rename(&temporary, dir.join(MANIFEST))
            .with_context(|| format!("cannot replace {}", dir.join(MANIFEST).display()))?;
        File::open(dir)?.sync_all()?;
        // Old content files, and leftovers of an interrupted save.
        for old in std::fs::read_dir(dir)? {
            let old = old?.file_name();
            let old = old.to_string_lossy();
            if old.ends_with(".mem") && !self.keep.iter().any(|k| *k == old) {
                let _ = std::fs::remove_file(dir.join(&*old));
            }
        }
        Ok(())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// A memfd's whole content, read without moving its offset.
pub fn read_all(fd: BorrowedFd<'_>) -> std::io::Result<Vec<u8>> {
    let file = File::from(fd.try_clone_to_owned()?);
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
        assert_eq!(read_all(back.fd()).unwrap(), b"hello");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sessions_travel_and_the_other_device_is_refused() {
        let dir = std::env::temp_dir().join(format!("fdbox-state-luo-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let saved = vec![SavedSession {
            name: b"s\xff".to_vec(),
            files: vec![SavedFile {
                token: 7,
                content: b"hello".to_vec(),
                offset: 2,
                seals: 0x5,
            }],
        }];
        save_sessions(&dir, &saved).unwrap();
        assert_eq!(restore_sessions(&dir).unwrap(), saved);
        let refused = restore(&dir, &MemoryDevice::new()).unwrap_err();
        assert!(
            format!("{refused:#}").contains("--device liveupdate"),
            "{refused:#}"
        );
        save(&dir, &MemoryDevice::new()).unwrap();
        assert!(restore_sessions(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
