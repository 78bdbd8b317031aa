//! Listening sockets the host grants guests by name (`fdbox serve --listen
//! NAME=ADDR`, or inherited from systemd socket activation): the host binds
//! each one the first time a guest asks, and keeps it for every later
//! instance of the host, so an upgrade never closes it.

use super::sockets::TcpListener;
use crate::Error;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};

enum Grant {
    /// Bound on first use.
    Address(SocketAddr),
    /// Bound (by this host, or inherited).
    Bound(StdListener),
}

/// The listeners a host grants, by name. Cheap to clone: clones share the
/// bound sockets.
#[derive(Clone, Default)]
pub struct ListenerGrants(Arc<Mutex<BTreeMap<String, Grant>>>);

impl ListenerGrants {
    /// No listener granted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grant a listener on `address` under `name`, bound when a guest first
    /// asks for it.
    pub fn address(&self, name: &str, address: SocketAddr) {
        self.lock().insert(name.to_owned(), Grant::Address(address));
    }

    /// Grant an already listening socket under `name` (one inherited from
    /// systemd, say).
    pub fn bound(&self, name: &str, listener: StdListener) {
        self.lock().insert(name.to_owned(), Grant::Bound(listener));
    }

    /// The names granted.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Grant>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The listener granted under `name`, for a guest: a duplicate of the
    /// host's socket, bound now if it is the first time.
    pub fn take(&self, name: &str) -> Result<TcpListener, Error> {
        let mut grants = self.lock();
        let grant = grants
            .get_mut(name)
            .ok_or_else(|| Error::ListenerNotGranted(name.to_owned()))?;
        if let Grant::Address(address) = grant {
            let address = *address;
            let listener = StdListener::bind(address).map_err(|e| match e.kind() {
                std::io::ErrorKind::AddrInUse => Error::AddressInUse {
                    name: name.to_owned(),
                    address,
                },
                _ => Error::Device(e),
            })?;
            *grant = Grant::Bound(listener);
        }
        let Grant::Bound(listener) = grant else {
            unreachable!("bound above")
        };
        let copy = listener.try_clone().map_err(Error::Device)?;
        TcpListener::new(copy).map_err(|(e, _)| e)
    }
}
