// `counter`: a `u64` counter that survives crashes of the instance; the C
// twin of guest-examples/rust/counter, line for line the same behaviour.
//
// The counter lives in a memory file inside the fdbox box `counter` (entry
// `state`, the count as a little-endian `u64` at offset 0, so a box one
// language wrote is continued by the other). Each step takes the file out of
// the box, increments the counter, puts the file back and seals the box:
// that is the checkpoint. When the instance dies after a checkpoint, the
// next one (`fdbox run --restart on-failure`) finds the sealed box and
// carries on from the same count.
//
// Usage: `counter [--box NAME] [--until N] [--crash-every K]`
//
// Without `--until` it does one step and exits, so every run adds one.

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdbox_guest.h"

// The entry of the box that holds the memory file with the count.
#define STATE "state"

#define USAGE "usage: counter [--box NAME] [--until N] [--crash-every K]"

// Command-line options.
typedef struct {
    const char *box_name;
    bool has_until;
    uint64_t until;
    bool has_crash_every;
    uint64_t crash_every;
} args_t;

// An operation that failed, with the WIT `error-code` it failed with.
typedef struct {
    const char *op;
    const char *code;
} failure_t;

// Writes `s` as Rust's `{:?}` does for a string (the usage errors quote the
// offending argument the way the Rust guest does): in double quotes, with
// `"`, `\` and control characters escaped.
static void print_quoted(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '\t': fputs("\\t", out); break;
        case '\r': fputs("\\r", out); break;
        case '\n': fputs("\\n", out); break;
        case '\\': fputs("\\\\", out); break;
        case '"': fputs("\\\"", out); break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                fprintf(out, "\\u{%x}", *p);
            } else {
                fputc(*p, out);
            }
        }
    }
    fputc('"', out);
}

// Rust's `u64::from_str`: an optional `+`, then one or more decimal digits,
// nothing else, no overflow.
static bool parse_u64(const char *s, uint64_t *out) {
    if (*s == '+') {
        s++;
    }
    if (*s == '\0') {
        return false;
    }
    uint64_t n = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
        unsigned digit = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - digit) / 10) {
            return false;
        }
        n = n * 10 + digit;
    }
    *out = n;
    return true;
}

// Parses the arguments into `args`; on a usage error prints
// `counter: <why>` and returns false.
static bool parse_args(int argc, char **argv, args_t *args) {
    args->box_name = "counter";
    args->has_until = false;
    args->has_crash_every = false;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        bool is_box = strcmp(flag, "--box") == 0;
        bool is_until = strcmp(flag, "--until") == 0;
        bool is_crash_every = strcmp(flag, "--crash-every") == 0;
        if (!is_box && !is_until && !is_crash_every) {
            fputs("counter: unknown argument ", stderr);
            print_quoted(stderr, flag);
            fputc('\n', stderr);
            return false;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "counter: %s needs a value\n", flag);
            return false;
        }
        const char *value = argv[++i];
        if (is_box) {
            args->box_name = value;
            continue;
        }
        uint64_t n;
        if (!parse_u64(value, &n)) {
            fprintf(stderr, "counter: %s: not a number: ", flag);
            print_quoted(stderr, value);
            fputc('\n', stderr);
            return false;
        }
        if (is_until) {
            args->has_until = true;
            args->until = n;
        } else if (n == 0) {
            fputs("counter: --crash-every must be at least 1\n", stderr);
            return false;
        } else {
            args->has_crash_every = true;
            args->crash_every = n;
        }
    }
    return true;
}

// The little-endian `u64` at offset 0, or 0 while the file is still short
// of one (a new memory file is empty).
static bool read_count(borrow_descriptor_t fd, uint64_t *count, failure_t *failure) {
    bytes_t bytes;
    fs_error_code_t err;
    if (!read_up_to(fd, 0, 8, &bytes, &err)) {
        *failure = (failure_t){"read state", fs_error_name(err)};
        return false;
    }
    *count = 0;
    if (bytes.len == 8) {
        for (int i = 7; i >= 0; i--) {
            *count = (*count << 8) | bytes.ptr[i];
        }
    }
    free(bytes.ptr);
    return true;
}

// The step once the box is open: unseal, take (or make) the state, count,
// put it back, seal.
static bool step_in(borrow_box_t bx, uint64_t *count, failure_t *failure) {
    fdbox_error_code_t code;
    bool sealed;
    if (!fdbox_fdbox_boxes_method_box_is_sealed(bx, &sealed, &code)) {
        *failure = (failure_t){"is-sealed", fdbox_error_name(code)};
        return false;
    }
    if (sealed && !fdbox_fdbox_boxes_method_box_unseal(bx, &code)) {
        *failure = (failure_t){"unseal", fdbox_error_name(code)};
        return false;
    }
    // An unsealed box may still hold the state when an instance died between
    // unseal and get; taking it from there keeps the count. Only a box
    // without it (the first run) starts from a fresh, empty memory file.
    command_string_t entry = wit_str(STATE);
    own_descriptor_t state;
    if (!fdbox_fdbox_boxes_method_box_get(bx, &entry, &state, &code)) {
        if (code != FDBOX_FDBOX_TYPES_ERROR_CODE_NOT_FOUND) {
            *failure = (failure_t){"get state", fdbox_error_name(code)};
            return false;
        }
        if (!fdbox_fdbox_memory_files_create(&entry, &state, &code)) {
            *failure = (failure_t){"create memory file", fdbox_error_name(code)};
            return false;
        }
    }
    borrow_descriptor_t fd = wasi_filesystem_types_borrow_descriptor(state);

    if (!read_count(fd, count, failure)) {
        wasi_filesystem_types_descriptor_drop_own(state);
        return false;
    }
    *count += 1;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) {
        le[i] = (uint8_t)(*count >> (8 * i));
    }
    fs_error_code_t fs_err;
    if (!write_all(fd, le, sizeof le, 0, &fs_err)) {
        *failure = (failure_t){"write state", fs_error_name(fs_err)};
        wasi_filesystem_types_descriptor_drop_own(state);
        return false;
    }

    // The put moves `state` into the box; a refused put hands it back.
    fdbox_fdbox_boxes_own_box_fd_t put;
    fdbox_fdbox_boxes_refused_put_t refused;
    if (!fdbox_fdbox_boxes_method_box_put(bx, &entry, state, &put, &refused)) {
        *failure = (failure_t){"put state", fdbox_error_name(refused.code)};
        wasi_filesystem_types_descriptor_drop_own(refused.handle);
        return false;
    }
    fdbox_fdbox_boxes_box_fd_drop_own(put);
    if (!fdbox_fdbox_boxes_method_box_seal(bx, &code)) {
        *failure = (failure_t){"seal", fdbox_error_name(code)};
        return false;
    }
    return true;
}

// One checkpointed increment; sets the new count.
static bool step(const char *box_name, uint64_t *count, failure_t *failure) {
    own_box_t bx;
    fdbox_error_code_t code;
    // `op` tells "open box" from "create box" failures.
    if (!open_or_create(box_name, &bx, &failure->op, &code)) {
        failure->code = fdbox_error_name(code);
        return false;
    }
    bool ok = step_in(fdbox_fdbox_boxes_borrow_box(bx), count, failure);
    fdbox_fdbox_boxes_box_drop_own(bx);
    return ok;
}

bool exports_wasi_cli_run_run(void) {
    // Line-buffered like Rust's stdout: a count is on stdout before the trap
    // that may follow it.
    setvbuf(stdout, NULL, _IOLBF, 0);

    int argc;
    char **argv = get_arguments(&argc);
    args_t args;
    if (!parse_args(argc, argv, &args)) {
        fputs(USAGE "\n", stderr);
        // The Rust guest's `ExitCode::from(2)`.
        exit(2);
    }
    for (;;) {
        uint64_t count;
        failure_t failure;
        if (!step(args.box_name, &count, &failure)) {
            fprintf(stderr, "counter: %s failed: %s\n", failure.op, failure.code);
            return false;
        }
        // Printed only after the checkpoint: a count on stdout is one that a
        // crash can no longer take back, so a restarted instance never prints
        // the same count twice.
        printf("count = %" PRIu64 "\n", count);
        if (!args.has_until) {
            return true;
        }
        // `>=`, not `==`: a box left over from an earlier run may already be
        // past the target.
        if (count >= args.until) {
            printf("done at %" PRIu64 "\n", count);
            return true;
        }
        if (args.has_crash_every && count % args.crash_every == 0) {
            fprintf(stderr, "crashing on purpose at %" PRIu64 "\n", count);
            // A trap, not an exit: this is the failure that
            // `--restart on-failure` answers by starting a new instance.
            __builtin_trap();
        }
    }
}
