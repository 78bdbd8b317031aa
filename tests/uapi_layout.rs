//! The Rust UAPI definitions of both kernel devices (FDBox's
//! `fdbox_host::device::kernel::uapi`, Live Update's
//! `fdbox_host::device::kernel::liveupdate_uapi`) against a C compiler: the structs
//! and request macros are written in C exactly as
//! `shared/spec/KERNEL-UAPI.md` gives them (`_IO` from `<linux/ioctl.h>`,
//! `__u64`/`__aligned_u64`/`__u32`/`__s32`/`__u8` from `<linux/types.h>`),
//! compiled with the system `cc` into a temporary directory, run, and every
//! size, offset and request number it prints must equal the Rust one.

#[path = "support/kernel_source.rs"]
mod kernel_source;

use fdbox_host::device::kernel::liveupdate_uapi::*;
use fdbox_host::device::kernel::uapi::*;
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::process::Command;

/// The C side of FDBox: the spec's table as a header would write it.
const FDBOX_C_SOURCE: &str = r#"
#include <linux/ioctl.h>
#include <linux/types.h>
#include <stddef.h>
#include <stdio.h>

#define FDBOX_NAME_LEN 256
#define FDBOX_TYPE '.'
#define FDBOX_BASE 0

struct fdbox_create_box {
	__u64 flags;
	__u8 name[FDBOX_NAME_LEN];
};

struct fdbox_delete_box {
	__u64 flags;
	__u8 name[FDBOX_NAME_LEN];
};

struct fdbox_put_fd {
	__u64 flags;
	__u32 fd;
	__u32 pad;
	__u8 name[FDBOX_NAME_LEN];
};

struct fdbox_get_fd {
	__u64 flags;
	__u32 pad;
	__u8 name[FDBOX_NAME_LEN];
};

#define FDBOX_CREATE_BOX _IO(FDBOX_TYPE, FDBOX_BASE + 0)
#define FDBOX_DELETE_BOX _IO(FDBOX_TYPE, FDBOX_BASE + 1)
#define FDBOX_PUT_FD     _IO(FDBOX_TYPE, FDBOX_BASE + 2)
#define FDBOX_GET_FD     _IO(FDBOX_TYPE, FDBOX_BASE + 3)
#define FDBOX_SEAL       _IO(FDBOX_TYPE, FDBOX_BASE + 4)
#define FDBOX_UNSEAL     _IO(FDBOX_TYPE, FDBOX_BASE + 5)

#define SHOW(key, value) printf("%s %lu\n", key, (unsigned long)(value))

int main(void)
{
	SHOW("FDBOX_NAME_LEN", FDBOX_NAME_LEN);
	SHOW("FDBOX_TYPE", FDBOX_TYPE);
	SHOW("FDBOX_BASE", FDBOX_BASE);
	SHOW("FDBOX_CREATE_BOX", FDBOX_CREATE_BOX);
	SHOW("FDBOX_DELETE_BOX", FDBOX_DELETE_BOX);
	SHOW("FDBOX_PUT_FD", FDBOX_PUT_FD);
	SHOW("FDBOX_GET_FD", FDBOX_GET_FD);
	SHOW("FDBOX_SEAL", FDBOX_SEAL);
	SHOW("FDBOX_UNSEAL", FDBOX_UNSEAL);
	SHOW("sizeof(struct fdbox_create_box)", sizeof(struct fdbox_create_box));
	SHOW("offsetof(struct fdbox_create_box, flags)", offsetof(struct fdbox_create_box, flags));
	SHOW("offsetof(struct fdbox_create_box, name)", offsetof(struct fdbox_create_box, name));
	SHOW("sizeof(struct fdbox_delete_box)", sizeof(struct fdbox_delete_box));
	SHOW("offsetof(struct fdbox_delete_box, flags)", offsetof(struct fdbox_delete_box, flags));
	SHOW("offsetof(struct fdbox_delete_box, name)", offsetof(struct fdbox_delete_box, name));
	SHOW("sizeof(struct fdbox_put_fd)", sizeof(struct fdbox_put_fd));
	SHOW("offsetof(struct fdbox_put_fd, flags)", offsetof(struct fdbox_put_fd, flags));
	SHOW("offsetof(struct fdbox_put_fd, fd)", offsetof(struct fdbox_put_fd, fd));
	SHOW("offsetof(struct fdbox_put_fd, pad)", offsetof(struct fdbox_put_fd, pad));
	SHOW("offsetof(struct fdbox_put_fd, name)", offsetof(struct fdbox_put_fd, name));
	SHOW("sizeof(struct fdbox_get_fd)", sizeof(struct fdbox_get_fd));
	SHOW("offsetof(struct fdbox_get_fd, flags)", offsetof(struct fdbox_get_fd, flags));
	SHOW("offsetof(struct fdbox_get_fd, pad)", offsetof(struct fdbox_get_fd, pad));
	SHOW("offsetof(struct fdbox_get_fd, name)", offsetof(struct fdbox_get_fd, name));
	return 0;
}
"#;

/// The C side of Live Update: the spec's table as a header would write it.
const LIVEUPDATE_C_SOURCE: &str = r#"
#include <linux/ioctl.h>
#include <linux/types.h>
#include <stddef.h>
#include <stdio.h>

#define LIVEUPDATE_IOCTL_TYPE 0xBA
#define LIVEUPDATE_SESSION_NAME_LENGTH 64

struct liveupdate_ioctl_create_session {
	__u32 size;
	__s32 fd;
	__u8 name[LIVEUPDATE_SESSION_NAME_LENGTH];
};

struct liveupdate_ioctl_retrieve_session {
	__u32 size;
	__s32 fd;
	__u8 name[LIVEUPDATE_SESSION_NAME_LENGTH];
};

struct liveupdate_session_preserve_fd {
	__u32 size;
	__s32 fd;
	__aligned_u64 token;
};

struct liveupdate_session_retrieve_fd {
	__u32 size;
	__s32 fd;
	__aligned_u64 token;
};

struct liveupdate_session_finish {
	__u32 size;
	__u32 reserved;
};

struct liveupdate_session_get_name {
	__u32 size;
	__u32 reserved;
	__u8 name[LIVEUPDATE_SESSION_NAME_LENGTH];
};

#define LIVEUPDATE_IOCTL_CREATE_SESSION   _IO(LIVEUPDATE_IOCTL_TYPE, 0x00)
#define LIVEUPDATE_IOCTL_RETRIEVE_SESSION _IO(LIVEUPDATE_IOCTL_TYPE, 0x01)
#define LIVEUPDATE_SESSION_PRESERVE_FD    _IO(LIVEUPDATE_IOCTL_TYPE, 0x40)
#define LIVEUPDATE_SESSION_RETRIEVE_FD    _IO(LIVEUPDATE_IOCTL_TYPE, 0x41)
#define LIVEUPDATE_SESSION_FINISH         _IO(LIVEUPDATE_IOCTL_TYPE, 0x42)
#define LIVEUPDATE_SESSION_GET_NAME       _IO(LIVEUPDATE_IOCTL_TYPE, 0x43)

#define SHOW(key, value) printf("%s %lu\n", key, (unsigned long)(value))
#define LAYOUT2(s, a, b) \
	SHOW("sizeof(struct " #s ")", sizeof(struct s)); \
	SHOW("offsetof(struct " #s ", " #a ")", offsetof(struct s, a)); \
	SHOW("offsetof(struct " #s ", " #b ")", offsetof(struct s, b))

int main(void)
{
	SHOW("LIVEUPDATE_IOCTL_TYPE", LIVEUPDATE_IOCTL_TYPE);
	SHOW("LIVEUPDATE_SESSION_NAME_LENGTH", LIVEUPDATE_SESSION_NAME_LENGTH);
	SHOW("LIVEUPDATE_IOCTL_CREATE_SESSION", LIVEUPDATE_IOCTL_CREATE_SESSION);
	SHOW("LIVEUPDATE_IOCTL_RETRIEVE_SESSION", LIVEUPDATE_IOCTL_RETRIEVE_SESSION);
	SHOW("LIVEUPDATE_SESSION_PRESERVE_FD", LIVEUPDATE_SESSION_PRESERVE_FD);
	SHOW("LIVEUPDATE_SESSION_RETRIEVE_FD", LIVEUPDATE_SESSION_RETRIEVE_FD);
	SHOW("LIVEUPDATE_SESSION_FINISH", LIVEUPDATE_SESSION_FINISH);
	SHOW("LIVEUPDATE_SESSION_GET_NAME", LIVEUPDATE_SESSION_GET_NAME);
	SHOW("offsetof(struct liveupdate_ioctl_create_session, size)", offsetof(struct liveupdate_ioctl_create_session, size));
	LAYOUT2(liveupdate_ioctl_create_session, fd, name);
	LAYOUT2(liveupdate_ioctl_retrieve_session, fd, name);
	LAYOUT2(liveupdate_session_preserve_fd, fd, token);
	LAYOUT2(liveupdate_session_retrieve_fd, fd, token);
	LAYOUT2(liveupdate_session_finish, size, reserved);
	LAYOUT2(liveupdate_session_get_name, reserved, name);
	return 0;
}
"#;

/// The Rust side of Live Update, under the C program's keys.
fn liveupdate_rust_values() -> Vec<(&'static str, u64)> {
    let session = |field: &str| match field {
        "fd" => offset_of!(LiveupdateSession, fd),
        _ => offset_of!(LiveupdateSession, name),
    } as u64;
    let session_fd = |field: &str| match field {
        "fd" => offset_of!(LiveupdateSessionFd, fd),
        _ => offset_of!(LiveupdateSessionFd, token),
    } as u64;
    vec![
        ("LIVEUPDATE_IOCTL_TYPE", LIVEUPDATE_IOCTL_TYPE.into()),
        (
            "LIVEUPDATE_SESSION_NAME_LENGTH",
            LIVEUPDATE_SESSION_NAME_LENGTH as u64,
        ),
        (
            "LIVEUPDATE_IOCTL_CREATE_SESSION",
            LIVEUPDATE_IOCTL_CREATE_SESSION.into(),
        ),
        (
            "LIVEUPDATE_IOCTL_RETRIEVE_SESSION",
            LIVEUPDATE_IOCTL_RETRIEVE_SESSION.into(),
        ),
        (
            "LIVEUPDATE_SESSION_PRESERVE_FD",
            LIVEUPDATE_SESSION_PRESERVE_FD.into(),
        ),
        (
            "LIVEUPDATE_SESSION_RETRIEVE_FD",
            LIVEUPDATE_SESSION_RETRIEVE_FD.into(),
        ),
        (
            "LIVEUPDATE_SESSION_FINISH",
            LIVEUPDATE_SESSION_FINISH.into(),
        ),
        (
            "LIVEUPDATE_SESSION_GET_NAME",
            LIVEUPDATE_SESSION_GET_NAME.into(),
        ),
        (
            "sizeof(struct liveupdate_session_get_name)",
            size_of::<LiveupdateSessionGetName>() as u64,
        ),
        (
            "offsetof(struct liveupdate_session_get_name, reserved)",
            offset_of!(LiveupdateSessionGetName, reserved) as u64,
        ),
        (
            "offsetof(struct liveupdate_session_get_name, name)",
            offset_of!(LiveupdateSessionGetName, name) as u64,
        ),
        (
            "offsetof(struct liveupdate_ioctl_create_session, size)",
            offset_of!(LiveupdateSession, size) as u64,
        ),
        (
            "sizeof(struct liveupdate_ioctl_create_session)",
            size_of::<LiveupdateSession>() as u64,
        ),
        (
            "offsetof(struct liveupdate_ioctl_create_session, fd)",
            session("fd"),
        ),
        (
            "offsetof(struct liveupdate_ioctl_create_session, name)",
            session("name"),
        ),
        (
            "sizeof(struct liveupdate_ioctl_retrieve_session)",
            size_of::<LiveupdateSession>() as u64,
        ),
        (
            "offsetof(struct liveupdate_ioctl_retrieve_session, fd)",
            session("fd"),
        ),
        (
            "offsetof(struct liveupdate_ioctl_retrieve_session, name)",
            session("name"),
        ),
        (
            "sizeof(struct liveupdate_session_preserve_fd)",
            size_of::<LiveupdateSessionFd>() as u64,
        ),
        (
            "offsetof(struct liveupdate_session_preserve_fd, fd)",
            session_fd("fd"),
        ),
        (
            "offsetof(struct liveupdate_session_preserve_fd, token)",
            session_fd("token"),
        ),
        (
            "sizeof(struct liveupdate_session_retrieve_fd)",
            size_of::<LiveupdateSessionFd>() as u64,
        ),
        (
            "offsetof(struct liveupdate_session_retrieve_fd, fd)",
            session_fd("fd"),
        ),
        (
            "offsetof(struct liveupdate_session_retrieve_fd, token)",
            session_fd("token"),
        ),
        (
            "sizeof(struct liveupdate_session_finish)",
            size_of::<LiveupdateSessionFinish>() as u64,
        ),
        (
            "offsetof(struct liveupdate_session_finish, size)",
            offset_of!(LiveupdateSessionFinish, size) as u64,
        ),
        (
            "offsetof(struct liveupdate_session_finish, reserved)",
            offset_of!(LiveupdateSessionFinish, reserved) as u64,
        ),
    ]
}

/// The Rust side of FDBox, under the C program's keys.
fn fdbox_rust_values() -> Vec<(&'static str, u64)> {
    vec![
        ("FDBOX_NAME_LEN", FDBOX_NAME_LEN as u64),
        ("FDBOX_TYPE", FDBOX_TYPE.into()),
        ("FDBOX_BASE", FDBOX_BASE.into()),
        ("FDBOX_CREATE_BOX", FDBOX_CREATE_BOX.into()),
        ("FDBOX_DELETE_BOX", FDBOX_DELETE_BOX.into()),
        ("FDBOX_PUT_FD", FDBOX_PUT_FD.into()),
        ("FDBOX_GET_FD", FDBOX_GET_FD.into()),
        ("FDBOX_SEAL", FDBOX_SEAL.into()),
        ("FDBOX_UNSEAL", FDBOX_UNSEAL.into()),
        (
            "sizeof(struct fdbox_create_box)",
            size_of::<FdboxCreateBox>() as u64,
        ),
        (
            "offsetof(struct fdbox_create_box, flags)",
            offset_of!(FdboxCreateBox, flags) as u64,
        ),
        (
            "offsetof(struct fdbox_create_box, name)",
            offset_of!(FdboxCreateBox, name) as u64,
        ),
        (
            "sizeof(struct fdbox_delete_box)",
            size_of::<FdboxDeleteBox>() as u64,
        ),
        (
            "offsetof(struct fdbox_delete_box, flags)",
            offset_of!(FdboxDeleteBox, flags) as u64,
        ),
        (
            "offsetof(struct fdbox_delete_box, name)",
            offset_of!(FdboxDeleteBox, name) as u64,
        ),
        (
            "sizeof(struct fdbox_put_fd)",
            size_of::<FdboxPutFd>() as u64,
        ),
        (
            "offsetof(struct fdbox_put_fd, flags)",
            offset_of!(FdboxPutFd, flags) as u64,
        ),
        (
            "offsetof(struct fdbox_put_fd, fd)",
            offset_of!(FdboxPutFd, fd) as u64,
        ),
        (
            "offsetof(struct fdbox_put_fd, pad)",
            offset_of!(FdboxPutFd, pad) as u64,
        ),
        (
            "offsetof(struct fdbox_put_fd, name)",
            offset_of!(FdboxPutFd, name) as u64,
        ),
        (
            "sizeof(struct fdbox_get_fd)",
            size_of::<FdboxGetFd>() as u64,
        ),
        (
            "offsetof(struct fdbox_get_fd, flags)",
            offset_of!(FdboxGetFd, flags) as u64,
        ),
        (
            "offsetof(struct fdbox_get_fd, pad)",
            offset_of!(FdboxGetFd, pad) as u64,
        ),
        (
            "offsetof(struct fdbox_get_fd, name)",
            offset_of!(FdboxGetFd, name) as u64,
        ),
    ]
}

/// A fresh directory for the C program `tag`.
#[path = "../host/tests/support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

fn scratch_dir(tag: &str) -> TempDir {
    TempDir::new(&format!("uapi-layout-{tag}"))
}

/// Compile and run the C program `c_source`; its values by key.
fn c_values(tag: &str, c_source: &str) -> BTreeMap<String, u64> {
    let dir = scratch_dir(tag);
    let source = dir.join("uapi.c");
    let binary = dir.join("uapi");
    std::fs::write(&source, c_source).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let compiled = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the C compiler `{cc}` (set CC to another one): {e}")
        });
    assert!(
        compiled.status.success(),
        "`{cc}` failed to compile {} ({}):\n{}",
        source.display(),
        compiled.status,
        String::from_utf8_lossy(&compiled.stderr)
    );
    let ran = Command::new(&binary).output().unwrap();
    assert!(
        ran.status.success(),
        "{} failed: {}",
        binary.display(),
        ran.status
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(ran.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (key, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("unexpected line from the C program: {line:?}"));
            (key.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// Every Rust value equals the C program's under the same key, and each
/// side checks the same keys.
fn assert_matches(module: &str, c: BTreeMap<String, u64>, rust: Vec<(&str, u64)>) {
    assert_eq!(
        c.len(),
        rust.len(),
        "the C program and the Rust table check different things"
    );
    let mismatches: Vec<String> = rust
        .iter()
        .filter_map(|(key, rust_value)| match c.get(*key) {
            Some(c_value) if c_value == rust_value => None,
            Some(c_value) => Some(format!(
                "{key}: C says {c_value} ({c_value:#x}), Rust says {rust_value} ({rust_value:#x})"
            )),
            None => Some(format!("{key}: the C program did not print it")),
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{module} disagrees with the C compiler on x86_64:\n  {}",
        mismatches.join("\n  ")
    );
}

#[test]
fn fdbox_uapi_matches_the_c_compiler() {
    assert_matches(
        "fdbox_host::device::kernel::uapi",
        c_values("fdbox", FDBOX_C_SOURCE),
        fdbox_rust_values(),
    );
}

#[test]
fn liveupdate_uapi_matches_the_c_compiler() {
    assert_matches(
        "fdbox_host::device::kernel::liveupdate_uapi",
        c_values("liveupdate", LIVEUPDATE_C_SOURCE),
        liveupdate_rust_values(),
    );
}

/// The same keys, with the structs and requests of the kernel's own
/// `include/uapi/linux/liveupdate.h` (Linux 7.2) instead of the spec's,
/// when a source tree is there (see [`kernel_source::kernel_source_tree`]);
/// skipped, saying why, when not.
#[test]
fn liveupdate_uapi_matches_the_kernels_header() {
    let tree = match kernel_source::kernel_source_tree() {
        Ok(tree) => tree,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let header = std::fs::read_to_string(tree.join("include/uapi/linux/liveupdate.h")).unwrap();
    let main = &LIVEUPDATE_C_SOURCE[LIVEUPDATE_C_SOURCE.find("#define SHOW").unwrap()..];
    let source = format!("#include <stddef.h>\n#include <stdio.h>\n{header}\n{main}");
    assert_matches(
        "fdbox_host::device::kernel::liveupdate_uapi (against Linux's header)",
        c_values("liveupdate-kernel-header", &source),
        liveupdate_rust_values(),
    );
}
