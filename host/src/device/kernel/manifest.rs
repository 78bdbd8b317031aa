//! The manifest format both kernel devices keep next to a box's fds: what
//! the kernel cannot report about a box (its seal, and per entry its name,
//! kind, access and size when put), as the bytes of a memfd that travels
//! with the box.
//!
//! Format (version 1): the magic `fdbox-manifest\01\0`, the seal (`1` or
//! `0`), then per entry, in name order, four NUL-terminated fields: name,
//! kind (`memfd`, `file`, `dir`), access (`rwm` with `-` for what is off)
//! and size (decimal, or empty if unknown).

use crate::{Access, HandleKind, Name};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};

/// The first bytes of a manifest, with its format version.
const MAGIC: &[u8] = b"fdbox-manifest\x001\x00";

/// What a manifest keeps of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub kind: HandleKind,
    pub access: Access,
    pub size: Option<u64>,
}

impl Entry {
    /// The entry a handle makes, with its size now.
    pub fn of(handle: &crate::Handle) -> Self {
        Entry {
            kind: handle.kind(),
            access: handle.access(),
            size: rustix::fs::fstat(handle.fd())
                .ok()
                .map(|s| s.st_size as u64),
        }
    }
}

/// The manifest of a box sealed or not, holding `entries`.
pub(super) fn encode<'a>(
    sealed: bool,
    entries: impl IntoIterator<Item = (&'a Name, &'a Entry)>,
) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(if sealed { b"1\0" } else { b"0\0" });
    for (name, e) in entries {
        let access: String = [
            (e.access.read, 'r'),
            (e.access.write, 'w'),
            (e.access.mutate, 'm'),
        ]
        .iter()
        .map(|&(on, c)| if on { c } else { '-' })
        .collect();
        let size = e.size.map(|s| s.to_string()).unwrap_or_default();
        for field in [name.as_str(), e.kind.as_str(), &access, &size] {
            out.extend_from_slice(field.as_bytes());
            out.push(0);
        }
    }
    out
}

/// The seal and entries `bytes` hold, or why they are no manifest.
pub(super) fn decode(bytes: &[u8]) -> Result<(bool, BTreeMap<Name, Entry>), String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("not an fdbox manifest of version 1")?;
    let mut fields = rest.split(|b| *b == 0);
    let sealed = match fields.next() {
        Some(b"1") => true,
        Some(b"0") => false,
        _ => return Err("bad seal field".into()),
    };
    let mut entries = BTreeMap::new();
    while let Some(name) = fields.next() {
        if name.is_empty() && fields.clone().next().is_none() {
            break; // the final NUL
        }
        let text = |f: Option<&[u8]>| {
            f.and_then(|f| std::str::from_utf8(f).ok())
                .map(str::to_owned)
                .ok_or_else(|| "truncated entry".to_string())
        };
        let name = Name::new(text(Some(name))?).map_err(|e| e.to_string())?;
        let kind = match text(fields.next())?.as_str() {
            "memfd" => HandleKind::MemoryFile,
            "file" => HandleKind::File,
            "dir" => HandleKind::Directory,
            "tcp-listener" => HandleKind::TcpListener,
            "tcp-connection" => HandleKind::TcpConnection,
            other => return Err(format!("unknown kind {other:?}")),
        };
        let access = text(fields.next())?;
        let access = Access {
            read: access.contains('r'),
            write: access.contains('w'),
            mutate: access.contains('m'),
        };
        let size = text(fields.next())?.parse().ok();
        entries.insert(name, Entry { kind, access, size });
    }
    Ok((sealed, entries))
}

/// A new, empty manifest memfd.
pub(super) fn new_file() -> Result<OwnedFd, Errno> {
    rustix::fs::memfd_create("fdbox-manifest", rustix::fs::MemfdFlags::CLOEXEC)
}

/// The whole content of `file`, read from offset 0 (its offset untouched).
pub(super) fn read_file(file: impl AsFd) -> Result<Vec<u8>, Errno> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = rustix::io::pread(&file, &mut buf, bytes.len() as u64)?;
        if n == 0 {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&buf[..n]);
    }
}

/// Make `bytes` the whole content of `file`, in place.
pub(super) fn write_file(file: impl AsFd, bytes: &[u8]) -> Result<(), Errno> {
    rustix::fs::ftruncate(&file, 0)?;
    let mut done = 0;
    while done < bytes.len() {
        done += rustix::io::pwrite(&file, &bytes[done..], done as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip() {
        let mut entries = BTreeMap::new();
        for (name, kind, size) in [
            ("state", HandleKind::MemoryFile, Some(8)),
            ("with\nnewline and\ttab", HandleKind::File, None),
            ("dir", HandleKind::Directory, Some(0)),
        ] {
            let access = Access {
                read: true,
                write: name == "state",
                mutate: kind != HandleKind::Directory,
            };
            entries.insert(Name::new(name).unwrap(), Entry { kind, access, size });
        }
        let file = new_file().unwrap();
        write_file(&file, &encode(true, &entries)).unwrap();
        assert_eq!(
            decode(&read_file(&file).unwrap()).unwrap(),
            (true, entries.clone())
        );
        // Rewritten shorter, in place: no stale tail.
        write_file(&file, &encode(false, &BTreeMap::new())).unwrap();
        assert_eq!(
            decode(&read_file(&file).unwrap()).unwrap(),
            (false, BTreeMap::new())
        );
    }

    #[test]
    fn a_foreign_file_is_no_manifest() {
        let reason = decode(b"not a manifest").unwrap_err();
        assert!(reason.contains("not an fdbox manifest"), "{reason}");
    }
}
