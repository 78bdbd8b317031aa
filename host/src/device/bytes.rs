//! Bytes read and written: the primitives of every fdbox byte format, and
//! the one versioning rule of those kept in memfds.
//!
//! The formats are the holder daemon's wire frames
//! ([`crate::device::daemon::wire`]) and manifest
//! ([`crate::daemon::manifest`]), and the kernel devices' box manifest
//! ([`crate::device::kernel`]'s `manifest`) and Live Update index. Each
//! module documents its own layout; this one holds what they share.
//!
//! # Primitives
//!
//! Integers are little-endian (`u8`, `u16`, `u32`, `u64`). A `str8` or
//! `str16` is a length (`u8` or `u16`) and that many bytes. A NUL-terminated
//! field is bytes without NUL, then a NUL (the kernel devices' text formats).
//! A [`Reader`] that runs out of bytes fails with [`Truncated`], naming what
//! it was reading; a [`Writer`] asked for a string longer than its length
//! prefix can say (or a NUL-terminated field holding a NUL) panics: callers
//! check their input first (names are at most 255 bytes, without NUL).
//!
//! # Versions of the formats kept in memfds
//!
//! A memfd outlives the process that wrote it, so it may be read by a newer
//! or an older fdbox. Each such format starts with a [`Header`]: magic bytes
//! that name the format, then its version, a `u32` (little-endian in binary
//! formats, decimal and NUL-terminated in text ones). The rule:
//!
//! - a writer writes the newest version it knows;
//! - a reader refuses a different magic ([`HeaderError::BadMagic`]) and a
//!   version it does not know, naming that version and the ones it reads
//!   ([`HeaderError::UnknownVersion`]): a version newer than it knows is one
//!   it cannot read safely, since a new version may add fields anywhere;
//! - a reader reads every older version it knows: a new fdbox never drops a
//!   version its predecessors wrote ([`Header::read`] says which version it
//!   found, and the format's decoder reads that one).

use std::fmt;

/// Reading ran out of bytes inside a field: the input is truncated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("truncated input: {0} missing")]
pub(crate) struct Truncated(pub &'static str);

/// Reads fields off the front of a byte string.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `bytes`, from their start.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The end of a format whose last field was read: `Err(n)` if `n`
    /// bytes follow it.
    pub fn finish(self) -> Result<(), usize> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(n),
        }
    }

    /// The next `n` bytes, read as `what`.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Truncated> {
        if self.bytes.len() < n {
            return Err(Truncated(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Truncated> {
        Ok(self.take(N, what)?.try_into().expect("N bytes"))
    }

    /// A byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, Truncated> {
        Ok(self.take(1, what)?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, Truncated> {
        self.array(what).map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, Truncated> {
        self.array(what).map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, Truncated> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A `str8`: a length byte and that many bytes.
    pub fn str8(&mut self, what: &'static str) -> Result<&'a [u8], Truncated> {
        let len = self.u8(what)?;
        self.take(len.into(), what)
    }

    /// A `str16`: a little-endian `u16` length and that many bytes.
    pub fn str16(&mut self, what: &'static str) -> Result<&'a [u8], Truncated> {
        let len = self.u16(what)?;
        self.take(len.into(), what)
    }

    /// A NUL-terminated field, without its NUL.
    pub fn nul_field(&mut self, what: &'static str) -> Result<&'a [u8], Truncated> {
        let len = self
            .bytes
            .iter()
            .position(|b| *b == 0)
            .ok_or(Truncated(what))?;
        let field = self.take(len, what)?;
        self.take(1, what)?;
        Ok(field)
    }
}

/// Appends fields to a byte string.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out }
    }

    /// Bytes as they are.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// A byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A `str8`. Panics if `s` is longer than 255 bytes.
    pub fn str8(&mut self, s: &[u8]) -> &mut Self {
        let len = u8::try_from(s.len())
            .unwrap_or_else(|_| panic!("a str8 of {} bytes (at most 255)", s.len()));
        self.u8(len).bytes(s)
    }

    /// A `str16`. Panics if `s` is longer than 65535 bytes.
    pub fn str16(&mut self, s: &[u8]) -> &mut Self {
        let len = u16::try_from(s.len())
            .unwrap_or_else(|_| panic!("a str16 of {} bytes (at most 65535)", s.len()));
        self.u16(len).bytes(s)
    }

    /// A NUL-terminated field. Panics if `s` holds a NUL.
    pub fn nul_field(&mut self, s: &[u8]) -> &mut Self {
        assert!(!s.contains(&0), "a NUL-terminated field holding a NUL");
        self.bytes(s).u8(0)
    }
}

/// How a [`Header`] writes its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VersionCoding {
    /// A little-endian `u32`.
    Le32,
    /// Decimal ASCII digits (no sign, no leading zero), NUL-terminated.
    Decimal,
}

/// The start of a format kept in a memfd: the versioning rule of the
/// module's doc.
#[derive(Debug)]
pub(crate) struct Header {
    /// What the format is called in errors, after "an" ("fdbox manifest").
    pub format: &'static str,
    /// Its first bytes.
    pub magic: &'static [u8],
    /// How its version follows the magic.
    pub coding: VersionCoding,
    /// The oldest version this build reads.
    pub oldest: u32,
    /// The version this build writes, and the newest it reads.
    pub newest: u32,
}

/// Why a [`Header`] could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// The input ended inside the header (and what there is of it matches).
    Truncated(Truncated),
    /// The input does not start with the magic: it is another format.
    BadMagic(&'static Header),
    /// The version field holds no version.
    BadVersion(&'static Header),
    /// A version this build does not read.
    UnknownVersion(&'static Header, u32),
}

impl PartialEq for Header {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Header {}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderError::Truncated(Truncated(what)) => {
                write!(f, "truncated header: {what} missing")
            }
            HeaderError::BadMagic(h) => write!(f, "not an {} (bad magic)", h.format),
            HeaderError::BadVersion(h) => write!(f, "{} with an unreadable version", h.format),
            HeaderError::UnknownVersion(h, version) => h.describe_version(version, f),
        }
    }
}

impl std::error::Error for HeaderError {}

impl From<Truncated> for HeaderError {
    fn from(t: Truncated) -> Self {
        HeaderError::Truncated(t)
    }
}

impl Header {
    /// Write the magic and the newest version.
    pub fn write(&self, w: &mut Writer<'_>) {
        w.bytes(self.magic);
        match self.coding {
            VersionCoding::Le32 => w.u32(self.newest),
            VersionCoding::Decimal => w.nul_field(self.newest.to_string().as_bytes()),
        };
    }

    /// Read the magic and the version, and return the version: one from
    /// `oldest` to `newest`, or an error naming what is wrong.
    pub fn read(&'static self, r: &mut Reader<'_>) -> Result<u32, HeaderError> {
        let rest = r.rest();
        let n = rest.len().min(self.magic.len());
        if rest[..n] != self.magic[..n] {
            return Err(HeaderError::BadMagic(self));
        }
        r.take(self.magic.len(), "magic")?;
        let version = match self.coding {
            VersionCoding::Le32 => r.u32("version")?,
            VersionCoding::Decimal => {
                let digits = r.nul_field("version")?;
                std::str::from_utf8(digits)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .filter(|v| v.to_string().as_bytes() == digits)
                    .ok_or(HeaderError::BadVersion(self))?
            }
        };
        if !(self.oldest..=self.newest).contains(&version) {
            return Err(HeaderError::UnknownVersion(self, version));
        }
        Ok(version)
    }

    /// Why `version` is not one this build reads.
    fn describe_version(&self, version: u32, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Header {
            format,
            oldest,
            newest,
            ..
        } = self;
        if version > *newest {
            write!(
                f,
                "{format} version {version} is newer than this fdbox reads ({newest}): run the fdbox that wrote it"
            )
        } else if oldest == newest {
            write!(
                f,
                "{format} version {version} is unknown: this fdbox reads version {newest}"
            )
        } else {
            write!(
                f,
                "{format} version {version} is unknown: this fdbox reads versions {oldest} to {newest}"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_fields_read_back() {
        let mut out = vec![9];
        Writer::new(&mut out)
            .u8(1)
            .u16(0x0302)
            .u32(0x0706_0504)
            .u64(0x0f0e_0d0c_0b0a_0908)
            .str8(b"ab")
            .str16(b"cde")
            .nul_field(b"fg")
            .bytes(b"h");
        assert_eq!(
            out,
            b"\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\
              \x02ab\x03\x00cdefg\x00h"
        );
        let mut r = Reader::new(&out);
        assert_eq!(r.take(1, "first").unwrap(), [9]);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 0x0302);
        assert_eq!(r.u32("c").unwrap(), 0x0706_0504);
        assert_eq!(r.u64("d").unwrap(), 0x0f0e_0d0c_0b0a_0908);
        assert_eq!(r.str8("e").unwrap(), b"ab");
        assert_eq!(r.str16("f").unwrap(), b"cde");
        assert_eq!(r.nul_field("g").unwrap(), b"fg");
        assert_eq!(r.rest(), b"h");
        assert!(!r.is_empty());
        assert_eq!(r.clone().finish(), Err(1));
        assert_eq!(r.take(1, "h").unwrap(), b"h");
        assert!(r.is_empty());
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn running_out_names_the_field() {
        type Read = fn(&mut Reader<'_>) -> Result<(), Truncated>;
        let reads: [(&[u8], Read); 7] = [
            (b"", |r| r.u8("the byte").map(drop)),
            (b"\x01", |r| r.u16("the byte").map(drop)),
            (b"\x01\x02\x03", |r| r.u32("the byte").map(drop)),
            (b"\x01\x02\x03\x04\x05\x06\x07", |r| {
                r.u64("the byte").map(drop)
            }),
            (b"\x03ab", |r| r.str8("the byte").map(drop)),
            (b"\x02", |r| r.str16("the byte").map(drop)),
            (b"no nul", |r| r.nul_field("the byte").map(drop)),
        ];
        for (bytes, read) in reads {
            let err = read(&mut Reader::new(bytes)).unwrap_err();
            assert_eq!(err, Truncated("the byte"), "{bytes:?}");
            assert_eq!(err.to_string(), "truncated input: the byte missing");
        }
    }

    #[test]
    #[should_panic(expected = "a str8 of 256 bytes")]
    fn an_overlong_str8_is_refused() {
        Writer::new(&mut Vec::new()).str8(&[b'x'; 256]);
    }

    #[test]
    #[should_panic(expected = "a str16 of 65536 bytes")]
    fn an_overlong_str16_is_refused() {
        Writer::new(&mut Vec::new()).str16(&vec![b'x'; 65536]);
    }

    #[test]
    #[should_panic(expected = "holding a NUL")]
    fn a_nul_in_a_nul_field_is_refused() {
        Writer::new(&mut Vec::new()).nul_field(b"a\0b");
    }

    static BINARY: Header = Header {
        format: "fdbox test",
        magic: b"TEST",
        coding: VersionCoding::Le32,
        oldest: 2,
        newest: 3,
    };

    static TEXT: Header = Header {
        format: "fdbox text",
        magic: b"text\0",
        coding: VersionCoding::Decimal,
        oldest: 1,
        newest: 1,
    };

    fn header(h: &Header) -> Vec<u8> {
        let mut out = Vec::new();
        h.write(&mut Writer::new(&mut out));
        out
    }

    #[test]
    fn headers_carry_the_newest_version() {
        assert_eq!(header(&BINARY), b"TEST\x03\0\0\0");
        assert_eq!(header(&TEXT), b"text\x001\0");
        for h in [&BINARY, &TEXT] {
            let mut bytes = header(h);
            bytes.push(7);
            let mut r = Reader::new(&bytes);
            assert_eq!(h.read(&mut r), Ok(h.newest));
            assert_eq!(r.rest(), [7]);
        }
    }

    #[test]
    fn headers_of_every_known_version_are_read() {
        let mut r = Reader::new(b"TEST\x02\0\0\0");
        assert_eq!(BINARY.read(&mut r), Ok(2));
    }

    #[test]
    fn unknown_versions_are_refused_naming_both() {
        let err = BINARY
            .read(&mut Reader::new(b"TEST\x04\0\0\0"))
            .unwrap_err();
        assert_eq!(err, HeaderError::UnknownVersion(&BINARY, 4));
        assert_eq!(
            err.to_string(),
            "fdbox test version 4 is newer than this fdbox reads (3): run the fdbox that wrote it"
        );
        let err = BINARY
            .read(&mut Reader::new(b"TEST\x01\0\0\0"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "fdbox test version 1 is unknown: this fdbox reads versions 2 to 3"
        );
        let err = TEXT.read(&mut Reader::new(b"text\x0012\0")).unwrap_err();
        assert_eq!(err, HeaderError::UnknownVersion(&TEXT, 12));
        assert!(err.to_string().contains("version 12"), "{err}");
        assert!(err.to_string().contains("(1)"), "{err}");
        let err = TEXT.read(&mut Reader::new(b"text\x000\0")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fdbox text version 0 is unknown: this fdbox reads version 1"
        );
    }

    #[test]
    fn other_formats_and_bad_versions_are_refused() {
        let err = BINARY
            .read(&mut Reader::new(b"TESS\x03\0\0\0"))
            .unwrap_err();
        assert_eq!(err, HeaderError::BadMagic(&BINARY));
        assert_eq!(err.to_string(), "not an fdbox test (bad magic)");
        // Shorter than the magic, and not a prefix of it.
        assert_eq!(
            TEXT.read(&mut Reader::new(b"tex!")),
            Err(HeaderError::BadMagic(&TEXT))
        );
        for bad in [
            &b"text\x00x\0"[..],
            b"text\x0001\0",
            b"text\x00+1\0",
            b"text\x00\0",
        ] {
            let err = TEXT.read(&mut Reader::new(bad)).unwrap_err();
            assert_eq!(err, HeaderError::BadVersion(&TEXT), "{bad:?}");
            assert_eq!(err.to_string(), "fdbox text with an unreadable version");
        }
    }

    #[test]
    fn every_prefix_of_a_header_is_truncated() {
        for h in [&BINARY, &TEXT] {
            let bytes = header(h);
            for len in 0..bytes.len() {
                let err = h.read(&mut Reader::new(&bytes[..len])).unwrap_err();
                assert!(matches!(err, HeaderError::Truncated(_)), "{len}: {err}");
                assert!(err.to_string().starts_with("truncated header: "), "{err}");
            }
        }
    }
}
