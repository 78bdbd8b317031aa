// @generated from wit/ by host/tests/bindings_current.rs; do not edit.
// Regenerate with: FDBOX_BLESS=1 cargo test -p fdbox-host --test bindings_current
type _TrappableError0 = crate::wasm::bindings::FdboxError;
#[doc(hidden)]
pub use crate::wasm::bindings::BoxRef as __with_name0;
#[doc(hidden)]
pub use crate::wasm::bindings::BoxFdRef as __with_name1;
#[doc(hidden)]
pub use crate::wasm::sockets::TcpConnection as __with_name2;
#[doc(hidden)]
pub use crate::wasm::sockets::TcpListener as __with_name3;
#[doc(hidden)]
pub use wasmtime_wasi::p2::bindings as __with_name4;

/// Auto-generated bindings for a pre-instantiated version of a
/// component which implements the world `imports`.
///
/// This structure is created through [`ImportsPre::new`] which
/// takes a [`InstancePre`](wasmtime::component::InstancePre) that
/// has been created through a [`Linker`](wasmtime::component::Linker).
///
/// For more information see [`Imports`] as well.
pub struct ImportsPre<T: 'static> {
  instance_pre: wasmtime::component::InstancePre<T>,
  indices: ImportsIndices,
}

impl<T: 'static> Clone for ImportsPre<T> {
  fn clone(&self) -> Self {
    Self {
      instance_pre: self.instance_pre.clone(),
      indices: self.indices.clone(),
    }
  }
}

impl<_T: 'static> ImportsPre<_T> {
  /// Creates a new copy of `ImportsPre` bindings which can then
  /// be used to instantiate into a particular store.
  ///
  /// This method may fail if the component behind `instance_pre`
  /// does not have the required exports.
  pub fn new(instance_pre: wasmtime::component::InstancePre<_T>) -> wasmtime::Result<Self> {
    let indices = ImportsIndices::new(&instance_pre)?;
    Ok(Self { instance_pre, indices })
  }
  
  pub fn engine(&self) -> &wasmtime::Engine {
    self.instance_pre.engine()
  }
  
  pub fn instance_pre(&self) -> &wasmtime::component::InstancePre<_T> {
    &self.instance_pre
  }
  
  /// Instantiates a new instance of [`Imports`] within the
  /// `store` provided.
  ///
  /// This function will use `self` as the pre-instantiated
  /// instance to perform instantiation. Afterwards the preloaded
  /// indices in `self` are used to lookup all exports on the
  /// resulting instance.
  pub fn instantiate(
  &self,
  mut store: impl wasmtime::AsContextMut<Data = _T>,
  ) -> wasmtime::Result<Imports> {
    let mut store = store.as_context_mut();
    let instance = self.instance_pre.instantiate(&mut store)?;
    self.indices.load(&mut store, &instance)
  }
}


impl<_T: Send + 'static> ImportsPre<_T> {
  /// Same as [`Self::instantiate`], except with `async`.
  pub async fn instantiate_async(
  &self,
  mut store: impl wasmtime::AsContextMut<Data = _T>,
  ) -> wasmtime::Result<Imports> {
    let mut store = store.as_context_mut();
    let instance = self.instance_pre.instantiate_async(&mut store).await?;
    self.indices.load(&mut store, &instance)
  }
}


/// Auto-generated bindings for index of the exports of
/// `imports`.
///
/// This is an implementation detail of [`ImportsPre`] and can
/// be constructed if needed as well.
///
/// For more information see [`Imports`] as well.
#[derive(Clone)]
pub struct ImportsIndices {
}

/// Auto-generated bindings for an instance a component which
/// implements the world `imports`.
///
/// This structure can be created through a number of means
/// depending on your requirements and what you have on hand:
///
/// * The most convenient way is to use
///   [`Imports::instantiate`] which only needs a
///   [`Store`], [`Component`], and [`Linker`].
///
/// * Alternatively you can create a [`ImportsPre`] ahead of
///   time with a [`Component`] to front-load string lookups
///   of exports once instead of per-instantiation. This
///   method then uses [`ImportsPre::instantiate`] to
///   create a [`Imports`].
///
/// * If you've instantiated the instance yourself already
///   then you can use [`Imports::new`].
///
/// These methods are all equivalent to one another and move
/// around the tradeoff of what work is performed when.
///
/// [`Store`]: wasmtime::Store
/// [`Component`]: wasmtime::component::Component
/// [`Linker`]: wasmtime::component::Linker
pub struct Imports {
}
const _: () = {
  impl ImportsIndices {
    /// Creates a new copy of `ImportsIndices` bindings which can then
    /// be used to instantiate into a particular store.
    ///
    /// This method may fail if the component does not have the
    /// required exports.
    pub fn new<_T>(_instance_pre: &wasmtime::component::InstancePre<_T>) -> wasmtime::Result<Self> {
      let _component = _instance_pre.component();
      let _instance_type = _instance_pre.instance_type();
      
      Ok(ImportsIndices {
      })
    }
    
    /// Uses the indices stored in `self` to load an instance
    /// of [`Imports`] from the instance provided.
    ///
    /// Note that at this time this method will additionally
    /// perform type-checks of all exports.
    pub fn load(
    &self,
    mut store: impl wasmtime::AsContextMut,
    instance: &wasmtime::component::Instance,
    ) -> wasmtime::Result<Imports> {
      let _ = &mut store;
      let _instance = instance;
      
      Ok(Imports {
      })
    }
  }
  impl Imports{
    /// Convenience wrapper around [`ImportsPre::new`] and
    /// [`ImportsPre::instantiate`].
    pub fn instantiate<_T>(
    store: impl wasmtime::AsContextMut<Data = _T>,
    component: &wasmtime::component::Component,
    linker: &wasmtime::component::Linker<_T>,
    ) -> wasmtime::Result<Imports> {
      let pre = linker.instantiate_pre(component)?;
      ImportsPre::new(pre)?.instantiate(store)
    }
    
    /// Convenience wrapper around [`ImportsIndices::new`] and
    /// [`ImportsIndices::load`].
    pub fn new(
    mut store: impl wasmtime::AsContextMut,
    instance: &wasmtime::component::Instance,
    ) -> wasmtime::Result<Imports> {
      let indices = ImportsIndices::new(&instance.instance_pre(&store))?;
      indices.load(&mut store, instance)
    }
    
    
    /// Convenience wrapper around [`ImportsPre::new`] and
    /// [`ImportsPre::instantiate_async`].
    pub async fn instantiate_async<_T>(
    store: impl wasmtime::AsContextMut<Data = _T>,
    component: &wasmtime::component::Component,
    linker: &wasmtime::component::Linker<_T>,
    ) -> wasmtime::Result<Imports>
    where _T: Send,
    {
      let pre = linker.instantiate_pre(component)?;
      ImportsPre::new(pre)?.instantiate_async(store).await
    }
    
    
    pub fn add_to_linker<T, D>(
    linker: &mut wasmtime::component::Linker<T>,
    
    host_getter: fn(&mut T) -> D::Data<'_>,
    ) -> wasmtime::Result<()>
    where
    D: fdbox::fdbox::types::HostWithStore<T> + __with_name4::io::error::HostWithStore<T> + __with_name4::io::poll::HostWithStore<T> + __with_name4::io::streams::HostWithStore<T> + __with_name4::clocks::wall_clock::HostWithStore<T> + __with_name4::filesystem::types::HostWithStore<T> + fdbox::fdbox::sockets::HostWithStore<T> + fdbox::fdbox::boxes::HostWithStore<T> + fdbox::fdbox::memory_files::HostWithStore<T> + fdbox::fdbox::lifecycle::HostWithStore<T>,
    for<'a> D::Data<'a>: fdbox::fdbox::types::Host + __with_name4::io::error::Host + __with_name4::io::poll::Host + __with_name4::io::streams::Host + __with_name4::clocks::wall_clock::Host + __with_name4::filesystem::types::Host + fdbox::fdbox::sockets::Host + fdbox::fdbox::boxes::Host + fdbox::fdbox::memory_files::Host + fdbox::fdbox::lifecycle::Host,
    T: 'static + Send
    {
      
      fdbox::fdbox::types::add_to_linker::<T, D>(
      linker , host_getter,
      )?;
      __with_name4::io::error::add_to_linker::<T, D>(
      linker , host_getter,
      )?;
      __with_name4::io::poll::add_to_linker::<T, D>(
      linker , host_getter,
      )?;
      __with_name4::io::streams::add_to_linker::<T, D>(
      linker , host_getter,
      )?;
      __with_name4::clocks::wall_clock::add_to_linker::<T, D>(
      linker , host_getter,
      )?;
      __with_name4::filesystem::types::add_to_linker::<T, D>(
      linker , host_getter,
      )?;
      fdbox::fdbox::sockets::add_to_linker::<T, D>(
      linker , host_getter,
      )?;
      fdbox::fdbox::boxes::add_to_linker::<T, D>(
      linker , host_getter,
      )?;
      fdbox::fdbox::memory_files::add_to_linker::<T, D>(
      linker , host_getter,
      )?;
      fdbox::fdbox::lifecycle::add_to_linker::<T, D>(
      linker , host_getter,
      )?;
      Ok(())
    }
  }
};
pub mod fdbox {
  pub mod fdbox {
    
    #[allow(clippy::all)]
    pub mod types {
      #[allow(unused_imports)]
      
      
      /// Why an fdbox operation failed.
      /// 
      /// Each case names the errno the Linux FDBox UAPI returns for the same
      /// failure, so code written against the kernel device maps one to one.
      #[derive(wasmtime::component::ComponentType)]
      #[derive(wasmtime::component::Lift)]
      #[derive(wasmtime::component::Lower)]
      #[component(enum)]
      #[derive(Clone, Copy, Eq, PartialEq)]
      #[repr(u8)]
      pub enum ErrorCode {
        /// The name is empty, contains a NUL byte or `/`, or is `.` or `..`.
        /// Kernel: `EINVAL`.
        #[component(name = "invalid-name")]InvalidName,
        /// The name is longer than 255 bytes, or than the device's own
        /// limit for box names (63 bytes on the Live Update device).
        /// Kernel: `EINVAL` (name not NUL-terminated within 256 bytes);
        /// reported separately here because the fix differs.
        #[component(name = "name-too-long")]NameTooLong,
        /// A box (on create) or an entry (on put) of that name already exists.
        /// Kernel: `EEXIST`.
        #[component(name = "already-exists")]AlreadyExists,
        /// No box (on open, delete and every box operation) or no entry (on
        /// get) of that name exists.
        /// Kernel: `ENOENT`.
        #[component(name = "not-found")]NotFound,
        /// The box is sealed: put, get and seal are refused until it is
        /// unsealed.
        /// Kernel: `EBUSY` from `FDBOX_PUT_FD`, `FDBOX_GET_FD`, `FDBOX_SEAL`.
        #[component(name = "box-sealed")]BoxSealed,
        /// Unseal of a box that is not sealed.
        /// Kernel: `EBUSY` from `FDBOX_UNSEAL`.
        #[component(name = "box-not-sealed")]BoxNotSealed,
        /// The handle is of a kind this device cannot hold (for example a
        /// directory on a device that holds memory files only).
        /// Kernel: `EOPNOTSUPP`.
        #[component(name = "kind-not-supported")]KindNotSupported,
        /// The host did not grant this guest that box, or not that
        /// operation on it. Never tells whether the box exists.
        /// Kernel: `EPERM` (missing `CAP_SYS_ADMIN`).
        #[component(name = "access-denied")]AccessDenied,
        /// A limit was reached: boxes per guest, entries per box, or the
        /// host's open-file limit.
        /// Kernel: `ENOSPC` / `EMFILE`.
        #[component(name = "quota-exceeded")]QuotaExceeded,
        /// The device behind fdbox is gone or failed (kernel device missing,
        /// holder daemon unreachable, I/O error).
        /// Kernel: `ENODEV` / `EIO`.
        #[component(name = "device-unavailable")]DeviceUnavailable,
      }
      impl ErrorCode{
        pub fn name(&self) -> &'static str {
          match self {
            ErrorCode::InvalidName => "invalid-name",
            ErrorCode::NameTooLong => "name-too-long",
            ErrorCode::AlreadyExists => "already-exists",
            ErrorCode::NotFound => "not-found",
            ErrorCode::BoxSealed => "box-sealed",
            ErrorCode::BoxNotSealed => "box-not-sealed",
            ErrorCode::KindNotSupported => "kind-not-supported",
            ErrorCode::AccessDenied => "access-denied",
            ErrorCode::QuotaExceeded => "quota-exceeded",
            ErrorCode::DeviceUnavailable => "device-unavailable",
          }
        }
        pub fn message(&self) -> &'static str {
          match self {
            ErrorCode::InvalidName => "The name is empty, contains a NUL byte or `/`, or is `.` or `..`.
            Kernel: `EINVAL`.",
            ErrorCode::NameTooLong => "The name is longer than 255 bytes, or than the device's own
            limit for box names (63 bytes on the Live Update device).
            Kernel: `EINVAL` (name not NUL-terminated within 256 bytes);
            reported separately here because the fix differs.",
            ErrorCode::AlreadyExists => "A box (on create) or an entry (on put) of that name already exists.
            Kernel: `EEXIST`.",
            ErrorCode::NotFound => "No box (on open, delete and every box operation) or no entry (on
            get) of that name exists.
            Kernel: `ENOENT`.",
            ErrorCode::BoxSealed => "The box is sealed: put, get and seal are refused until it is
            unsealed.
            Kernel: `EBUSY` from `FDBOX_PUT_FD`, `FDBOX_GET_FD`, `FDBOX_SEAL`.",
            ErrorCode::BoxNotSealed => "Unseal of a box that is not sealed.
            Kernel: `EBUSY` from `FDBOX_UNSEAL`.",
            ErrorCode::KindNotSupported => "The handle is of a kind this device cannot hold (for example a
            directory on a device that holds memory files only).
            Kernel: `EOPNOTSUPP`.",
            ErrorCode::AccessDenied => "The host did not grant this guest that box, or not that
            operation on it. Never tells whether the box exists.
            Kernel: `EPERM` (missing `CAP_SYS_ADMIN`).",
            ErrorCode::QuotaExceeded => "A limit was reached: boxes per guest, entries per box, or the
            host's open-file limit.
            Kernel: `ENOSPC` / `EMFILE`.",
            ErrorCode::DeviceUnavailable => "The device behind fdbox is gone or failed (kernel device missing,
            holder daemon unreachable, I/O error).
            Kernel: `ENODEV` / `EIO`.",
          }
        }
      }
      impl core::fmt::Debug for ErrorCode{
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
          f.debug_struct("ErrorCode")
          .field("code", &(*self as i32))
          .field("name", &self.name())
          .field("message", &self.message())
          .finish()
        }
      }
      impl core::fmt::Display for ErrorCode{
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
          write!(f, "{} (error {})", self.name(), *self as i32)}
        }
        
        impl core::error::Error for ErrorCode{}
        const _: () = {
          assert!(1 == <ErrorCode as wasmtime::component::ComponentType>::SIZE32);
          assert!(1 == <ErrorCode as wasmtime::component::ComponentType>::ALIGN32);
        };
        /// What kind of handle an entry holds.
        #[derive(wasmtime::component::ComponentType)]
        #[derive(wasmtime::component::Lift)]
        #[derive(wasmtime::component::Lower)]
        #[component(enum)]
        #[derive(Clone, Copy, Eq, PartialEq)]
        #[repr(u8)]
        pub enum HandleKind {
          /// An anonymous memory file (Linux memfd), as made by
          /// `memory-files.create`.
          #[component(name = "memory-file")]MemoryFile,
          /// A regular file.
          #[component(name = "file")]File,
          /// A directory.
          #[component(name = "directory")]Directory,
          /// A listening TCP socket (`sockets.tcp-listener`).
          #[component(name = "tcp-listener")]TcpListener,
          /// A connected TCP socket (`sockets.tcp-connection`).
          #[component(name = "tcp-connection")]TcpConnection,
        }
        impl core::fmt::Debug for HandleKind {
          fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
              HandleKind::MemoryFile => {
                f.debug_tuple("HandleKind::MemoryFile").finish()
              }
              HandleKind::File => {
                f.debug_tuple("HandleKind::File").finish()
              }
              HandleKind::Directory => {
                f.debug_tuple("HandleKind::Directory").finish()
              }
              HandleKind::TcpListener => {
                f.debug_tuple("HandleKind::TcpListener").finish()
              }
              HandleKind::TcpConnection => {
                f.debug_tuple("HandleKind::TcpConnection").finish()
              }
            }
          }
        }
        const _: () = {
          assert!(1 == <HandleKind as wasmtime::component::ComponentType>::SIZE32);
          assert!(1 == <HandleKind as wasmtime::component::ComponentType>::ALIGN32);
        };
        pub trait HostWithStore<T>: wasmtime::component::HasData {
        }
        impl<H: ?Sized, T> HostWithStore<T> for H
        where H: wasmtime::component::HasData
        {}
        pub trait Host:  {
          
          fn convert_error_code(&mut self, err: super::super::super::_TrappableError0) ->
          wasmtime::Result<ErrorCode>;}
          impl <_T: Host + ?Sized > Host for &mut _T {
            fn convert_error_code(&mut self, err: super::super::super::_TrappableError0) -> wasmtime::Result<ErrorCode> {
              Host::convert_error_code(*self, err)
            }
            
          }
          
          pub fn add_to_linker_instance<T, D>(
          inst: &mut wasmtime::component::LinkerInstance<'_, T>,
          
          
          host_getter: fn(&mut T) -> D::Data<'_>,
          ) -> wasmtime::Result<()>
          where
          D: HostWithStore<T>,
          for<'a> D::Data<'a>: Host,
          T: 'static ,
          {
            
            Ok(())
          }
          
          pub fn add_to_linker<T, D>(
          linker: &mut wasmtime::component::Linker<T>,
          
          host_getter: fn(&mut T) -> D::Data<'_>,
          ) -> wasmtime::Result<()>
          where
          D: HostWithStore<T>,
          for<'a> D::Data<'a>: Host,
          T: 'static ,
          {
            let mut inst = linker.instance("fdbox:fdbox/types@0.1.0")?;
            add_to_linker_instance::<T, D>(&mut inst, host_getter)
          }
          
          
        }
        
        
        #[allow(clippy::all)]
        pub mod sockets {
          #[allow(unused_imports)]
          
          
          pub type ErrorCode = super::super::super::fdbox::fdbox::types::ErrorCode;
          const _: () = {
            assert!(1 == <ErrorCode as wasmtime::component::ComponentType>::SIZE32);
            assert!(1 == <ErrorCode as wasmtime::component::ComponentType>::ALIGN32);
          };
          pub type Pollable = super::super::super::__with_name4::io::poll::Pollable;
          pub type InputStream = super::super::super::__with_name4::io::streams::InputStream;
          pub type OutputStream = super::super::super::__with_name4::io::streams::OutputStream;
          /// A listening TCP socket.
          pub use super::super::super::__with_name3 as TcpListener;
          pub trait HostTcpListenerWithStore<T>: wasmtime::component::HasData {
          }
          impl<H: ?Sized, T> HostTcpListenerWithStore<T> for H
          where H: wasmtime::component::HasData
          {}
          pub trait HostTcpListener:  {
            /// Accept a connection that is waiting, or `none` if none is; never
            /// blocks (wait on `subscribe` first).
            /// 
            /// Fails with `device-unavailable` for a broken listener, and
            /// `quota-exceeded` when the host is out of file descriptors.
            fn accept(&mut self, self_: wasmtime::component::Resource<TcpListener>,) -> Result<Option<wasmtime::component::Resource<TcpConnection>>,super::super::super::_TrappableError0>;
            /// The address it listens on, as `ip:port`.
            fn local_address(&mut self, self_: wasmtime::component::Resource<TcpListener>,) -> Result<wasmtime::component::__internal::String,super::super::super::_TrappableError0>;
            /// Ready when a connection is waiting to be accepted.
            fn subscribe(&mut self, self_: wasmtime::component::Resource<TcpListener>,) -> wasmtime::Result<wasmtime::component::Resource<Pollable>>;
            fn drop(&mut self, rep: wasmtime::component::Resource<TcpListener>) -> wasmtime::Result<()>;}
            impl <_T: HostTcpListener + ?Sized > HostTcpListener for &mut _T {
              /// Accept a connection that is waiting, or `none` if none is; never
              /// blocks (wait on `subscribe` first).
              /// 
              /// Fails with `device-unavailable` for a broken listener, and
              /// `quota-exceeded` when the host is out of file descriptors.
              fn accept(&mut self, self_: wasmtime::component::Resource<TcpListener>,) -> Result<Option<wasmtime::component::Resource<TcpConnection>>,super::super::super::_TrappableError0>{
                HostTcpListener::accept(*self,self_,)}
                /// The address it listens on, as `ip:port`.
                fn local_address(&mut self, self_: wasmtime::component::Resource<TcpListener>,) -> Result<wasmtime::component::__internal::String,super::super::super::_TrappableError0>{
                  HostTcpListener::local_address(*self,self_,)}
                  /// Ready when a connection is waiting to be accepted.
                  fn subscribe(&mut self, self_: wasmtime::component::Resource<TcpListener>,) -> wasmtime::Result<wasmtime::component::Resource<Pollable>>{
                    HostTcpListener::subscribe(*self,self_,)}
                    fn drop(&mut self, rep: wasmtime::component::Resource<TcpListener>) -> wasmtime::Result<()> {
                      HostTcpListener::drop(*self, rep)
                    }
                    
                  }
                  /// A connected TCP socket.
                  pub use super::super::super::__with_name2 as TcpConnection;
                  pub trait HostTcpConnectionWithStore<T>: wasmtime::component::HasData {
                  }
                  impl<H: ?Sized, T> HostTcpConnectionWithStore<T> for H
                  where H: wasmtime::component::HasData
                  {}
                  pub trait HostTcpConnection:  {
                    /// The peer's address, as `ip:port`.
                    fn peer_address(&mut self, self_: wasmtime::component::Resource<TcpConnection>,) -> Result<wasmtime::component::__internal::String,super::super::super::_TrappableError0>;
                    /// Streams over the connection. Every call gives a new pair over the
                    /// same socket; drop them before putting the connection in a box.
                    fn streams(&mut self, self_: wasmtime::component::Resource<TcpConnection>,) -> Result<(wasmtime::component::Resource<InputStream>,wasmtime::component::Resource<OutputStream>,),super::super::super::_TrappableError0>;
                    /// Shut down the sending side (the peer reads end-of-file).
                    fn shutdown_send(&mut self, self_: wasmtime::component::Resource<TcpConnection>,) -> Result<(),super::super::super::_TrappableError0>;
                    /// Ready when input is waiting (or the peer closed).
                    fn subscribe(&mut self, self_: wasmtime::component::Resource<TcpConnection>,) -> wasmtime::Result<wasmtime::component::Resource<Pollable>>;
                    fn drop(&mut self, rep: wasmtime::component::Resource<TcpConnection>) -> wasmtime::Result<()>;}
                    impl <_T: HostTcpConnection + ?Sized > HostTcpConnection for &mut _T {
                      /// The peer's address, as `ip:port`.
                      fn peer_address(&mut self, self_: wasmtime::component::Resource<TcpConnection>,) -> Result<wasmtime::component::__internal::String,super::super::super::_TrappableError0>{
                        HostTcpConnection::peer_address(*self,self_,)}
                        /// Streams over the connection. Every call gives a new pair over the
                        /// same socket; drop them before putting the connection in a box.
                        fn streams(&mut self, self_: wasmtime::component::Resource<TcpConnection>,) -> Result<(wasmtime::component::Resource<InputStream>,wasmtime::component::Resource<OutputStream>,),super::super::super::_TrappableError0>{
                          HostTcpConnection::streams(*self,self_,)}
                          /// Shut down the sending side (the peer reads end-of-file).
                          fn shutdown_send(&mut self, self_: wasmtime::component::Resource<TcpConnection>,) -> Result<(),super::super::super::_TrappableError0>{
                            HostTcpConnection::shutdown_send(*self,self_,)}
                            /// Ready when input is waiting (or the peer closed).
                            fn subscribe(&mut self, self_: wasmtime::component::Resource<TcpConnection>,) -> wasmtime::Result<wasmtime::component::Resource<Pollable>>{
                              HostTcpConnection::subscribe(*self,self_,)}
                              fn drop(&mut self, rep: wasmtime::component::Resource<TcpConnection>) -> wasmtime::Result<()> {
                                HostTcpConnection::drop(*self, rep)
                              }
                              
                            }
                            pub trait HostWithStore<T>: wasmtime::component::HasData + HostTcpListenerWithStore<T> + HostTcpConnectionWithStore<T> {
                            }
                            impl<H: ?Sized, T> HostWithStore<T> for H
                            where H: wasmtime::component::HasData + HostTcpListenerWithStore<T> + HostTcpConnectionWithStore<T>
                            {}
                            pub trait Host: HostTcpListener + HostTcpConnection {
                              /// The listener the host granted under `name` (`fdbox serve --listen
                              /// NAME=ADDR`), bound by the host on the first call and shared by every
                              /// later call and instance of the same host.
                              /// 
                              /// Fails with `access-denied` if no listener of that name was granted,
                              /// `already-exists` if the address is taken (another process, or a
                              /// listener a previous host left in a box: take that one instead).
                              fn listener(&mut self, name: wasmtime::component::__internal::String,) -> Result<wasmtime::component::Resource<TcpListener>,super::super::super::_TrappableError0>;
                            }
                            impl <_T: Host + ?Sized > Host for &mut _T {
                              /// The listener the host granted under `name` (`fdbox serve --listen
                              /// NAME=ADDR`), bound by the host on the first call and shared by every
                              /// later call and instance of the same host.
                              /// 
                              /// Fails with `access-denied` if no listener of that name was granted,
                              /// `already-exists` if the address is taken (another process, or a
                              /// listener a previous host left in a box: take that one instead).
                              fn listener(&mut self, name: wasmtime::component::__internal::String,) -> Result<wasmtime::component::Resource<TcpListener>,super::super::super::_TrappableError0>{
                                Host::listener(*self,name,)}
                              }
                              
                              pub fn add_to_linker_instance<T, D>(
                              inst: &mut wasmtime::component::LinkerInstance<'_, T>,
                              
                              
                              host_getter: fn(&mut T) -> D::Data<'_>,
                              ) -> wasmtime::Result<()>
                              where
                              D: HostWithStore<T>,
                              for<'a> D::Data<'a>: Host + super::super::super::fdbox::fdbox::types::Host,
                              T: 'static ,
                              {
                                
                                inst.resource(
                                "tcp-listener",
                                wasmtime::component::ResourceType::host::<TcpListener>(),
                                move |mut store, rep| -> wasmtime::Result<()> {
                                  
                                  let resource = wasmtime::component::Resource::new_own(rep);
                                  wasmtime::ToWasmtimeResult::to_wasmtime_result(
                                  HostTcpListener::drop(&mut host_getter(store.data_mut()), resource)
                                  )
                                },
                                )?;
                                inst.resource(
                                "tcp-connection",
                                wasmtime::component::ResourceType::host::<TcpConnection>(),
                                move |mut store, rep| -> wasmtime::Result<()> {
                                  
                                  let resource = wasmtime::component::Resource::new_own(rep);
                                  wasmtime::ToWasmtimeResult::to_wasmtime_result(
                                  HostTcpConnection::drop(&mut host_getter(store.data_mut()), resource)
                                  )
                                },
                                )?;
                                inst.func_wrap("[method]tcp-listener.accept", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<TcpListener>, )| {
                                  let host = &mut host_getter(caller.data_mut());
                                  let r = HostTcpListener::accept(host, arg0,);
                                  Ok((match r {
                                    Ok(a) => Ok(a),
                                    Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                  },))}
                                  )?;
                                  inst.func_wrap("[method]tcp-listener.local-address", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<TcpListener>, )| {
                                    let host = &mut host_getter(caller.data_mut());
                                    let r = HostTcpListener::local_address(host, arg0,);
                                    Ok((match r {
                                      Ok(a) => Ok(a),
                                      Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                    },))}
                                    )?;
                                    inst.func_wrap("[method]tcp-listener.subscribe", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<TcpListener>, )| {
                                      let host = &mut host_getter(caller.data_mut());
                                      let r = HostTcpListener::subscribe(host, arg0,);
                                      Ok((wasmtime::ToWasmtimeResult::to_wasmtime_result(r)?,))
                                    }
                                    )?;
                                    inst.func_wrap("[method]tcp-connection.peer-address", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<TcpConnection>, )| {
                                      let host = &mut host_getter(caller.data_mut());
                                      let r = HostTcpConnection::peer_address(host, arg0,);
                                      Ok((match r {
                                        Ok(a) => Ok(a),
                                        Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                      },))}
                                      )?;
                                      inst.func_wrap("[method]tcp-connection.streams", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<TcpConnection>, )| {
                                        let host = &mut host_getter(caller.data_mut());
                                        let r = HostTcpConnection::streams(host, arg0,);
                                        Ok((match r {
                                          Ok(a) => Ok(a),
                                          Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                        },))}
                                        )?;
                                        inst.func_wrap("[method]tcp-connection.shutdown-send", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<TcpConnection>, )| {
                                          let host = &mut host_getter(caller.data_mut());
                                          let r = HostTcpConnection::shutdown_send(host, arg0,);
                                          Ok((match r {
                                            Ok(a) => Ok(a),
                                            Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                          },))}
                                          )?;
                                          inst.func_wrap("[method]tcp-connection.subscribe", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<TcpConnection>, )| {
                                            let host = &mut host_getter(caller.data_mut());
                                            let r = HostTcpConnection::subscribe(host, arg0,);
                                            Ok((wasmtime::ToWasmtimeResult::to_wasmtime_result(r)?,))
                                          }
                                          )?;
                                          inst.func_wrap("listener", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::__internal::String, )| {
                                            let host = &mut host_getter(caller.data_mut());
                                            let r = Host::listener(host, arg0,);
                                            Ok((match r {
                                              Ok(a) => Ok(a),
                                              Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                            },))}
                                            )?;
                                            Ok(())
                                          }
                                          
                                          pub fn add_to_linker<T, D>(
                                          linker: &mut wasmtime::component::Linker<T>,
                                          
                                          host_getter: fn(&mut T) -> D::Data<'_>,
                                          ) -> wasmtime::Result<()>
                                          where
                                          D: HostWithStore<T>,
                                          for<'a> D::Data<'a>: Host + super::super::super::fdbox::fdbox::types::Host,
                                          T: 'static ,
                                          {
                                            let mut inst = linker.instance("fdbox:fdbox/sockets@0.1.0")?;
                                            add_to_linker_instance::<T, D>(&mut inst, host_getter)
                                          }
                                          
                                          
                                        }
                                        
                                        
                                        #[allow(clippy::all)]
                                        pub mod boxes {
                                          #[allow(unused_imports)]
                                          
                                          
                                          pub type ErrorCode = super::super::super::fdbox::fdbox::types::ErrorCode;
                                          const _: () = {
                                            assert!(1 == <ErrorCode as wasmtime::component::ComponentType>::SIZE32);
                                            assert!(1 == <ErrorCode as wasmtime::component::ComponentType>::ALIGN32);
                                          };
                                          pub type HandleKind = super::super::super::fdbox::fdbox::types::HandleKind;
                                          const _: () = {
                                            assert!(1 == <HandleKind as wasmtime::component::ComponentType>::SIZE32);
                                            assert!(1 == <HandleKind as wasmtime::component::ComponentType>::ALIGN32);
                                          };
                                          pub type Descriptor = super::super::super::__with_name4::filesystem::types::Descriptor;
                                          pub type TcpListener = super::super::super::fdbox::fdbox::sockets::TcpListener;
                                          pub type TcpConnection = super::super::super::fdbox::fdbox::sockets::TcpConnection;
                                          /// Any handle a box can hold.
                                          #[derive(wasmtime::component::ComponentType)]
                                          #[derive(wasmtime::component::Lift)]
                                          #[derive(wasmtime::component::Lower)]
                                          #[component(variant)]
                                          pub enum Handle{
                                            /// A file, directory or memory file.
                                            #[component(name = "descriptor")] Descriptor(wasmtime::component::Resource<Descriptor>),
                                            /// A listening TCP socket.
                                            #[component(name = "tcp-listener")] TcpListener(wasmtime::component::Resource<TcpListener>),
                                            /// A connected TCP socket.
                                            #[component(name = "tcp-connection")] TcpConnection(wasmtime::component::Resource<TcpConnection>),
                                          }
                                          impl core::fmt::Debug for Handle {
                                            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                                              match self {
                                                Handle::Descriptor(e) => {
                                                  f.debug_tuple("Handle::Descriptor").field(e).finish()
                                                }
                                                Handle::TcpListener(e) => {
                                                  f.debug_tuple("Handle::TcpListener").field(e).finish()
                                                }
                                                Handle::TcpConnection(e) => {
                                                  f.debug_tuple("Handle::TcpConnection").field(e).finish()
                                                }
                                              }
                                            }
                                          }
                                          const _: () = {
                                            assert!(8 == <Handle as wasmtime::component::ComponentType>::SIZE32);
                                            assert!(4 == <Handle as wasmtime::component::ComponentType>::ALIGN32);
                                          };
                                          /// A `put-handle` that was refused; the handle comes back unchanged.
                                          #[derive(wasmtime::component::ComponentType)]
                                          #[derive(wasmtime::component::Lift)]
                                          #[derive(wasmtime::component::Lower)]
                                          #[component(record)]
                                          pub struct RefusedHandle {
                                            /// Why the put was refused.
                                            #[component(name = "code")]
                                            pub code: ErrorCode,
                                            /// The handle that was offered, returned to the caller.
                                            #[component(name = "handle")]
                                            pub handle: Handle,
                                          }
                                          impl core::fmt::Debug for RefusedHandle {
                                            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                                              f.debug_struct("RefusedHandle").field("code", &self.code).field("handle", &self.handle).finish()
                                            }
                                          }
                                          impl core::fmt::Display for RefusedHandle {
                                            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                                              write!(f, "{:?}", self)
                                            }
                                          }
                                          impl core::error::Error for RefusedHandle{}
                                          const _: () = {
                                            assert!(12 == <RefusedHandle as wasmtime::component::ComponentType>::SIZE32);
                                            assert!(4 == <RefusedHandle as wasmtime::component::ComponentType>::ALIGN32);
                                          };
                                          /// A `put-handles` that was refused: nothing was put, and every handle
                                          /// comes back unchanged, in the order offered.
                                          #[derive(wasmtime::component::ComponentType)]
                                          #[derive(wasmtime::component::Lift)]
                                          #[derive(wasmtime::component::Lower)]
                                          #[component(record)]
                                          pub struct RefusedHandles {
                                            /// Why the batch was refused.
                                            #[component(name = "code")]
                                            pub code: ErrorCode,
                                            /// The handles that were offered, returned to the caller.
                                            #[component(name = "handles")]
                                            pub handles: wasmtime::component::__internal::Vec<Handle>,
                                          }
                                          impl core::fmt::Debug for RefusedHandles {
                                            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                                              f.debug_struct("RefusedHandles").field("code", &self.code).field("handles", &self.handles).finish()
                                            }
                                          }
                                          impl core::fmt::Display for RefusedHandles {
                                            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                                              write!(f, "{:?}", self)
                                            }
                                          }
                                          impl core::error::Error for RefusedHandles{}
                                          const _: () = {
                                            assert!(12 == <RefusedHandles as wasmtime::component::ComponentType>::SIZE32);
                                            assert!(4 == <RefusedHandles as wasmtime::component::ComponentType>::ALIGN32);
                                          };
                                          /// A put that was refused. The handle comes back to the guest unchanged,
                                          /// so a bad request never loses it.
                                          #[derive(wasmtime::component::ComponentType)]
                                          #[derive(wasmtime::component::Lift)]
                                          #[derive(wasmtime::component::Lower)]
                                          #[component(record)]
                                          pub struct RefusedPut {
                                            /// Why the put was refused.
                                            #[component(name = "code")]
                                            pub code: ErrorCode,
                                            /// The handle that was offered, returned to the caller.
                                            #[component(name = "handle")]
                                            pub handle: wasmtime::component::Resource<Descriptor>,
                                          }
                                          impl core::fmt::Debug for RefusedPut {
                                            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                                              f.debug_struct("RefusedPut").field("code", &self.code).field("handle", &self.handle).finish()
                                            }
                                          }
                                          impl core::fmt::Display for RefusedPut {
                                            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                                              write!(f, "{:?}", self)
                                            }
                                          }
                                          impl core::error::Error for RefusedPut{}
                                          const _: () = {
                                            assert!(8 == <RefusedPut as wasmtime::component::ComponentType>::SIZE32);
                                            assert!(4 == <RefusedPut as wasmtime::component::ComponentType>::ALIGN32);
                                          };
                                          /// A named handle that is inside a box.
                                          /// 
                                          /// A `box-fd` describes an entry as it was when it was put or listed; it
                                          /// does not hold the handle itself. Take the handle with `box.get`.
                                          pub use super::super::super::__with_name1 as BoxFd;
                                          pub trait HostBoxFdWithStore<T>: wasmtime::component::HasData {
                                          }
                                          impl<H: ?Sized, T> HostBoxFdWithStore<T> for H
                                          where H: wasmtime::component::HasData
                                          {}
                                          pub trait HostBoxFd:  {
                                            /// The entry's name, unique within its box.
                                            fn name(&mut self, self_: wasmtime::component::Resource<BoxFd>,) -> wasmtime::Result<wasmtime::component::__internal::String>;
                                            /// What kind of handle the entry holds.
                                            fn kind(&mut self, self_: wasmtime::component::Resource<BoxFd>,) -> wasmtime::Result<HandleKind>;
                                            /// The name of the box the entry is in.
                                            fn box_name(&mut self, self_: wasmtime::component::Resource<BoxFd>,) -> wasmtime::Result<wasmtime::component::__internal::String>;
                                            fn drop(&mut self, rep: wasmtime::component::Resource<BoxFd>) -> wasmtime::Result<()>;}
                                            impl <_T: HostBoxFd + ?Sized > HostBoxFd for &mut _T {
                                              /// The entry's name, unique within its box.
                                              fn name(&mut self, self_: wasmtime::component::Resource<BoxFd>,) -> wasmtime::Result<wasmtime::component::__internal::String>{
                                                HostBoxFd::name(*self,self_,)}
                                                /// What kind of handle the entry holds.
                                                fn kind(&mut self, self_: wasmtime::component::Resource<BoxFd>,) -> wasmtime::Result<HandleKind>{
                                                  HostBoxFd::kind(*self,self_,)}
                                                  /// The name of the box the entry is in.
                                                  fn box_name(&mut self, self_: wasmtime::component::Resource<BoxFd>,) -> wasmtime::Result<wasmtime::component::__internal::String>{
                                                    HostBoxFd::box_name(*self,self_,)}
                                                    fn drop(&mut self, rep: wasmtime::component::Resource<BoxFd>) -> wasmtime::Result<()> {
                                                      HostBoxFd::drop(*self, rep)
                                                    }
                                                    
                                                  }
                                                  /// A named container of handles, granted to this guest by its host.
                                                  /// 
                                                  /// The resource is a reference by name: it stays valid across seal and
                                                  /// unseal, and its operations fail with `not-found` once the box is
                                                  /// deleted.
                                                  pub use super::super::super::__with_name0 as Box;
                                                  pub trait HostBoxWithStore<T>: wasmtime::component::HasData {
                                                  }
                                                  impl<H: ?Sized, T> HostBoxWithStore<T> for H
                                                  where H: wasmtime::component::HasData
                                                  {}
                                                  pub trait HostBox:  {
                                                    /// Create a new, empty, unsealed box.
                                                    /// 
                                                    /// Fails with `already-exists` if the box exists, `access-denied`
                                                    /// without the `create` permission for that name, `quota-exceeded`
                                                    /// when the guest already has its maximum number of boxes.
                                                    fn create(&mut self, name: wasmtime::component::__internal::String,) -> Result<wasmtime::component::Resource<Box>,super::super::super::_TrappableError0>;
                                                    /// Open an existing box, sealed or not.
                                                    /// 
                                                    /// Fails with `not-found` if no such box exists, `access-denied` if
                                                    /// the box is not granted to this guest.
                                                    fn open(&mut self, name: wasmtime::component::__internal::String,) -> Result<wasmtime::component::Resource<Box>,super::super::super::_TrappableError0>;
                                                    /// Delete a box, sealed or not, and release every handle in it.
                                                    /// 
                                                    /// Needs the `delete` permission.
                                                    fn delete(&mut self, name: wasmtime::component::__internal::String,) -> Result<(),super::super::super::_TrappableError0>;
                                                    /// The box's name.
                                                    fn name(&mut self, self_: wasmtime::component::Resource<Box>,) -> wasmtime::Result<wasmtime::component::__internal::String>;
                                                    /// Move `handle` into the box under `name`.
                                                    /// 
                                                    /// On success the guest no longer holds the handle. On failure it is
                                                    /// returned in `refused-put`: `already-exists` for a taken name,
                                                    /// `box-sealed`, `quota-exceeded` past the entries-per-box limit,
                                                    /// `kind-not-supported` when the device cannot hold that kind.
                                                    /// 
                                                    /// Streams the guest opened on the descriptor before the put
                                                    /// (`read-via-stream`, `write-via-stream`, `append-via-stream`) are
                                                    /// not revoked: they share the open file with the box and go on
                                                    /// working, so bytes written through them after the put (even after
                                                    /// `seal`) are in the file the next instance gets. Drop every stream
                                                    /// on a descriptor before putting it.
                                                    /// 
                                                    /// On the Live Update device (Linux's LUO) a memory file's size is
                                                    /// fixed while its box is sealed, as the kernel preserves it: such
                                                    /// a stream may write within the file, but a write past its end
                                                    /// fails until `unseal` (the box's entries keep the size they had
                                                    /// at `seal`). Other devices have no such limit.
                                                    fn put(&mut self, self_: wasmtime::component::Resource<Box>,name: wasmtime::component::__internal::String,handle: wasmtime::component::Resource<Descriptor>,) -> wasmtime::Result<Result<wasmtime::component::Resource<BoxFd>,RefusedPut>>;
                                                    /// Move the handle named `name` out of the box (take-once).
                                                    /// 
                                                    /// Fails with `not-found` for an unknown entry, `box-sealed`,
                                                    /// `kind-not-supported` for an entry that is no descriptor (a
                                                    /// socket: take it with `get-handle`; it stays in the box).
                                                    fn get(&mut self, self_: wasmtime::component::Resource<Box>,name: wasmtime::component::__internal::String,) -> Result<wasmtime::component::Resource<Descriptor>,super::super::super::_TrappableError0>;
                                                    /// `put` for any handle, sockets included.
                                                    fn put_handle(&mut self, self_: wasmtime::component::Resource<Box>,name: wasmtime::component::__internal::String,handle: Handle,) -> wasmtime::Result<Result<wasmtime::component::Resource<BoxFd>,RefusedHandle>>;
                                                    /// `get` for any handle, sockets included.
                                                    fn get_handle(&mut self, self_: wasmtime::component::Resource<Box>,name: wasmtime::component::__internal::String,) -> Result<Handle,super::super::super::_TrappableError0>;
                                                    /// Put several handles, all or nothing: a refusal (a taken or
                                                    /// repeated name, the quota, a kind the device cannot hold) puts
                                                    /// none. One request to the device (one round trip to the holder
                                                    /// daemon) however many: what a service handing over its
                                                    /// connections wants.
                                                    fn put_handles(&mut self, self_: wasmtime::component::Resource<Box>,entries: wasmtime::component::__internal::Vec<(wasmtime::component::__internal::String,Handle,)>,) -> wasmtime::Result<Result<wasmtime::component::__internal::Vec<wasmtime::component::Resource<BoxFd>>,RefusedHandles>>;
                                                    /// Take several handles, all or nothing, in the order named.
                                                    fn get_handles(&mut self, self_: wasmtime::component::Resource<Box>,names: wasmtime::component::__internal::Vec<wasmtime::component::__internal::String>,) -> Result<wasmtime::component::__internal::Vec<Handle>,super::super::super::_TrappableError0>;
                                                    /// The entries currently in the box, in name order.
                                                    /// 
                                                    /// Allowed on sealed boxes: it shows what a recovery will find. One
                                                    /// exception: on the kernel FDBox device, a box sealed by an earlier
                                                    /// host process keeps its entry list inside the box, where the
                                                    /// kernel lets nobody read while it is sealed, so `entries` there
                                                    /// fails with `box-sealed` until it is unsealed.
                                                    fn entries(&mut self, self_: wasmtime::component::Resource<Box>,) -> Result<wasmtime::component::__internal::Vec<wasmtime::component::Resource<BoxFd>>,super::super::super::_TrappableError0>;
                                                    /// Seal the box: its contents can then be neither added to nor taken
                                                    /// until `unseal`, and it is what survives the guest.
                                                    /// 
                                                    /// Fails with `box-sealed` if already sealed.
                                                    fn seal(&mut self, self_: wasmtime::component::Resource<Box>,) -> Result<(),super::super::super::_TrappableError0>;
                                                    /// Unseal the box so its handles can be taken.
                                                    /// 
                                                    /// Fails with `box-not-sealed` if it is not sealed.
                                                    fn unseal(&mut self, self_: wasmtime::component::Resource<Box>,) -> Result<(),super::super::super::_TrappableError0>;
                                                    /// Whether the box is sealed.
                                                    fn is_sealed(&mut self, self_: wasmtime::component::Resource<Box>,) -> Result<bool,super::super::super::_TrappableError0>;
                                                    fn drop(&mut self, rep: wasmtime::component::Resource<Box>) -> wasmtime::Result<()>;}
                                                    impl <_T: HostBox + ?Sized > HostBox for &mut _T {
                                                      /// Create a new, empty, unsealed box.
                                                      /// 
                                                      /// Fails with `already-exists` if the box exists, `access-denied`
                                                      /// without the `create` permission for that name, `quota-exceeded`
                                                      /// when the guest already has its maximum number of boxes.
                                                      fn create(&mut self, name: wasmtime::component::__internal::String,) -> Result<wasmtime::component::Resource<Box>,super::super::super::_TrappableError0>{
                                                        HostBox::create(*self,name,)}
                                                        /// Open an existing box, sealed or not.
                                                        /// 
                                                        /// Fails with `not-found` if no such box exists, `access-denied` if
                                                        /// the box is not granted to this guest.
                                                        fn open(&mut self, name: wasmtime::component::__internal::String,) -> Result<wasmtime::component::Resource<Box>,super::super::super::_TrappableError0>{
                                                          HostBox::open(*self,name,)}
                                                          /// Delete a box, sealed or not, and release every handle in it.
                                                          /// 
                                                          /// Needs the `delete` permission.
                                                          fn delete(&mut self, name: wasmtime::component::__internal::String,) -> Result<(),super::super::super::_TrappableError0>{
                                                            HostBox::delete(*self,name,)}
                                                            /// The box's name.
                                                            fn name(&mut self, self_: wasmtime::component::Resource<Box>,) -> wasmtime::Result<wasmtime::component::__internal::String>{
                                                              HostBox::name(*self,self_,)}
                                                              /// Move `handle` into the box under `name`.
                                                              /// 
                                                              /// On success the guest no longer holds the handle. On failure it is
                                                              /// returned in `refused-put`: `already-exists` for a taken name,
                                                              /// `box-sealed`, `quota-exceeded` past the entries-per-box limit,
                                                              /// `kind-not-supported` when the device cannot hold that kind.
                                                              /// 
                                                              /// Streams the guest opened on the descriptor before the put
                                                              /// (`read-via-stream`, `write-via-stream`, `append-via-stream`) are
                                                              /// not revoked: they share the open file with the box and go on
                                                              /// working, so bytes written through them after the put (even after
                                                              /// `seal`) are in the file the next instance gets. Drop every stream
                                                              /// on a descriptor before putting it.
                                                              /// 
                                                              /// On the Live Update device (Linux's LUO) a memory file's size is
                                                              /// fixed while its box is sealed, as the kernel preserves it: such
                                                              /// a stream may write within the file, but a write past its end
                                                              /// fails until `unseal` (the box's entries keep the size they had
                                                              /// at `seal`). Other devices have no such limit.
                                                              fn put(&mut self, self_: wasmtime::component::Resource<Box>,name: wasmtime::component::__internal::String,handle: wasmtime::component::Resource<Descriptor>,) -> wasmtime::Result<Result<wasmtime::component::Resource<BoxFd>,RefusedPut>>{
                                                                HostBox::put(*self,self_,name,handle,)}
                                                                /// Move the handle named `name` out of the box (take-once).
                                                                /// 
                                                                /// Fails with `not-found` for an unknown entry, `box-sealed`,
                                                                /// `kind-not-supported` for an entry that is no descriptor (a
                                                                /// socket: take it with `get-handle`; it stays in the box).
                                                                fn get(&mut self, self_: wasmtime::component::Resource<Box>,name: wasmtime::component::__internal::String,) -> Result<wasmtime::component::Resource<Descriptor>,super::super::super::_TrappableError0>{
                                                                  HostBox::get(*self,self_,name,)}
                                                                  /// `put` for any handle, sockets included.
                                                                  fn put_handle(&mut self, self_: wasmtime::component::Resource<Box>,name: wasmtime::component::__internal::String,handle: Handle,) -> wasmtime::Result<Result<wasmtime::component::Resource<BoxFd>,RefusedHandle>>{
                                                                    HostBox::put_handle(*self,self_,name,handle,)}
                                                                    /// `get` for any handle, sockets included.
                                                                    fn get_handle(&mut self, self_: wasmtime::component::Resource<Box>,name: wasmtime::component::__internal::String,) -> Result<Handle,super::super::super::_TrappableError0>{
                                                                      HostBox::get_handle(*self,self_,name,)}
                                                                      /// Put several handles, all or nothing: a refusal (a taken or
                                                                      /// repeated name, the quota, a kind the device cannot hold) puts
                                                                      /// none. One request to the device (one round trip to the holder
                                                                      /// daemon) however many: what a service handing over its
                                                                      /// connections wants.
                                                                      fn put_handles(&mut self, self_: wasmtime::component::Resource<Box>,entries: wasmtime::component::__internal::Vec<(wasmtime::component::__internal::String,Handle,)>,) -> wasmtime::Result<Result<wasmtime::component::__internal::Vec<wasmtime::component::Resource<BoxFd>>,RefusedHandles>>{
                                                                        HostBox::put_handles(*self,self_,entries,)}
                                                                        /// Take several handles, all or nothing, in the order named.
                                                                        fn get_handles(&mut self, self_: wasmtime::component::Resource<Box>,names: wasmtime::component::__internal::Vec<wasmtime::component::__internal::String>,) -> Result<wasmtime::component::__internal::Vec<Handle>,super::super::super::_TrappableError0>{
                                                                          HostBox::get_handles(*self,self_,names,)}
                                                                          /// The entries currently in the box, in name order.
                                                                          /// 
                                                                          /// Allowed on sealed boxes: it shows what a recovery will find. One
                                                                          /// exception: on the kernel FDBox device, a box sealed by an earlier
                                                                          /// host process keeps its entry list inside the box, where the
                                                                          /// kernel lets nobody read while it is sealed, so `entries` there
                                                                          /// fails with `box-sealed` until it is unsealed.
                                                                          fn entries(&mut self, self_: wasmtime::component::Resource<Box>,) -> Result<wasmtime::component::__internal::Vec<wasmtime::component::Resource<BoxFd>>,super::super::super::_TrappableError0>{
                                                                            HostBox::entries(*self,self_,)}
                                                                            /// Seal the box: its contents can then be neither added to nor taken
                                                                            /// until `unseal`, and it is what survives the guest.
                                                                            /// 
                                                                            /// Fails with `box-sealed` if already sealed.
                                                                            fn seal(&mut self, self_: wasmtime::component::Resource<Box>,) -> Result<(),super::super::super::_TrappableError0>{
                                                                              HostBox::seal(*self,self_,)}
                                                                              /// Unseal the box so its handles can be taken.
                                                                              /// 
                                                                              /// Fails with `box-not-sealed` if it is not sealed.
                                                                              fn unseal(&mut self, self_: wasmtime::component::Resource<Box>,) -> Result<(),super::super::super::_TrappableError0>{
                                                                                HostBox::unseal(*self,self_,)}
                                                                                /// Whether the box is sealed.
                                                                                fn is_sealed(&mut self, self_: wasmtime::component::Resource<Box>,) -> Result<bool,super::super::super::_TrappableError0>{
                                                                                  HostBox::is_sealed(*self,self_,)}
                                                                                  fn drop(&mut self, rep: wasmtime::component::Resource<Box>) -> wasmtime::Result<()> {
                                                                                    HostBox::drop(*self, rep)
                                                                                  }
                                                                                  
                                                                                }
                                                                                pub trait HostWithStore<T>: wasmtime::component::HasData + HostBoxFdWithStore<T> + HostBoxWithStore<T> {
                                                                                }
                                                                                impl<H: ?Sized, T> HostWithStore<T> for H
                                                                                where H: wasmtime::component::HasData + HostBoxFdWithStore<T> + HostBoxWithStore<T>
                                                                                {}
                                                                                pub trait Host: HostBoxFd + HostBox {
                                                                                  /// Names of the existing boxes this guest may see, in name order.
                                                                                  fn list_boxes(&mut self, ) -> Result<wasmtime::component::__internal::Vec<wasmtime::component::__internal::String>,super::super::super::_TrappableError0>;
                                                                                }
                                                                                impl <_T: Host + ?Sized > Host for &mut _T {
                                                                                  /// Names of the existing boxes this guest may see, in name order.
                                                                                  fn list_boxes(&mut self, ) -> Result<wasmtime::component::__internal::Vec<wasmtime::component::__internal::String>,super::super::super::_TrappableError0>{
                                                                                    Host::list_boxes(*self,)}
                                                                                  }
                                                                                  
                                                                                  pub fn add_to_linker_instance<T, D>(
                                                                                  inst: &mut wasmtime::component::LinkerInstance<'_, T>,
                                                                                  
                                                                                  
                                                                                  host_getter: fn(&mut T) -> D::Data<'_>,
                                                                                  ) -> wasmtime::Result<()>
                                                                                  where
                                                                                  D: HostWithStore<T>,
                                                                                  for<'a> D::Data<'a>: Host + super::super::super::fdbox::fdbox::types::Host,
                                                                                  T: 'static ,
                                                                                  {
                                                                                    
                                                                                    inst.resource(
                                                                                    "box-fd",
                                                                                    wasmtime::component::ResourceType::host::<BoxFd>(),
                                                                                    move |mut store, rep| -> wasmtime::Result<()> {
                                                                                      
                                                                                      let resource = wasmtime::component::Resource::new_own(rep);
                                                                                      wasmtime::ToWasmtimeResult::to_wasmtime_result(
                                                                                      HostBoxFd::drop(&mut host_getter(store.data_mut()), resource)
                                                                                      )
                                                                                    },
                                                                                    )?;
                                                                                    inst.resource(
                                                                                    "box",
                                                                                    wasmtime::component::ResourceType::host::<Box>(),
                                                                                    move |mut store, rep| -> wasmtime::Result<()> {
                                                                                      
                                                                                      let resource = wasmtime::component::Resource::new_own(rep);
                                                                                      wasmtime::ToWasmtimeResult::to_wasmtime_result(
                                                                                      HostBox::drop(&mut host_getter(store.data_mut()), resource)
                                                                                      )
                                                                                    },
                                                                                    )?;
                                                                                    inst.func_wrap("[method]box-fd.name", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<BoxFd>, )| {
                                                                                      let host = &mut host_getter(caller.data_mut());
                                                                                      let r = HostBoxFd::name(host, arg0,);
                                                                                      Ok((wasmtime::ToWasmtimeResult::to_wasmtime_result(r)?,))
                                                                                    }
                                                                                    )?;
                                                                                    inst.func_wrap("[method]box-fd.kind", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<BoxFd>, )| {
                                                                                      let host = &mut host_getter(caller.data_mut());
                                                                                      let r = HostBoxFd::kind(host, arg0,);
                                                                                      Ok((wasmtime::ToWasmtimeResult::to_wasmtime_result(r)?,))
                                                                                    }
                                                                                    )?;
                                                                                    inst.func_wrap("[method]box-fd.box-name", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<BoxFd>, )| {
                                                                                      let host = &mut host_getter(caller.data_mut());
                                                                                      let r = HostBoxFd::box_name(host, arg0,);
                                                                                      Ok((wasmtime::ToWasmtimeResult::to_wasmtime_result(r)?,))
                                                                                    }
                                                                                    )?;
                                                                                    inst.func_wrap("[static]box.create", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::__internal::String, )| {
                                                                                      let host = &mut host_getter(caller.data_mut());
                                                                                      let r = HostBox::create(host, arg0,);
                                                                                      Ok((match r {
                                                                                        Ok(a) => Ok(a),
                                                                                        Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                      },))}
                                                                                      )?;
                                                                                      inst.func_wrap("[static]box.open", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::__internal::String, )| {
                                                                                        let host = &mut host_getter(caller.data_mut());
                                                                                        let r = HostBox::open(host, arg0,);
                                                                                        Ok((match r {
                                                                                          Ok(a) => Ok(a),
                                                                                          Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                        },))}
                                                                                        )?;
                                                                                        inst.func_wrap("[static]box.delete", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::__internal::String, )| {
                                                                                          let host = &mut host_getter(caller.data_mut());
                                                                                          let r = HostBox::delete(host, arg0,);
                                                                                          Ok((match r {
                                                                                            Ok(a) => Ok(a),
                                                                                            Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                          },))}
                                                                                          )?;
                                                                                          inst.func_wrap("[method]box.name", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<Box>, )| {
                                                                                            let host = &mut host_getter(caller.data_mut());
                                                                                            let r = HostBox::name(host, arg0,);
                                                                                            Ok((wasmtime::ToWasmtimeResult::to_wasmtime_result(r)?,))
                                                                                          }
                                                                                          )?;
                                                                                          inst.func_wrap("[method]box.put", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,arg1,arg2,) : (wasmtime::component::Resource<Box>, wasmtime::component::__internal::String, wasmtime::component::Resource<Descriptor>, )| {
                                                                                            let host = &mut host_getter(caller.data_mut());
                                                                                            let r = HostBox::put(host, arg0,arg1,arg2,);
                                                                                            Ok((wasmtime::ToWasmtimeResult::to_wasmtime_result(r)?,))
                                                                                          }
                                                                                          )?;
                                                                                          inst.func_wrap("[method]box.get", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,arg1,) : (wasmtime::component::Resource<Box>, wasmtime::component::__internal::String, )| {
                                                                                            let host = &mut host_getter(caller.data_mut());
                                                                                            let r = HostBox::get(host, arg0,arg1,);
                                                                                            Ok((match r {
                                                                                              Ok(a) => Ok(a),
                                                                                              Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                            },))}
                                                                                            )?;
                                                                                            inst.func_wrap("[method]box.put-handle", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,arg1,arg2,) : (wasmtime::component::Resource<Box>, wasmtime::component::__internal::String, Handle, )| {
                                                                                              let host = &mut host_getter(caller.data_mut());
                                                                                              let r = HostBox::put_handle(host, arg0,arg1,arg2,);
                                                                                              Ok((wasmtime::ToWasmtimeResult::to_wasmtime_result(r)?,))
                                                                                            }
                                                                                            )?;
                                                                                            inst.func_wrap("[method]box.get-handle", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,arg1,) : (wasmtime::component::Resource<Box>, wasmtime::component::__internal::String, )| {
                                                                                              let host = &mut host_getter(caller.data_mut());
                                                                                              let r = HostBox::get_handle(host, arg0,arg1,);
                                                                                              Ok((match r {
                                                                                                Ok(a) => Ok(a),
                                                                                                Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                              },))}
                                                                                              )?;
                                                                                              inst.func_wrap("[method]box.put-handles", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,arg1,) : (wasmtime::component::Resource<Box>, wasmtime::component::__internal::Vec<(wasmtime::component::__internal::String,Handle,)>, )| {
                                                                                                let host = &mut host_getter(caller.data_mut());
                                                                                                let r = HostBox::put_handles(host, arg0,arg1,);
                                                                                                Ok((wasmtime::ToWasmtimeResult::to_wasmtime_result(r)?,))
                                                                                              }
                                                                                              )?;
                                                                                              inst.func_wrap("[method]box.get-handles", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,arg1,) : (wasmtime::component::Resource<Box>, wasmtime::component::__internal::Vec<wasmtime::component::__internal::String>, )| {
                                                                                                let host = &mut host_getter(caller.data_mut());
                                                                                                let r = HostBox::get_handles(host, arg0,arg1,);
                                                                                                Ok((match r {
                                                                                                  Ok(a) => Ok(a),
                                                                                                  Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                                },))}
                                                                                                )?;
                                                                                                inst.func_wrap("[method]box.entries", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<Box>, )| {
                                                                                                  let host = &mut host_getter(caller.data_mut());
                                                                                                  let r = HostBox::entries(host, arg0,);
                                                                                                  Ok((match r {
                                                                                                    Ok(a) => Ok(a),
                                                                                                    Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                                  },))}
                                                                                                  )?;
                                                                                                  inst.func_wrap("[method]box.seal", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<Box>, )| {
                                                                                                    let host = &mut host_getter(caller.data_mut());
                                                                                                    let r = HostBox::seal(host, arg0,);
                                                                                                    Ok((match r {
                                                                                                      Ok(a) => Ok(a),
                                                                                                      Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                                    },))}
                                                                                                    )?;
                                                                                                    inst.func_wrap("[method]box.unseal", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<Box>, )| {
                                                                                                      let host = &mut host_getter(caller.data_mut());
                                                                                                      let r = HostBox::unseal(host, arg0,);
                                                                                                      Ok((match r {
                                                                                                        Ok(a) => Ok(a),
                                                                                                        Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                                      },))}
                                                                                                      )?;
                                                                                                      inst.func_wrap("[method]box.is-sealed", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::Resource<Box>, )| {
                                                                                                        let host = &mut host_getter(caller.data_mut());
                                                                                                        let r = HostBox::is_sealed(host, arg0,);
                                                                                                        Ok((match r {
                                                                                                          Ok(a) => Ok(a),
                                                                                                          Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                                        },))}
                                                                                                        )?;
                                                                                                        inst.func_wrap("list-boxes", move |mut caller: wasmtime::StoreContextMut<'_, T>, () : ()| {
                                                                                                          let host = &mut host_getter(caller.data_mut());
                                                                                                          let r = Host::list_boxes(host, );
                                                                                                          Ok((match r {
                                                                                                            Ok(a) => Ok(a),
                                                                                                            Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                                          },))}
                                                                                                          )?;
                                                                                                          Ok(())
                                                                                                        }
                                                                                                        
                                                                                                        pub fn add_to_linker<T, D>(
                                                                                                        linker: &mut wasmtime::component::Linker<T>,
                                                                                                        
                                                                                                        host_getter: fn(&mut T) -> D::Data<'_>,
                                                                                                        ) -> wasmtime::Result<()>
                                                                                                        where
                                                                                                        D: HostWithStore<T>,
                                                                                                        for<'a> D::Data<'a>: Host + super::super::super::fdbox::fdbox::types::Host,
                                                                                                        T: 'static ,
                                                                                                        {
                                                                                                          let mut inst = linker.instance("fdbox:fdbox/boxes@0.1.0")?;
                                                                                                          add_to_linker_instance::<T, D>(&mut inst, host_getter)
                                                                                                        }
                                                                                                        
                                                                                                        
                                                                                                      }
                                                                                                      
                                                                                                      
                                                                                                      #[allow(clippy::all)]
                                                                                                      pub mod memory_files {
                                                                                                        #[allow(unused_imports)]
                                                                                                        
                                                                                                        
                                                                                                        pub type ErrorCode = super::super::super::fdbox::fdbox::types::ErrorCode;
                                                                                                        const _: () = {
                                                                                                          assert!(1 == <ErrorCode as wasmtime::component::ComponentType>::SIZE32);
                                                                                                          assert!(1 == <ErrorCode as wasmtime::component::ComponentType>::ALIGN32);
                                                                                                        };
                                                                                                        pub type Descriptor = super::super::super::__with_name4::filesystem::types::Descriptor;
                                                                                                        pub trait HostWithStore<T>: wasmtime::component::HasData {
                                                                                                        }
                                                                                                        impl<H: ?Sized, T> HostWithStore<T> for H
                                                                                                        where H: wasmtime::component::HasData
                                                                                                        {}
                                                                                                        pub trait Host:  {
                                                                                                          /// Create an empty, readable and writable anonymous memory file (Linux
                                                                                                          /// `memfd_create`) and return it as an ordinary file descriptor, so any
                                                                                                          /// WASI language reads, writes and resizes it with its usual file APIs.
                                                                                                          /// 
                                                                                                          /// `name` labels the file for debugging (it shows in
                                                                                                          /// `/proc/PID/fd` of the host) and follows the fdbox name rules.
                                                                                                          fn create(&mut self, name: wasmtime::component::__internal::String,) -> Result<wasmtime::component::Resource<Descriptor>,super::super::super::_TrappableError0>;
                                                                                                        }
                                                                                                        impl <_T: Host + ?Sized > Host for &mut _T {
                                                                                                          /// Create an empty, readable and writable anonymous memory file (Linux
                                                                                                          /// `memfd_create`) and return it as an ordinary file descriptor, so any
                                                                                                          /// WASI language reads, writes and resizes it with its usual file APIs.
                                                                                                          /// 
                                                                                                          /// `name` labels the file for debugging (it shows in
                                                                                                          /// `/proc/PID/fd` of the host) and follows the fdbox name rules.
                                                                                                          fn create(&mut self, name: wasmtime::component::__internal::String,) -> Result<wasmtime::component::Resource<Descriptor>,super::super::super::_TrappableError0>{
                                                                                                            Host::create(*self,name,)}
                                                                                                          }
                                                                                                          
                                                                                                          pub fn add_to_linker_instance<T, D>(
                                                                                                          inst: &mut wasmtime::component::LinkerInstance<'_, T>,
                                                                                                          
                                                                                                          
                                                                                                          host_getter: fn(&mut T) -> D::Data<'_>,
                                                                                                          ) -> wasmtime::Result<()>
                                                                                                          where
                                                                                                          D: HostWithStore<T>,
                                                                                                          for<'a> D::Data<'a>: Host + super::super::super::fdbox::fdbox::types::Host,
                                                                                                          T: 'static ,
                                                                                                          {
                                                                                                            
                                                                                                            inst.func_wrap("create", move |mut caller: wasmtime::StoreContextMut<'_, T>, (arg0,) : (wasmtime::component::__internal::String, )| {
                                                                                                              let host = &mut host_getter(caller.data_mut());
                                                                                                              let r = Host::create(host, arg0,);
                                                                                                              Ok((match r {
                                                                                                                Ok(a) => Ok(a),
                                                                                                                Err(e) => Err(wasmtime::ToWasmtimeResult::to_wasmtime_result(super::super::super::fdbox::fdbox::types::Host::convert_error_code(host, e))?),
                                                                                                              },))}
                                                                                                              )?;
                                                                                                              Ok(())
                                                                                                            }
                                                                                                            
                                                                                                            pub fn add_to_linker<T, D>(
                                                                                                            linker: &mut wasmtime::component::Linker<T>,
                                                                                                            
                                                                                                            host_getter: fn(&mut T) -> D::Data<'_>,
                                                                                                            ) -> wasmtime::Result<()>
                                                                                                            where
                                                                                                            D: HostWithStore<T>,
                                                                                                            for<'a> D::Data<'a>: Host + super::super::super::fdbox::fdbox::types::Host,
                                                                                                            T: 'static ,
                                                                                                            {
                                                                                                              let mut inst = linker.instance("fdbox:fdbox/memory-files@0.1.0")?;
                                                                                                              add_to_linker_instance::<T, D>(&mut inst, host_getter)
                                                                                                            }
                                                                                                            
                                                                                                            
                                                                                                          }
                                                                                                          
                                                                                                          
                                                                                                          #[allow(clippy::all)]
                                                                                                          pub mod lifecycle {
                                                                                                            #[allow(unused_imports)]
                                                                                                            
                                                                                                            
                                                                                                            pub type Pollable = super::super::super::__with_name4::io::poll::Pollable;
                                                                                                            /// What the host asks of this instance.
                                                                                                            #[derive(wasmtime::component::ComponentType)]
                                                                                                            #[derive(wasmtime::component::Lift)]
                                                                                                            #[derive(wasmtime::component::Lower)]
                                                                                                            #[component(enum)]
                                                                                                            #[derive(Clone, Copy, Eq, PartialEq)]
                                                                                                            #[repr(u8)]
                                                                                                            pub enum Request {
                                                                                                              /// Nothing: keep serving.
                                                                                                              #[component(name = "none")]None,
                                                                                                              /// Hand over to a new version of the component, in this host.
                                                                                                              #[component(name = "upgrade")]Upgrade,
                                                                                                              /// Hand over and stop: a new host process will take over (or none).
                                                                                                              #[component(name = "stop")]Stop,
                                                                                                            }
                                                                                                            impl core::fmt::Debug for Request {
                                                                                                              fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                                                                                                                match self {
                                                                                                                  Request::None => {
                                                                                                                    f.debug_tuple("Request::None").finish()
                                                                                                                  }
                                                                                                                  Request::Upgrade => {
                                                                                                                    f.debug_tuple("Request::Upgrade").finish()
                                                                                                                  }
                                                                                                                  Request::Stop => {
                                                                                                                    f.debug_tuple("Request::Stop").finish()
                                                                                                                  }
                                                                                                                }
                                                                                                              }
                                                                                                            }
                                                                                                            const _: () = {
                                                                                                              assert!(1 == <Request as wasmtime::component::ComponentType>::SIZE32);
                                                                                                              assert!(1 == <Request as wasmtime::component::ComponentType>::ALIGN32);
                                                                                                            };
                                                                                                            pub trait HostWithStore<T>: wasmtime::component::HasData {
                                                                                                            }
                                                                                                            impl<H: ?Sized, T> HostWithStore<T> for H
                                                                                                            where H: wasmtime::component::HasData
                                                                                                            {}
                                                                                                            pub trait Host:  {
                                                                                                              /// Ready once the host asks for something (`requested` is not `none`).
                                                                                                              fn subscribe(&mut self, ) -> wasmtime::Result<wasmtime::component::Resource<Pollable>>;
                                                                                                              /// What the host asks now.
                                                                                                              fn requested(&mut self, ) -> wasmtime::Result<Request>;
                                                                                                              /// This instance has boxed and sealed what the next one needs; it will
                                                                                                              /// return from `run` next.
                                                                                                              fn handed_over(&mut self, ) -> wasmtime::Result<()>;
                                                                                                              /// This instance has taken over and serves: for the host, the upgrade
                                                                                                              /// to it succeeded.
                                                                                                              fn ready(&mut self, ) -> wasmtime::Result<()>;
                                                                                                            }
                                                                                                            impl <_T: Host + ?Sized > Host for &mut _T {
                                                                                                              /// Ready once the host asks for something (`requested` is not `none`).
                                                                                                              fn subscribe(&mut self, ) -> wasmtime::Result<wasmtime::component::Resource<Pollable>>{
                                                                                                                Host::subscribe(*self,)}
                                                                                                                /// What the host asks now.
                                                                                                                fn requested(&mut self, ) -> wasmtime::Result<Request>{
                                                                                                                  Host::requested(*self,)}
                                                                                                                  /// This instance has boxed and sealed what the next one needs; it will
                                                                                                                  /// return from `run` next.
                                                                                                                  fn handed_over(&mut self, ) -> wasmtime::Result<()>{
                                                                                                                    Host::handed_over(*self,)}
                                                                                                                    /// This instance has taken over and serves: for the host, the upgrade
                                                                                                                    /// to it succeeded.
                                                                                                                    fn ready(&mut self, ) -> wasmtime::Result<()>{
                                                                                                                      Host::ready(*self,)}
                                                                                                                    }
                                                                                                                    
                                                                                                                    pub fn add_to_linker_instance<T, D>(
                                                                                                                    inst: &mut wasmtime::component::LinkerInstance<'_, T>,
                                                                                                                    
                                                                                                                    
                                                                                                                    host_getter: fn(&mut T) -> D::Data<'_>,
                                                                                                                    ) -> wasmtime::Result<()>
                                                                                                                    where
                                                                                                                    D: HostWithStore<T>,
                                                                                                                    for<'a> D::Data<'a>: Host,
                                                                                                                    T: 'static ,
                                                                                                                    {
                                                                                                                      
                                                                                                                      inst.func_wrap("subscribe", move |mut caller: wasmtime::StoreContextMut<'_, T>, () : ()| {
                                                                                                                        let host = &mut host_getter(caller.data_mut());
                                                                                                                        let r = Host::subscribe(host, );
                                                                                                                        Ok((wasmtime::ToWasmtimeResult::to_wasmtime_result(r)?,))
                                                                                                                      }
                                                                                                                      )?;
                                                                                                                      inst.func_wrap("requested", move |mut caller: wasmtime::StoreContextMut<'_, T>, () : ()| {
                                                                                                                        let host = &mut host_getter(caller.data_mut());
                                                                                                                        let r = Host::requested(host, );
                                                                                                                        Ok((wasmtime::ToWasmtimeResult::to_wasmtime_result(r)?,))
                                                                                                                      }
                                                                                                                      )?;
                                                                                                                      inst.func_wrap("handed-over", move |mut caller: wasmtime::StoreContextMut<'_, T>, () : ()| {
                                                                                                                        let host = &mut host_getter(caller.data_mut());
                                                                                                                        let r = Host::handed_over(host, );
                                                                                                                        wasmtime::ToWasmtimeResult::to_wasmtime_result(r)
                                                                                                                      }
                                                                                                                      )?;
                                                                                                                      inst.func_wrap("ready", move |mut caller: wasmtime::StoreContextMut<'_, T>, () : ()| {
                                                                                                                        let host = &mut host_getter(caller.data_mut());
                                                                                                                        let r = Host::ready(host, );
                                                                                                                        wasmtime::ToWasmtimeResult::to_wasmtime_result(r)
                                                                                                                      }
                                                                                                                      )?;
                                                                                                                      Ok(())
                                                                                                                    }
                                                                                                                    
                                                                                                                    pub fn add_to_linker<T, D>(
                                                                                                                    linker: &mut wasmtime::component::Linker<T>,
                                                                                                                    
                                                                                                                    host_getter: fn(&mut T) -> D::Data<'_>,
                                                                                                                    ) -> wasmtime::Result<()>
                                                                                                                    where
                                                                                                                    D: HostWithStore<T>,
                                                                                                                    for<'a> D::Data<'a>: Host,
                                                                                                                    T: 'static ,
                                                                                                                    {
                                                                                                                      let mut inst = linker.instance("fdbox:fdbox/lifecycle@0.1.0")?;
                                                                                                                      add_to_linker_instance::<T, D>(&mut inst, host_getter)
                                                                                                                    }
                                                                                                                    
                                                                                                                    
                                                                                                                  }
                                                                                                                  
                                                                                                                }
                                                                                                              }
                                                                                                              pub mod wasi {
                                                                                                                pub mod clocks {
                                                                                                                  
                                                                                                                  pub mod wall_clock {
                                                                                                                    #[allow(unused_imports)]
                                                                                                                    pub use super::super::super::__with_name4::clocks::wall_clock::*;
                                                                                                                  }
                                                                                                                  
                                                                                                                }
                                                                                                                pub mod filesystem {
                                                                                                                  
                                                                                                                  pub mod types {
                                                                                                                    #[allow(unused_imports)]
                                                                                                                    pub use super::super::super::__with_name4::filesystem::types::*;
                                                                                                                  }
                                                                                                                  
                                                                                                                }
                                                                                                                pub mod io {
                                                                                                                  
                                                                                                                  pub mod error {
                                                                                                                    #[allow(unused_imports)]
                                                                                                                    pub use super::super::super::__with_name4::io::error::*;
                                                                                                                  }
                                                                                                                  
                                                                                                                  
                                                                                                                  pub mod poll {
                                                                                                                    #[allow(unused_imports)]
                                                                                                                    pub use super::super::super::__with_name4::io::poll::*;
                                                                                                                  }
                                                                                                                  
                                                                                                                  
                                                                                                                  pub mod streams {
                                                                                                                    #[allow(unused_imports)]
                                                                                                                    pub use super::super::super::__with_name4::io::streams::*;
                                                                                                                  }
                                                                                                                  
                                                                                                                }
                                                                                                              }
                                                                                                              