//! The service lifecycle (WIT `lifecycle`): the host asks a running
//! instance to hand over, the instance says when it has, and the next one
//! says when it serves.
//!
//! One [`Lifecycle`] belongs to one instance: the host keeps an `Arc` and
//! gives a clone to the instance's [`FdboxCtx`](crate::FdboxCtx).

use std::sync::Arc;
use tokio::sync::watch;

/// What the host asks of an instance (the WIT `request`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Request {
    /// Keep serving.
    #[default]
    None,
    /// Hand over to a new version, in this host.
    Upgrade,
    /// Hand over and stop: a new host process takes over.
    Stop,
}

/// What an instance has said so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// It serves (`ready`).
    pub ready: bool,
    /// It has boxed and sealed what the next instance needs (`handed-over`).
    pub handed_over: bool,
}

/// The lifecycle channel of one instance.
#[derive(Debug)]
pub struct Lifecycle {
    request: watch::Sender<Request>,
    progress: watch::Sender<Progress>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            request: watch::Sender::new(Request::None),
            progress: watch::Sender::new(Progress::default()),
        }
    }
}

impl Lifecycle {
    /// A channel for a new instance: nothing asked, nothing said.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Ask the instance for `request` (the host's side).
    pub fn request(&self, request: Request) {
        self.request.send_replace(request);
    }

    /// What the host asks now (the guest's `requested`).
    pub fn requested(&self) -> Request {
        *self.request.borrow()
    }

    /// What the instance has said.
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Wait until the instance has said what `done` looks for (the host's
    /// side); returns at once if it has.
    pub async fn wait_for(&self, done: impl Fn(&Progress) -> bool) {
        let mut progress = self.progress.subscribe();
        // The sender lives in `self`, so this only ends when `done` holds.
        let _ = progress.wait_for(done).await;
    }

    /// The guest's `ready`.
    pub(crate) fn mark_ready(&self) {
        self.progress.send_modify(|p| p.ready = true);
    }

    /// The guest's `handed-over`.
    pub(crate) fn mark_handed_over(&self) {
        self.progress.send_modify(|p| p.handed_over = true);
    }

    /// A pollable for the guest: ready once a request is made.
    pub(crate) fn watch(&self) -> RequestWatch {
        RequestWatch(self.request.subscribe())
    }
}

/// The host side of the pollable `lifecycle.subscribe` returns.
pub struct RequestWatch(watch::Receiver<Request>);

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for RequestWatch {
    async fn ready(&mut self) {
        // The sender lives as long as the instance's context.
        let _ = self.0.wait_for(|r| *r != Request::None).await;
    }
}
