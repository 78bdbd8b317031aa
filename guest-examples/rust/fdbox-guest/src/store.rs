//! A key space: a hash table that lives in a memory file, read and
//! written in place through `wasi:filesystem` (`descriptor.read` and
//! `descriptor.write` at offsets), so the next instance takes it over as it
//! is: one 64-byte header read, whatever the size of the data. One copy for
//! the service guests that keep keys (`resp-service`, `http-service`); the
//! layout is the same in every version of them.
//!
//! # Layout (all integers little-endian)
//!
//! | offset                  | size        | content                                        |
//! |-------------------------|-------------|------------------------------------------------|
//! | 0                       | 8           | magic `FDBXRSP1`                               |
//! | 8                       | 8           | `slots`, a power of two                        |
//! | 16                      | 8           | `live`: keys present                           |
//! | 24                      | 8           | `used`: slots not empty (live + deleted)       |
//! | 32                      | 8           | `end`: where the next record goes              |
//! | 40                      | 8           | `garbage`: bytes of records no slot points to  |
//! | 64                      | 16 × slots  | the slots: record offset (0 empty, 1 deleted), key hash |
//! | 64 + 16 × slots         | ...         | the records: key length (u32), value length (u32), key, value |
//!
//! Open addressing with linear probing, at most 3/4 of the slots used. A
//! [`Store::set`] of a value with the length of the old one writes it in place;
//! otherwise a new record is appended and the old one becomes garbage.
//! When the slots fill up, or the garbage outweighs the records, the table
//! is rebuilt into a new memory file (the live records only): that costs
//! time proportional to the data, at a write, never at a take-over.
//!
//! The header is kept in memory and written when the instance hands over
//! ([`Store::into_handle`]): the memory file is only boxed then, so an
//! instance that dies before loses it whatever is in it.
//!
//! Recently used entries are kept in a bounded cache in guest memory
//! (filled lazily, written through), so a hot key costs no host call to
//! read.

use std::collections::HashMap;

use crate::fdbox::fdbox::{boxes, memory_files};
use crate::service::{Failure, OrFail, Taken};
use crate::wasi::filesystem::types::{Descriptor, ErrorCode};
use crate::{read_up_to, write_all};

const MAGIC: &[u8; 8] = b"FDBXRSP1";
const HEADER: u64 = 64;
const SLOT: u64 = 16;
/// The slots of a new table.
const FIRST_SLOTS: u64 = 1024;
/// Slot offsets that are not records.
const EMPTY: u64 = 0;
const DELETED: u64 = 1;
/// Slots read in one call while probing.
const PROBE_BATCH: u64 = 16;
/// What a record read asks for beyond its key, hoping to get the value in
/// the same call.
const VALUE_GUESS: u64 = 64;
/// Garbage below this is never worth a rebuild.
const GARBAGE_FLOOR: u64 = 1 << 20;
/// The cache is emptied when it holds more entries than this.
const CACHE_ENTRIES: usize = 1 << 16;

/// A failed call on the memory file.
#[derive(Debug)]
pub struct StoreError(pub String);

impl From<ErrorCode> for StoreError {
    fn from(code: ErrorCode) -> Self {
        StoreError(code.name().to_string())
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// The header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    slots: u64,
    live: u64,
    used: u64,
    end: u64,
    garbage: u64,
}

impl Header {
    fn empty(slots: u64) -> Self {
        Header {
            slots,
            live: 0,
            used: 0,
            end: HEADER + slots * SLOT,
            garbage: 0,
        }
    }

    fn encode(&self) -> [u8; HEADER as usize] {
        let mut bytes = [0; HEADER as usize];
        bytes[..8].copy_from_slice(MAGIC);
        for (i, field) in [self.slots, self.live, self.used, self.end, self.garbage]
            .iter()
            .enumerate()
        {
            bytes[8 + 8 * i..16 + 8 * i].copy_from_slice(&field.to_le_bytes());
        }
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER as usize || &bytes[..8] != MAGIC {
            return None;
        }
        let field = |i: usize| u64_at(bytes, 8 + 8 * i);
        let header = Header {
            slots: field(0),
            live: field(1),
            used: field(2),
            end: field(3),
            garbage: field(4),
        };
        let sane = header.slots.is_power_of_two()
            && header.live <= header.used
            && header.used < header.slots
            && header.end >= HEADER + header.slots * SLOT;
        sane.then_some(header)
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn u32_at(bytes: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()).into()
}

/// FNV-1a, 64 bits: stable across versions, as the layout needs.
fn hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Where a key is in the file.
#[derive(Clone, Debug)]
struct Place {
    slot: u64,
    record: u64,
    value: Vec<u8>,
}

/// The box entry a service hands its store over in.
pub const ENTRY: &str = "store";

/// The key space in its memory file.
pub struct Store {
    fd: Descriptor,
    header: Header,
    cache: HashMap<Vec<u8>, Place>,
}

impl Store {
    /// An empty store in a new memory file.
    pub fn new() -> std::result::Result<Store, Failure> {
        Store::create(FIRST_SLOTS).map_err(|e| Failure(format!("create store: {}", e.0)))
    }

    fn create(slots: u64) -> Result<Store> {
        let fd = memory_files::create("store")
            .map_err(|code| StoreError(format!("memory-files.create: {}", code.name())))?;
        let header = Header::empty(slots);
        // The slots are the zeros a write past the end leaves behind.
        write_all(&fd, &header.encode(), 0)?;
        Ok(Store {
            fd,
            header,
            cache: HashMap::new(),
        })
    }

    /// The store a previous instance handed over in `fd`: its header only is
    /// read.
    pub fn take(fd: Descriptor, entry: &str) -> std::result::Result<Store, Failure> {
        let bytes = read_up_to(&fd, 0, HEADER).or_fail("read store header")?;
        let header = Header::decode(&bytes).ok_or(Failure::corrupt(entry))?;
        Ok(Store {
            fd,
            header,
            cache: HashMap::new(),
        })
    }

    /// The store a previous version handed over as box entry [`ENTRY`] in
    /// `taken`, or a new empty one if there is none.
    pub fn take_over(taken: &mut Taken) -> std::result::Result<Store, Failure> {
        match taken.remove(ENTRY) {
            Some(boxes::Handle::Descriptor(fd)) => Store::take(fd, ENTRY),
            Some(_) => Err(Failure::wrong_kind(ENTRY)),
            None => Store::new(),
        }
    }

    /// The store as box entry [`ENTRY`], for the next version's
    /// [`Store::take_over`].
    pub fn hand_over(self) -> std::result::Result<(String, boxes::Handle), Failure> {
        Ok((ENTRY.to_string(), self.into_handle()?))
    }

    /// Writes the header and gives the memory file up, to be boxed.
    pub fn into_handle(self) -> std::result::Result<boxes::Handle, Failure> {
        write_all(&self.fd, &self.header.encode(), 0).or_fail("write store header")?;
        Ok(boxes::Handle::Descriptor(self.fd))
    }

    /// The number of keys.
    pub fn len(&self) -> u64 {
        self.header.live
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `key`.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.find(key)?.map(|place| place.value))
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if let Some(place) = self.find(key)? {
            if place.value.len() == value.len() {
                // In place: the record keeps its length.
                write_all(&self.fd, value, place.record + 8 + key.len() as u64)?;
                self.remember(
                    key,
                    Place {
                        value: value.to_vec(),
                        ..place
                    },
                );
                return Ok(());
            }
            let record = self.append(key, value)?;
            self.header.garbage += 8 + (key.len() + place.value.len()) as u64;
            self.write_slot(place.slot, record, hash(key))?;
            self.remember(
                key,
                Place {
                    slot: place.slot,
                    record,
                    value: value.to_vec(),
                },
            );
        } else {
            if (self.header.used + 1) * 4 > self.header.slots * 3 {
                let slots = if (self.header.live + 1) * 2 > self.header.slots {
                    self.header.slots * 2
                } else {
                    self.header.slots
                };
                self.rebuild(slots)?;
            }
            let h = hash(key);
            let (slot, was) = self.free_slot(h)?;
            let record = self.append(key, value)?;
            if was == EMPTY {
                self.header.used += 1;
            }
            self.header.live += 1;
            self.write_slot(slot, record, h)?;
            self.remember(
                key,
                Place {
                    slot,
                    record,
                    value: value.to_vec(),
                },
            );
        }
        if self.header.garbage > GARBAGE_FLOOR
            && self.header.garbage
                > self.header.end - HEADER - self.header.slots * SLOT - self.header.garbage
        {
            self.rebuild(self.header.slots)?;
        }
        Ok(())
    }

    /// Deletes `key`; whether it was there.
    pub fn del(&mut self, key: &[u8]) -> Result<bool> {
        let Some(place) = self.find(key)? else {
            return Ok(false);
        };
        self.write_slot(place.slot, DELETED, 0)?;
        self.header.live -= 1;
        self.header.garbage += 8 + (key.len() + place.value.len()) as u64;
        self.cache.remove(key);
        Ok(true)
    }

    /// Deletes every key: a new, empty memory file.
    pub fn flush(&mut self) -> Result<()> {
        *self = Store::create(FIRST_SLOTS)?;
        Ok(())
    }

    fn remember(&mut self, key: &[u8], place: Place) {
        if self.cache.len() >= CACHE_ENTRIES && !self.cache.contains_key(key) {
            self.cache.clear();
        }
        self.cache.insert(key.to_vec(), place);
    }

    /// Reads `len` bytes at `offset`, zeros past the end of the file.
    fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut bytes = read_up_to(&self.fd, offset, len)?;
        bytes.resize(len as usize, 0);
        Ok(bytes)
    }

    fn write_slot(&self, i: u64, record: u64, h: u64) -> Result<()> {
        let mut bytes = [0; SLOT as usize];
        bytes[..8].copy_from_slice(&record.to_le_bytes());
        bytes[8..].copy_from_slice(&h.to_le_bytes());
        Ok(write_all(&self.fd, &bytes, HEADER + i * SLOT)?)
    }

    /// Appends a record; its offset.
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<u64> {
        let (klen, vlen) = (
            u32::try_from(key.len()).map_err(|_| StoreError("key too long".into()))?,
            u32::try_from(value.len()).map_err(|_| StoreError("value too long".into()))?,
        );
        let mut bytes = Vec::with_capacity(8 + key.len() + value.len());
        bytes.extend_from_slice(&klen.to_le_bytes());
        bytes.extend_from_slice(&vlen.to_le_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        let at = self.header.end;
        write_all(&self.fd, &bytes, at)?;
        self.header.end += bytes.len() as u64;
        Ok(at)
    }

    /// The key and value of the record at `at`.
    fn record(&self, at: u64, key_len_hint: u64) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut bytes = read_up_to(&self.fd, at, 8 + key_len_hint + VALUE_GUESS)?;
        if bytes.len() < 8 {
            return Err(StoreError(format!("record at {at} cut short")));
        }
        let (klen, vlen) = (u32_at(&bytes, 0), u32_at(&bytes, 4));
        let total = 8 + klen + vlen;
        if (bytes.len() as u64) < total {
            let more = read_up_to(
                &self.fd,
                at + bytes.len() as u64,
                total - bytes.len() as u64,
            )?;
            bytes.extend_from_slice(&more);
            if (bytes.len() as u64) < total {
                return Err(StoreError(format!("record at {at} cut short")));
            }
        }
        let value = bytes[(8 + klen) as usize..total as usize].to_vec();
        bytes.truncate((8 + klen) as usize);
        bytes.drain(..8);
        Ok((bytes, value))
    }

    /// Probes from `h`'s slot, calling `visit` with each slot's index,
    /// record offset and hash until it returns `Some`.
    fn probe<T>(
        &self,
        h: u64,
        mut visit: impl FnMut(u64, u64, u64) -> Result<Option<T>>,
    ) -> Result<T> {
        let mask = self.header.slots - 1;
        let mut i = h & mask;
        loop {
            let batch = PROBE_BATCH.min(self.header.slots - i);
            let bytes = self.read(HEADER + i * SLOT, batch * SLOT)?;
            for j in 0..batch {
                let at = (j * SLOT) as usize;
                if let Some(found) = visit(i + j, u64_at(&bytes, at), u64_at(&bytes, at + 8))? {
                    return Ok(found);
                }
            }
            i = (i + batch) & mask;
        }
    }

    /// Where `key` is, if present.
    fn find(&mut self, key: &[u8]) -> Result<Option<Place>> {
        if let Some(place) = self.cache.get(key) {
            return Ok(Some(place.clone()));
        }
        let h = hash(key);
        // At most 3/4 of the slots are used, so an empty one ends the probe.
        let found = self.probe(h, |slot, record, slot_hash| match record {
            EMPTY => Ok(Some(None)),
            DELETED => Ok(None),
            _ if slot_hash != h => Ok(None),
            _ => {
                let (k, value) = self.record(record, key.len() as u64)?;
                Ok((k == key).then_some(Some(Place {
                    slot,
                    record,
                    value,
                })))
            }
        })?;
        if let Some(place) = &found {
            self.remember(key, place.clone());
        }
        Ok(found)
    }

    /// The first deleted or empty slot from `h`'s (the key is known
    /// absent), and which of the two it is.
    fn free_slot(&self, h: u64) -> Result<(u64, u64)> {
        self.probe(h, |slot, record, _| {
            Ok(matches!(record, EMPTY | DELETED).then_some((slot, record)))
        })
    }

    /// Copies the live records into a new memory file with `slots` slots,
    /// which replaces this one.
    fn rebuild(&mut self, slots: u64) -> Result<()> {
        let mut next = Store::create(slots)?;
        let mut i = 0;
        while i < self.header.slots {
            let batch = 4096.min(self.header.slots - i);
            let bytes = self.read(HEADER + i * SLOT, batch * SLOT)?;
            for j in 0..batch as usize {
                let (record, h) = (
                    u64_at(&bytes, j * SLOT as usize),
                    u64_at(&bytes, j * SLOT as usize + 8),
                );
                if record == EMPTY || record == DELETED {
                    continue;
                }
                let (key, value) = self.record(record, 0)?;
                let (slot, _) = next.free_slot(h)?;
                let at = next.append(&key, &value)?;
                next.write_slot(slot, at, h)?;
                next.header.used += 1;
                next.header.live += 1;
            }
            i += batch;
        }
        *self = next;
        Ok(())
    }
}
