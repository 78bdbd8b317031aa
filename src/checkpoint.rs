//! Checkpoints of a service's sealed boxes, so that an upgrade to a version
//! that fails before it serves loses nothing.
//!
//! A box's handles are take-once: a new version that unseals its box, takes
//! the listener and the connections, and then traps would take them down
//! with its `Store`. So before the new version starts, the host takes a
//! duplicate of every fd in every sealed box the guest may touch (the
//! device's entries are put back as they were); if the new version fails,
//! the boxes are made to hold the duplicates again, sealed, and the old
//! version recovers from them. A duplicate is the same open file or socket:
//! a connection stays open through a crash of the new version, though bytes
//! it already read from the socket are gone.

use anyhow::{Context, Result};
use fdbox_host::{Device, FdboxCtx, Handle, Name};

/// Duplicates of what sealed boxes held.
pub struct Checkpoint {
    boxes: Vec<(Name, Vec<(Name, Handle)>)>,
}

fn duplicate(handle: &Handle) -> Result<Handle> {
    let fd = rustix::io::fcntl_dupfd_cloexec(handle.fd(), 0)
        .context("cannot duplicate an fd for the checkpoint")?;
    Ok(Handle::from_parts(fd, handle.kind(), handle.access()))
}

impl Checkpoint {
    /// Duplicate every entry of the sealed boxes `ctx`'s grants cover.
    pub fn take(ctx: &FdboxCtx) -> Result<Self> {
        let device = ctx.device();
        let mut boxes = Vec::new();
        for status in device.boxes()? {
            if !status.sealed || !ctx.grants().covers(&status.name) {
                continue;
            }
            let name = status.name;
            let copies = Self::copy_box(device.as_ref(), &name)
                .with_context(|| format!("cannot checkpoint box {name:?}"))?;
            boxes.push((name, copies));
        }
        Ok(Self { boxes })
    }

    /// Duplicates of sealed box `name`'s entries; the box is left sealed
    /// with its own handles.
    fn copy_box(device: &dyn Device, name: &Name) -> Result<Vec<(Name, Handle)>> {
        device.unseal(name)?;
        let names: Vec<Name> = device.entries(name)?.into_iter().map(|e| e.name).collect();
        let handles = match device.get_many(name, &names) {
            Ok(handles) => handles,
            Err(e) => {
                // Nothing was taken (all or nothing): sealed again, the box
                // is as it was.
                device.seal(name)?;
                return Err(e.into());
            }
        };
        let copies = handles
            .iter()
            .zip(&names)
            .map(|(h, n)| Ok((n.clone(), duplicate(h)?)))
            .collect::<Result<Vec<_>>>();
        let back = names.into_iter().zip(handles).collect();
        if let Err(refused) = device.put_many(name, back) {
            // The duplicates are the same files: the restore puts them back.
            tracing::warn!("cannot put box {name:?} back as it was: {}", refused.error);
        }
        device.seal(name)?;
        copies
    }

    /// Make every checkpointed box hold exactly its duplicates again, sealed
    /// (whatever a failed version left in it is closed).
    pub fn restore(self, device: &dyn Device) -> Result<()> {
        for (name, copies) in self.boxes {
            match device.status(&name) {
                Ok(status) => {
                    if status.sealed {
                        device.unseal(&name)?;
                    }
                    let left: Vec<Name> =
                        device.entries(&name)?.into_iter().map(|e| e.name).collect();
                    drop(device.get_many(&name, &left)?);
                }
                Err(_) => device.create_box(&name)?,
            }
            device
                .put_many(&name, copies)
                .map_err(|refused| refused.error)
                .with_context(|| format!("cannot restore box {name:?}"))?;
            device.seal(&name)?;
        }
        Ok(())
    }
}
