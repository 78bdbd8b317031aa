// Helpers the C command guests share; see fdbox_guest.h.

#include "fdbox_guest.h"

#include <stdlib.h>
#include <string.h>

// `FDBOX_ERROR_CODE_NAMES` and `WASI_FILESYSTEM_ERROR_CODE_NAMES`: the case
// names of both `error-code` enums, in WIT order, which the build script
// takes from the WIT itself so they cannot drift from it.
#include "wit_names.h"

// How much `read_up_to` asks for in one `descriptor.read` call: a bound on
// the buffer the host allocates per call, not on what can be read.
#define READ_CHUNK ((uint64_t)64 * 1024)

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

command_string_t wit_str(const char *s) {
    command_string_t str;
    command_string_set(&str, s);
    return str;
}

const char *fdbox_error_name(fdbox_error_code_t code) {
    return code < COUNT(FDBOX_ERROR_CODE_NAMES) ? FDBOX_ERROR_CODE_NAMES[code] : "unknown";
}

const char *fs_error_name(fs_error_code_t code) {
    return code < COUNT(WASI_FILESYSTEM_ERROR_CODE_NAMES) ? WASI_FILESYSTEM_ERROR_CODE_NAMES[code]
                                                           : "unknown";
}

static void *xrealloc(void *ptr, size_t size) {
    void *p = realloc(ptr, size ? size : 1);
    if (!p) {
        abort();
    }
    return p;
}

char **get_arguments(int *argc) {
    command_list_string_t args;
    wasi_cli_environment_get_arguments(&args);
    char **argv = xrealloc(NULL, (args.len + 1) * sizeof(char *));
    for (size_t i = 0; i < args.len; i++) {
        argv[i] = xrealloc(NULL, args.ptr[i].len + 1);
        memcpy(argv[i], args.ptr[i].ptr, args.ptr[i].len);
        argv[i][args.ptr[i].len] = '\0';
    }
    argv[args.len] = NULL;
    *argc = (int)args.len;
    command_list_string_free(&args);
    return argv;
}

bool read_up_to(borrow_descriptor_t fd, uint64_t offset, uint64_t len, bytes_t *out,
                fs_error_code_t *err) {
    bytes_t content = {NULL, 0};
    for (;;) {
        uint64_t done = content.len;
        if (done >= len) {
            break;
        }
        uint64_t want = len - done < READ_CHUNK ? len - done : READ_CHUNK;
        command_tuple2_list_u8_bool_t chunk;
        if (!wasi_filesystem_types_method_descriptor_read(fd, want, offset + done, &chunk, err)) {
            free(content.ptr);
            return false;
        }
        size_t n = chunk.f0.len;
        bool eof = chunk.f1;
        if (n > 0) {
            content.ptr = xrealloc(content.ptr, content.len + n);
            memcpy(content.ptr + content.len, chunk.f0.ptr, n);
            content.len += n;
        }
        command_list_u8_free(&chunk.f0);
        if (eof || n == 0) {
            break;
        }
    }
    *out = content;
    return true;
}

bool read_to_end(borrow_descriptor_t fd, uint64_t offset, bytes_t *out, fs_error_code_t *err) {
    return read_up_to(fd, offset, UINT64_MAX, out, err);
}

bool write_all(borrow_descriptor_t fd, const void *buf, size_t len, uint64_t offset,
               fs_error_code_t *err) {
    const uint8_t *p = buf;
    while (len > 0) {
        // The bindings take a non-const list but only read it.
        command_list_u8_t list = {(uint8_t *)p, len};
        wasi_filesystem_types_filesize_t n;
        if (!wasi_filesystem_types_method_descriptor_write(fd, &list, offset, &n, err)) {
            return false;
        }
        if (n > len) {
            n = len;
        }
        p += n;
        len -= n;
        offset += n;
    }
    return true;
}

bool preopen(const char *path, own_descriptor_t *out) {
    wasi_filesystem_preopens_list_tuple2_own_descriptor_string_t dirs;
    wasi_filesystem_preopens_get_directories(&dirs);
    size_t path_len = strlen(path);
    size_t found = dirs.len;
    for (size_t i = 0; i < dirs.len && found == dirs.len; i++) {
        command_string_t *guest_path = &dirs.ptr[i].f1;
        if (guest_path->len == path_len && memcmp(guest_path->ptr, path, path_len) == 0) {
            found = i;
        }
    }
    // The list's free function frees the strings only: drop every
    // descriptor but the one handed out.
    for (size_t i = 0; i < dirs.len; i++) {
        if (i == found) {
            *out = dirs.ptr[i].f0;
        } else {
            wasi_filesystem_types_descriptor_drop_own(dirs.ptr[i].f0);
        }
    }
    wasi_filesystem_preopens_list_tuple2_own_descriptor_string_free(&dirs);
    return found < dirs.len;
}

bool open_or_create(const char *name, own_box_t *out, const char **op, fdbox_error_code_t *code) {
    command_string_t box_name = wit_str(name);
    if (fdbox_fdbox_boxes_static_box_open(&box_name, out, code)) {
        return true;
    }
    if (*code != FDBOX_FDBOX_TYPES_ERROR_CODE_NOT_FOUND) {
        *op = "open box";
        return false;
    }
    if (fdbox_fdbox_boxes_static_box_create(&box_name, out, code)) {
        return true;
    }
    *op = "create box";
    return false;
}
