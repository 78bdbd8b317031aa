// What the C command guests (`counter.c`, `boxed_file.c`) share: the
// C counterpart of the Rust guests' `fdbox-guest` crate.
//
// `command.h` holds the bindings that wit-bindgen generates for the world
// `fdbox:fdbox/command` (wit/fdbox.wit); the build script
// (guest-examples/artifacts/build/c.rs) writes them, with `wit_names.h`, to
// a directory of the build and puts it on the include path.
//
// Naming: wit-bindgen's C names are `<package>_<interface>_<item>`, so the
// WIT resource `box` of `fdbox:fdbox/boxes` is `fdbox_fdbox_boxes_own_box_t`
// (an owned handle) and `fdbox_fdbox_boxes_borrow_box_t`, its static
// functions `fdbox_fdbox_boxes_static_box_*` and its methods
// `fdbox_fdbox_boxes_method_box_*`. C has no `Box` of its own, so nothing
// clashes. Types shared by the whole world (strings, lists) are prefixed
// with the world's name, `command_`.

#ifndef FDBOX_GUEST_H
#define FDBOX_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "command.h"

typedef wasi_filesystem_types_own_descriptor_t own_descriptor_t;
typedef wasi_filesystem_types_borrow_descriptor_t borrow_descriptor_t;
typedef wasi_filesystem_types_error_code_t fs_error_code_t;
typedef fdbox_fdbox_types_error_code_t fdbox_error_code_t;
typedef fdbox_fdbox_boxes_own_box_t own_box_t;
typedef fdbox_fdbox_boxes_borrow_box_t borrow_box_t;

// A WIT string that borrows the NUL-terminated `s` (no copy; `s` must
// outlive the call it is passed to).
command_string_t wit_str(const char *s);

// The WIT (kebab-case) name of an fdbox `error-code`, as the Rust guests
// print it (`not-found`, `access-denied`, ...).
const char *fdbox_error_name(fdbox_error_code_t code);

// The WIT name of a `wasi:filesystem` `error-code` (`no-entry`, ...).
const char *fs_error_name(fs_error_code_t code);

// The command's arguments (`wasi:cli/environment.get-arguments`, the
// program name first) as NUL-terminated strings; `*argc` is their number.
// Never freed: they live as long as the instance.
char **get_arguments(int *argc);

// Bytes read from a file; `free(bytes.ptr)` when done.
typedef struct {
    uint8_t *ptr;
    size_t len;
} bytes_t;

// Reads up to `len` bytes from `offset`, fewer only if the file ends first.
// `descriptor.read` may return fewer bytes than asked without being at end
// of file, so this keeps reading until it has `len` bytes, the read reports
// end of file, or it returns nothing.
bool read_up_to(borrow_descriptor_t fd, uint64_t offset, uint64_t len, bytes_t *out,
                fs_error_code_t *err);

// Reads from `offset` to the end of the file.
bool read_to_end(borrow_descriptor_t fd, uint64_t offset, bytes_t *out, fs_error_code_t *err);

// Writes all `len` bytes of `buf` at `offset` (`descriptor.write` may write
// less than asked).
bool write_all(borrow_descriptor_t fd, const void *buf, size_t len, uint64_t offset,
               fs_error_code_t *err);

// The directory the host preopened at the guest path `path` (`fdbox run
// --dir HOST_DIR::/data`), or false if it did not.
bool preopen(const char *path, own_descriptor_t *out);

// Opens the box `name`, creating it if it does not exist yet. On failure
// `*op` names the call that failed (`"open box"` or `"create box"`) and
// `*code` its error code.
bool open_or_create(const char *name, own_box_t *out, const char **op, fdbox_error_code_t *code);

#endif
