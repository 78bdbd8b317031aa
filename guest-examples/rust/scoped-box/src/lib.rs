//! `scoped-box`: a wrapper component that gives the component it is plugged
//! into a box namespace of its own.
//!
//! It imports `fdbox:fdbox/boxes@0.1.0` (from the host) and exports the same
//! interface (to the guest it is composed with, `wac plug`). Every box name
//! the guest passes in becomes [`PREFIX`] + name before it reaches the host,
//! and every box name the host hands back loses [`PREFIX`] again:
//!
//! | exported (guest's view)       | imported (host's view)                                  |
//! |-------------------------------|---------------------------------------------------------|
//! | `box.create/open/delete(n)`   | `box.create/open/delete(PREFIX + n)`                    |
//! | `box.name()`                  | `box.name()` without `PREFIX`                           |
//! | `box-fd.box-name()`           | `box-fd.box-name()` without `PREFIX`                    |
//! | `list-boxes()`                | `list-boxes()`, only names starting with `PREFIX`, stripped |
//! | everything else               | forwarded as is                                         |
//!
//! Entry names are not rewritten: entries live inside a box, which is already
//! scoped. Handles (descriptors, sockets, the `handle` variant) pass through
//! unchanged: the wrapper imports `wasi:filesystem/types` and
//! `fdbox:fdbox/sockets` just as the guest does, the composition wires both
//! to the same host instances, so a descriptor the guest puts is the very
//! host resource the host receives. Errors pass through unchanged too.
//!
//! Names are checked here with the host's rules before the prefix is added
//! (`invalid-name` for an empty name, a NUL or a `/`; `name-too-long` when
//! PREFIX + name exceeds 255 bytes), so the guest gets the error its own
//! name deserves: an empty name must not become the valid name `PREFIX`.
//!
//! PREFIX is fixed when the component is built: `FDBOX_SCOPE` in the
//! environment of the build, default [`DEFAULT_PREFIX`].

mod bindings {
    // `box` becomes `Box` both in `fdbox::fdbox::boxes` (the import) and in
    // `exports::fdbox::fdbox::boxes` (the export); both are always used with
    // their module path, so std's `Box` stays visible.
    wit_bindgen::generate!({
        world: "fdbox:scoped-box/scoped-box",
        // The fdbox package and its WASI deps, then this crate's world.
        path: ["../../../wit", "wit"],
        // `boxes` takes and returns `wasi:filesystem` descriptors and fdbox
        // sockets: their bindings are needed for the export too.
        generate_all,
    });
}

use bindings::exports::fdbox::fdbox::boxes as ex;
use bindings::fdbox::fdbox::boxes as im;
use bindings::fdbox::fdbox::types::ErrorCode;

/// The prefix when the build does not set `FDBOX_SCOPE`.
pub const DEFAULT_PREFIX: &str = "tenant-a.";

/// What every box name of the guest is scoped under.
pub const PREFIX: &str = match option_env!("FDBOX_SCOPE") {
    Some(prefix) => prefix,
    None => DEFAULT_PREFIX,
};

/// The longest box name the host accepts, in bytes (`MAX_NAME_LEN` of the
/// host, the kernel's `FDBOX_NAME_LEN` less its NUL).
const MAX_NAME_LEN: usize = 255;

// A prefix that breaks the name rules would make every name invalid: refuse
// to build instead. (An empty prefix is allowed: the wrapper then only
// forwards.)
const _: () = {
    let bytes = PREFIX.as_bytes();
    assert!(
        bytes.len() < MAX_NAME_LEN,
        "FDBOX_SCOPE must leave room for a name (at most 254 bytes)"
    );
    let mut i = 0;
    while i < bytes.len() {
        assert!(
            bytes[i] != b'/' && bytes[i] != 0,
            "FDBOX_SCOPE must not contain '/' or NUL"
        );
        i += 1;
    }
};

/// The host's name for the guest's box `name`, or the error the host would
/// give for it (the host's order: empty, too long, NUL or `/`).
fn scoped(name: &str) -> Result<String, ErrorCode> {
    if name.is_empty() {
        Err(ErrorCode::InvalidName)
    } else if PREFIX.len() + name.len() > MAX_NAME_LEN {
        Err(ErrorCode::NameTooLong)
    } else if name.contains(['\0', '/']) {
        Err(ErrorCode::InvalidName)
    } else {
        Ok(format!("{PREFIX}{name}"))
    }
}

/// The guest's name for the host's box `name`: without [`PREFIX`]. Only
/// names the wrapper made itself come back from the host, so the prefix is
/// always there; were it not, the name is returned whole rather than
/// mangled.
fn unscoped(name: String) -> String {
    match name.strip_prefix(PREFIX) {
        Some(inner) => inner.to_owned(),
        None => name,
    }
}

/// The exported `box`: a box of the host, opened under its scoped name.
pub struct ScopedBox {
    inner: im::Box,
}

/// The exported `box-fd`: an entry of the host, whose box name is unscoped
/// on the way out.
pub struct ScopedBoxFd {
    inner: im::BoxFd,
}

fn wrap_box(inner: im::Box) -> ex::Box {
    ex::Box::new(ScopedBox { inner })
}

fn wrap_fd(inner: im::BoxFd) -> ex::BoxFd {
    ex::BoxFd::new(ScopedBoxFd { inner })
}

// The `handle` variant and the `refused-*` records are defined in `boxes`
// itself, so the exported ones are types of their own; their payloads
// (descriptor, tcp-listener, tcp-connection, error-code) are the imported
// types, moved across unchanged.

fn handle_in(handle: ex::Handle) -> im::Handle {
    match handle {
        ex::Handle::Descriptor(d) => im::Handle::Descriptor(d),
        ex::Handle::TcpListener(l) => im::Handle::TcpListener(l),
        ex::Handle::TcpConnection(c) => im::Handle::TcpConnection(c),
    }
}

fn handle_out(handle: im::Handle) -> ex::Handle {
    match handle {
        im::Handle::Descriptor(d) => ex::Handle::Descriptor(d),
        im::Handle::TcpListener(l) => ex::Handle::TcpListener(l),
        im::Handle::TcpConnection(c) => ex::Handle::TcpConnection(c),
    }
}

struct Component;

impl ex::Guest for Component {
    type Box = ScopedBox;
    type BoxFd = ScopedBoxFd;

    fn list_boxes() -> Result<Vec<String>, ErrorCode> {
        // The host lists in name order; stripping a common prefix keeps it.
        Ok(im::list_boxes()?
            .into_iter()
            .filter_map(|name| name.strip_prefix(PREFIX).map(str::to_owned))
            .collect())
    }
}

impl ex::GuestBoxFd for ScopedBoxFd {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn kind(&self) -> ex::HandleKind {
        self.inner.kind()
    }

    fn box_name(&self) -> String {
        unscoped(self.inner.box_name())
    }
}

impl ex::GuestBox for ScopedBox {
    fn create(name: String) -> Result<ex::Box, ErrorCode> {
        im::Box::create(&scoped(&name)?).map(wrap_box)
    }

    fn open(name: String) -> Result<ex::Box, ErrorCode> {
        im::Box::open(&scoped(&name)?).map(wrap_box)
    }

    fn delete(name: String) -> Result<(), ErrorCode> {
        im::Box::delete(&scoped(&name)?)
    }

    fn name(&self) -> String {
        unscoped(self.inner.name())
    }

    fn put(&self, name: String, handle: ex::Descriptor) -> Result<ex::BoxFd, ex::RefusedPut> {
        self.inner
            .put(&name, handle)
            .map(wrap_fd)
            .map_err(|im::RefusedPut { code, handle }| ex::RefusedPut { code, handle })
    }

    fn get(&self, name: String) -> Result<ex::Descriptor, ErrorCode> {
        self.inner.get(&name)
    }

    fn put_handle(&self, name: String, handle: ex::Handle) -> Result<ex::BoxFd, ex::RefusedHandle> {
        self.inner
            .put_handle(&name, handle_in(handle))
            .map(wrap_fd)
            .map_err(|im::RefusedHandle { code, handle }| ex::RefusedHandle {
                code,
                handle: handle_out(handle),
            })
    }

    fn get_handle(&self, name: String) -> Result<ex::Handle, ErrorCode> {
        self.inner.get_handle(&name).map(handle_out)
    }

    fn put_handles(
        &self,
        entries: Vec<(String, ex::Handle)>,
    ) -> Result<Vec<ex::BoxFd>, ex::RefusedHandles> {
        let entries: Vec<(String, im::Handle)> = entries
            .into_iter()
            .map(|(name, handle)| (name, handle_in(handle)))
            .collect();
        match self.inner.put_handles(entries) {
            Ok(fds) => Ok(fds.into_iter().map(wrap_fd).collect()),
            Err(im::RefusedHandles { code, handles }) => Err(ex::RefusedHandles {
                code,
                handles: handles.into_iter().map(handle_out).collect(),
            }),
        }
    }

    fn get_handles(&self, names: Vec<String>) -> Result<Vec<ex::Handle>, ErrorCode> {
        Ok(self
            .inner
            .get_handles(&names)?
            .into_iter()
            .map(handle_out)
            .collect())
    }

    fn entries(&self) -> Result<Vec<ex::BoxFd>, ErrorCode> {
        Ok(self.inner.entries()?.into_iter().map(wrap_fd).collect())
    }

    fn seal(&self) -> Result<(), ErrorCode> {
        self.inner.seal()
    }

    fn unseal(&self) -> Result<(), ErrorCode> {
        self.inner.unseal()
    }

    fn is_sealed(&self) -> Result<bool, ErrorCode> {
        self.inner.is_sealed()
    }
}

bindings::export!(Component with_types_in bindings);
