/* What Live Update's calls cost, for the VM lane (tests/vm/init.sh runs it
 * on the real /dev/liveupdate and, in the same VM, under `fdbox emulate
 * --device liveupdate`, so the two are measured side by side).
 *
 *   luo_bench before   CREATE_SESSION + close, and PRESERVE_FD of N memfds
 *                      into session "bench" (kept for the kexec: prints
 *                      "ready" and waits)
 *   luo_bench after    RETRIEVE_SESSION "bench", RETRIEVE_FD of its N
 *                      memfds, FINISH
 *
 * Each figure is the median of R rounds, in ns per call, printed as
 * "measure NAME NS"; "measure baseline NS" is fcntl(F_GETFD), a syscall
 * that does nothing, measured in the same rounds. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../c/liveupdate_uapi.h"

enum { N = 256, ROUNDS = 9, CREATES = 64, BASELINE = 2000 };

static void die(const char *what) {
    fprintf(stderr, "luo_bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int session_op(int dev, unsigned long req, const char *name) {
    struct liveupdate_session s = { .size = sizeof s, .fd = -1 };
    strncpy((char *)s.name, name, LIVEUPDATE_SESSION_NAME_LENGTH - 1);
    if (ioctl(dev, req, &s) != 0) return -1;
    return s.fd;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    return v[n / 2];
}

static double baseline_round(void) {
    double t = now_ns();
    for (int i = 0; i < BASELINE; i++) fcntl(0, F_GETFD);
    return (now_ns() - t) / BASELINE;
}

static int open_device(void) {
    int dev = open("/dev/liveupdate", O_RDWR | O_CLOEXEC);
    if (dev < 0) die("open /dev/liveupdate");
    return dev;
}

static int before(void) {
    int dev = open_device();
    double create[ROUNDS], preserve[ROUNDS], base[ROUNDS];
    char name[32];
    for (int r = 0; r < ROUNDS; r++) {
        base[r] = baseline_round();
        double t = now_ns();
        for (int i = 0; i < CREATES; i++) {
            snprintf(name, sizeof name, "create-%d-%d", r, i);
            int s = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, name);
            if (s < 0) die("CREATE_SESSION");
            close(s);
        }
        create[r] = (now_ns() - t) / CREATES;
        /* PRESERVE_FD of N fresh memfds into a session of its own; the
         * last round's session is the one kept for the kexec. */
        int s = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, r == ROUNDS - 1 ? "bench" : "scratch");
        if (s < 0) die("CREATE_SESSION");
        int fds[N];
        for (int i = 0; i < N; i++) {
            fds[i] = memfd_create("luo-bench", MFD_CLOEXEC);
            if (fds[i] < 0 || write(fds[i], "x", 1) != 1) die("memfd");
        }
        t = now_ns();
        for (int i = 0; i < N; i++) {
            struct liveupdate_session_fd p = { .size = sizeof p, .fd = fds[i], .token = i };
            if (ioctl(s, LIVEUPDATE_SESSION_PRESERVE_FD, &p) != 0) die("PRESERVE_FD");
        }
        preserve[r] = (now_ns() - t) / N;
        for (int i = 0; i < N; i++) close(fds[i]);
        if (r != ROUNDS - 1) close(s);
    }
    printf("measure baseline %.0f\n", median(base, ROUNDS));
    printf("measure create_session+close %.0f\n", median(create, ROUNDS));
    printf("measure preserve_fd %.0f\n", median(preserve, ROUNDS));
    printf("ready\n");
    fflush(stdout);
    close(dev); /* the session stays: another process may open the device */
    pause();
    return 0;
}

static int after(void) {
    int dev = open_device();
    double base = baseline_round();
    int s = session_op(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, "bench");
    if (s < 0) die("RETRIEVE_SESSION bench");
    double t = now_ns();
    for (int i = 0; i < N; i++) {
        struct liveupdate_session_fd p = { .size = sizeof p, .fd = -1, .token = i };
        if (ioctl(s, LIVEUPDATE_SESSION_RETRIEVE_FD, &p) != 0) die("RETRIEVE_FD");
        close(p.fd);
    }
    double retrieve = (now_ns() - t) / N;
    struct liveupdate_session_finish f = { .size = sizeof f };
    if (ioctl(s, LIVEUPDATE_SESSION_FINISH, &f) != 0) die("FINISH");
    printf("measure baseline %.0f\n", base);
    printf("measure retrieve_fd+close %.0f\n", retrieve);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "before")) return before();
    if (argc == 2 && !strcmp(argv[1], "after")) return after();
    fprintf(stderr, "usage: luo_bench before|after\n");
    return 2;
}
