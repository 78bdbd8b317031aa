//! The holder daemon: the server that keeps boxes alive across host
//! restarts, on any kernel, for the hosts that reach it with the `daemon`
//! device ([`crate::device::daemon::DaemonDevice`], which owns the protocol
//! this server speaks).
//!
//! The modules, each depending only on those listed before it:
//!
//! - [`manifest`]: the byte format that describes the held fds;
//! - [`fd_store`]: names the fds and keeps systemd's fd store in line;
//! - `budget.rs`: the fd budget and each client's shares of it;
//! - `owners.rs`: who put each entry held, for the budget;
//! - [`Holder`] (`holder.rs`): the boxes and every invariant that keeps them
//!   whole, recovery from a hand-over included;
//! - [`serve`], [`serve_until`] (`session.rs`): the event loop (one thread
//!   for every connection) and the per-connection protocol.

mod budget;
pub mod fd_store;
mod holder;
pub mod manifest;
mod owners;
mod session;

pub use fd_store::FdStore;
pub use holder::{Holder, Limits, QuiesceError, Quiesced, RecoverError, Recovery};
pub use manifest::LISTENER_FD_NAME;
pub use session::{serve, serve_connection, serve_until};
