// `boxed-file`: an open file that outlives the instance that opened it; the
// C twin of guest-examples/rust/boxed-file, with the same output.
//
// The first instance opens `notes.txt` in the preopened directory `/data`,
// writes a line, moves the open descriptor into the box `files` (entry
// `notes`) and seals it. The next instance (the host runs it with
// `--restart always --max-restarts 1`) never opens the file by path: it
// takes the very same descriptor out of the box, reads what the first one
// wrote and appends to it.

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdbox_guest.h"

#define BOX "files"
#define ENTRY "notes"
#define FILE_NAME "notes.txt"
#define PREOPEN "/data"

#define FIRST_LINE "hello from the first instance\n"
#define SECOND_LINE "and the second instance\n"

// Prints `boxed-file: <message>` on stderr and returns false: what every
// failure below ends with.
static bool fail(const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    fputs("boxed-file: ", stderr);
    vfprintf(stderr, format, ap);
    fputc('\n', stderr);
    va_end(ap);
    return false;
}

// Measures the UTF-8 sequence at `p` (at most `len` bytes): returns how
// many bytes of it are well-formed (at least 1) and sets `*valid` if that is
// a whole character. An invalid sequence is then the maximal well-formed
// prefix that Rust's `String::from_utf8_lossy` replaces with one U+FFFD.
static size_t utf8_next(const uint8_t *p, size_t len, bool *valid) {
    uint8_t b = p[0];
    size_t n;                      // the length the first byte announces
    uint8_t lo = 0x80, hi = 0xbf;  // the range allowed for the second byte
    if (b < 0x80) {
        *valid = true;
        return 1;
    } else if (b >= 0xc2 && b <= 0xdf) {
        n = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3;
        if (b == 0xe0) lo = 0xa0;  // no overlong forms
        if (b == 0xed) hi = 0x9f;  // no surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4;
        if (b == 0xf0) lo = 0x90;  // no overlong forms
        if (b == 0xf4) hi = 0x8f;  // nothing past U+10FFFF
    } else {
        *valid = false;
        return 1;
    }
    size_t i = 1;
    for (; i < n && i < len; i++) {
        uint8_t lower = i == 1 ? lo : 0x80, upper = i == 1 ? hi : 0xbf;
        if (p[i] < lower || p[i] > upper) {
            break;
        }
    }
    *valid = i == n;
    return i;
}

// Writes `text` to `out` as Rust's `String::from_utf8_lossy` shows it:
// every invalid sequence becomes U+FFFD.
static void put_lossy(FILE *out, const uint8_t *text, size_t len) {
    size_t i = 0;
    while (i < len) {
        bool valid;
        size_t n = utf8_next(text + i, len - i, &valid);
        if (valid) {
            fwrite(text + i, 1, n, out);
        } else {
            fputs("\xef\xbf\xbd", out);
        }
        i += n;
    }
}

static bool first_instance(borrow_box_t bx) {
    own_descriptor_t data;
    if (!preopen(PREOPEN, &data)) {
        return fail("no preopened directory " PREOPEN " (run with --dir HOST_DIR::" PREOPEN ")");
    }
    command_string_t file = wit_str(FILE_NAME);
    own_descriptor_t notes;
    fs_error_code_t fs_err;
    bool opened = wasi_filesystem_types_method_descriptor_open_at(
        wasi_filesystem_types_borrow_descriptor(data), 0, &file,
        WASI_FILESYSTEM_TYPES_OPEN_FLAGS_CREATE | WASI_FILESYSTEM_TYPES_OPEN_FLAGS_TRUNCATE,
        WASI_FILESYSTEM_TYPES_DESCRIPTOR_FLAGS_READ | WASI_FILESYSTEM_TYPES_DESCRIPTOR_FLAGS_WRITE,
        &notes, &fs_err);
    wasi_filesystem_types_descriptor_drop_own(data);
    if (!opened) {
        return fail("open " FILE_NAME ": %s", fs_error_name(fs_err));
    }
    if (!write_all(wasi_filesystem_types_borrow_descriptor(notes), FIRST_LINE,
                   strlen(FIRST_LINE), 0, &fs_err)) {
        wasi_filesystem_types_descriptor_drop_own(notes);
        return fail("write " FILE_NAME ": %s", fs_error_name(fs_err));
    }

    // From here on the host holds the open file, not this instance.
    command_string_t entry = wit_str(ENTRY);
    fdbox_fdbox_boxes_own_box_fd_t put;
    fdbox_fdbox_boxes_refused_put_t refused;
    if (!fdbox_fdbox_boxes_method_box_put(bx, &entry, notes, &put, &refused)) {
        wasi_filesystem_types_descriptor_drop_own(refused.handle);
        return fail("put " ENTRY ": %s", fdbox_error_name(refused.code));
    }
    fdbox_fdbox_boxes_box_fd_drop_own(put);
    fdbox_error_code_t code;
    if (!fdbox_fdbox_boxes_method_box_seal(bx, &code)) {
        return fail("seal: %s", fdbox_error_name(code));
    }
    printf("boxed " FILE_NAME "\n");
    return true;
}

static bool second_instance(borrow_box_t bx) {
    fdbox_error_code_t code;
    if (!fdbox_fdbox_boxes_method_box_unseal(bx, &code)) {
        return fail("unseal: %s", fdbox_error_name(code));
    }
    command_string_t entry = wit_str(ENTRY);
    own_descriptor_t notes;
    if (!fdbox_fdbox_boxes_method_box_get(bx, &entry, &notes, &code)) {
        return fail("get " ENTRY ": %s", fdbox_error_name(code));
    }
    borrow_descriptor_t fd = wasi_filesystem_types_borrow_descriptor(notes);

    bytes_t content;
    fs_error_code_t fs_err;
    if (!read_to_end(fd, 0, &content, &fs_err)) {
        wasi_filesystem_types_descriptor_drop_own(notes);
        return fail("read: %s", fs_error_name(fs_err));
    }
    // One line of output however the file ends; the final newline is the
    // file's, not part of the message.
    size_t shown = content.len;
    if (shown > 0 && content.ptr[shown - 1] == '\n') {
        shown--;
    }
    fputs("recovered: ", stdout);
    put_lossy(stdout, content.ptr, shown);
    fputc('\n', stdout);

    // Positional writes: append at the end of what was read.
    bool ok = write_all(fd, SECOND_LINE, strlen(SECOND_LINE), content.len, &fs_err);
    free(content.ptr);
    wasi_filesystem_types_descriptor_drop_own(notes);
    if (!ok) {
        return fail("append: %s", fs_error_name(fs_err));
    }
    printf("appended\n");
    return true;
}

static bool run(void) {
    own_box_t bx;
    const char *op;
    fdbox_error_code_t code;
    // Whether opening or creating it failed, the message is the same.
    if (!open_or_create(BOX, &bx, &op, &code)) {
        return fail("open box " BOX ": %s", fdbox_error_name(code));
    }
    borrow_box_t borrowed = fdbox_fdbox_boxes_borrow_box(bx);
    bool ok;
    bool sealed;
    // A sealed box means an earlier instance got as far as its checkpoint.
    if (!fdbox_fdbox_boxes_method_box_is_sealed(borrowed, &sealed, &code)) {
        ok = fail("is-sealed: %s", fdbox_error_name(code));
    } else if (sealed) {
        ok = second_instance(borrowed);
    } else {
        ok = first_instance(borrowed);
    }
    fdbox_fdbox_boxes_box_drop_own(bx);
    return ok;
}

bool exports_wasi_cli_run_run(void) {
    // Line-buffered like Rust's stdout.
    setvbuf(stdout, NULL, _IOLBF, 0);
    return run();
}
