//! The manifest format both kernel devices keep next to a box's fds: what
//! the kernel cannot report about a box (its seal, and per entry its name,
//! kind, access and size when put), as the bytes of a memfd that travels
//! with the box.
//!
//! # Format, version 1
//!
//! Text, in NUL-terminated fields (the primitives of
//! [`crate::device::bytes`]):
//!
//! ```text
//! manifest = magic:"fdbox-manifest\0" version:"1\0" sealed entry*
//! sealed   = "1\0" | "0\0"
//! entry    = name "\0" kind "\0" access "\0" size "\0"
//! ```
//!
//! Entries come in name order. `kind` is `memfd`, `file`, `dir`,
//! `tcp-listener` or `tcp-connection`; `access` is `rwm` with `-` for what
//! is off; `size` is decimal, or empty if unknown. The magic and version
//! follow the versioning rule of [`crate::device::bytes`] (the version in
//! decimal): a reader refuses versions it does not know, and a new fdbox
//! reads every older version.

use crate::device::bytes::{Header, Reader, VersionCoding, Writer};
use crate::{Access, HandleKind, Name};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};

/// The manifest's magic and version.
static HEADER: Header = Header {
    format: "fdbox manifest",
    magic: b"fdbox-manifest\0",
    coding: VersionCoding::Decimal,
    oldest: 1,
    newest: 1,
};

/// The kinds a manifest names.
const KINDS: [HandleKind; 5] = [
    HandleKind::MemoryFile,
    HandleKind::File,
    HandleKind::Directory,
    HandleKind::TcpListener,
    HandleKind::TcpConnection,
];

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
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out);
    HEADER.write(&mut w);
    w.nul_field(if sealed { b"1" } else { b"0" });
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
        // Names hold no NUL (`Name`).
        for field in [name.as_str(), e.kind.as_str(), &access, &size] {
            w.nul_field(field.as_bytes());
        }
    }
    out
}

/// The seal and entries `bytes` hold, or why they are no manifest.
pub(super) fn decode(bytes: &[u8]) -> Result<(bool, BTreeMap<Name, Entry>), String> {
    let mut r = Reader::new(bytes);
    // Version 1 is the only one yet: it is the one read.
    HEADER.read(&mut r).map_err(|e| e.to_string())?;
    let sealed = match text_field(&mut r, "seal")? {
        "1" => true,
        "0" => false,
        other => return Err(format!("bad seal field {other:?}")),
    };
    let mut entries = BTreeMap::new();
    while !r.is_empty() {
        let mut text = |what| text_field(&mut r, what);
        let name = Name::new(text("entry name")?).map_err(|e| e.to_string())?;
        let kind = text("entry kind")?;
        let kind = KINDS
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| format!("unknown kind {kind:?}"))?;
        let access = text("entry access")?;
        let access = Access {
            read: access.contains('r'),
            write: access.contains('w'),
            mutate: access.contains('m'),
        };
        let size = text("entry size")?.parse().ok();
        entries.insert(name, Entry { kind, access, size });
    }
    Ok((sealed, entries))
}

/// A NUL-terminated field of UTF-8, read as `what`.
pub(super) fn text_field<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a str, String> {
    let field = r.nul_field(what).map_err(|e| e.to_string())?;
    std::str::from_utf8(field).map_err(|_| format!("{what} {field:?} is not UTF-8"))
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

    #[test]
    fn the_layout_is_version_1() {
        let entry = Entry {
            kind: HandleKind::MemoryFile,
            access: Access {
                read: true,
                write: true,
                mutate: false,
            },
            size: Some(8),
        };
        let name = Name::new("state").unwrap();
        assert_eq!(
            encode(true, [(&name, &entry)]),
            b"fdbox-manifest\x001\x001\x00state\x00memfd\x00rw-\x008\x00"
        );
        assert_eq!(encode(false, []), b"fdbox-manifest\x001\x000\x00");
    }

    #[test]
    fn unknown_versions_and_bad_manifests_are_named() {
        let reason = decode(b"fdbox-manifest\x002\x000\x00").unwrap_err();
        assert!(
            reason.contains("version 2") && reason.contains("(1)"),
            "{reason}"
        );
        let reason = decode(b"fdbox-manifest\x001\x001\x00state\x00memfd").unwrap_err();
        assert!(reason.contains("truncated"), "{reason}");
        let reason = decode(b"fdbox-manifest\x001\x001\x00state\x00pipe\x00r\x00\x00").unwrap_err();
        assert!(reason.contains("unknown kind \"pipe\""), "{reason}");
        let reason = decode(b"fdbox-manifest\x001\x002\x00").unwrap_err();
        assert!(reason.contains("bad seal"), "{reason}");
    }
}
