/* What both kernel-device check programs (emulate_checks.c for FDBox,
 * liveupdate_checks.c for Live Update) print and test with: one line per
 * check, exit 1 on the first failure. */
#ifndef FDBOX_TEST_CHECKS_H
#define FDBOX_TEST_CHECKS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void check(const char *what, int ok) {
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    fflush(stdout);
    if (!ok) exit(1);
}

/* The call failed with `expected`. */
static int fails(long rc, int expected) {
    if (rc >= 0 || errno != expected)
        fprintf(stderr, "  rc=%ld errno=%d (%s), expected %d\n", rc, errno, strerror(errno), expected);
    return rc < 0 && errno == expected;
}

/* A memfd named `label` holding `content`, or -1. */
static int memfd_with_label(const char *label, const char *content) {
    int fd = memfd_create(label, MFD_CLOEXEC);
    if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content)) return -1;
    return fd;
}

static int has_content(int fd, const char *content) {
    char buf[64] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    return n == (ssize_t)strlen(content) && memcmp(buf, content, n) == 0;
}

#endif
