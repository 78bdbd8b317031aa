/* Raw /dev/liveupdate calls, per the Live Update Orchestrator's UAPI and
 * behaviour as of Linux 7.2 (include/uapi/linux/liveupdate.h,
 * kernel/liveupdate/, mm/memfd_luo.c), for tests/emulate.rs to run under
 * `fdbox emulate --device liveupdate` and for the VM lane to run on the
 * real kernel: both must give the same answers. Where the emulator
 * documents a difference (`fdbox emulate --help`), the check says which
 * answer it expects where, and prints a line that names the difference.
 * One line per check; exits 1 on the first failure.
 *
 *   liveupdate_checks checks        every errno path of the device and sessions
 *   liveupdate_checks kexec-before  session "s": memfd "hello" at token 7,
 *                                   offset 2; prints "ok ready" and waits
 *                                   for the kexec (SIGTERM to the emulator)
 *   liveupdate_checks kexec-after   session "s" back as an incoming session
 *   liveupdate_checks kexec-third   "s" did not travel again
 *   liveupdate_checks eacces        run as another uid: the open is EACCES
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"

#include "liveupdate_uapi.h"

/* Whether /dev/liveupdate is `fdbox emulate`'s (its files are sockets),
 * not the kernel's (anon inodes): for the documented differences only. */
static int emulated;

static int is_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    return flags >= 0 && (flags & FD_CLOEXEC);
}

/* CREATE_SESSION or RETRIEVE_SESSION of `name`: the session fd, or -1. */
static int session_op(int dev, unsigned long req, const char *name) {
    struct liveupdate_session s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    s.fd = -1;
    strncpy((char *)s.name, name, LIVEUPDATE_SESSION_NAME_LENGTH - 1);
    if (ioctl(dev, req, &s) != 0) return -1;
    return s.fd;
}

static int preserve(int session, int fd, uint64_t token) {
    struct liveupdate_session_fd p = { .size = sizeof p, .fd = fd, .token = token };
    return ioctl(session, LIVEUPDATE_SESSION_PRESERVE_FD, &p);
}

/* RETRIEVE_FD of `token`: the fd, or -1. */
static int retrieve(int session, uint64_t token) {
    struct liveupdate_session_fd r = { .size = sizeof r, .fd = -1, .token = token };
    if (ioctl(session, LIVEUPDATE_SESSION_RETRIEVE_FD, &r) != 0) return -1;
    return r.fd;
}

static int finish(int session, uint32_t reserved) {
    struct liveupdate_session_finish f = { .size = sizeof f, .reserved = reserved };
    return ioctl(session, LIVEUPDATE_SESSION_FINISH, &f);
}

/* GET_NAME of `session` into `name` (64 bytes): 0, or -1. */
static int get_name(int session, char *name) {
    struct liveupdate_session_get_name g;
    memset(&g, 0, sizeof g);
    g.size = sizeof g;
    if (ioctl(session, LIVEUPDATE_SESSION_GET_NAME, &g) != 0) return -1;
    memcpy(name, g.name, LIVEUPDATE_SESSION_NAME_LENGTH);
    return 0;
}

/* Whether fds `a` and `b` are one open file: they share the file offset. */
static int one_open_file(int a, int b) {
    off_t was = lseek(a, 0, SEEK_CUR);
    int same = lseek(a, was + 3, SEEK_SET) == was + 3 && lseek(b, 0, SEEK_CUR) == was + 3;
    lseek(a, was, SEEK_SET);
    return same;
}

static int memfd_with(const char *content) {
    return memfd_with_label("liveupdate-check", content);
}

static int open_device(void) {
    int dev = open("/dev/liveupdate", O_RDWR | O_CLOEXEC);
    check("open /dev/liveupdate", dev >= 0);
    struct stat st;
    emulated = fstat(dev, &st) == 0 && S_ISSOCK(st.st_mode);
    printf("# /dev/liveupdate is %s\n", emulated ? "fdbox emulate's" : "the kernel's");
    return dev;
}

static int checks(void) {
    int dev = open_device();
    check("a second open: EBUSY", fails(open("/dev/liveupdate", O_RDWR), EBUSY));
    check("a child's open: EBUSY too", ({
        pid_t pid = fork();
        if (pid == 0) _exit(open("/dev/liveupdate", O_RDWR) < 0 && errno == EBUSY ? 0 : 1);
        int st = 0;
        waitpid(pid, &st, 0);
        WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }));
    int copy = dup(dev);
    close(dev);
    check("a dup keeps it open: EBUSY", fails(open("/dev/liveupdate", O_RDWR), EBUSY));
    close(copy);
    dev = open("/dev/liveupdate", O_RDWR);
    check("closed, it opens again", dev >= 0);
    {
        struct stat st;
        emulated = fstat(dev, &st) == 0 && S_ISSOCK(st.st_mode);
    }
    check("without O_CLOEXEC it is not close-on-exec", !is_cloexec(dev));

    int a = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, "a");
    check("create session a: fd in the struct", a >= 0);
    check("the session fd is close-on-exec", is_cloexec(a));
    check("create a again: EEXIST", fails(session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, "a"), EEXIST));
    check("create empty name: EINVAL", fails(session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, ""), EINVAL));
    {
        struct liveupdate_session s;
        memset(&s, 'x', sizeof s);
        s.size = sizeof s;
        check("create unterminated name: EINVAL", fails(ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, &s), EINVAL));
        memset(&s, 0, sizeof s);
        strcpy((char *)s.name, "small");
        s.size = sizeof s - 1;
        check("size too small: EINVAL", fails(ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, &s), EINVAL));
    }
    {
        /* A caller from the future: 80 bytes, the 8 past the struct unknown. */
        union { struct liveupdate_session s; uint8_t bytes[80]; } big;
        memset(&big, 0, sizeof big);
        big.s.size = 80;
        strcpy((char *)big.s.name, "big");
        big.bytes[76] = 1;
        check("non-zero tail bytes: E2BIG", fails(ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, &big), E2BIG));
        big.bytes[76] = 0;
        big.s.fd = -1;
        check("zero tail bytes: accepted", ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, &big) == 0 && big.s.fd >= 0);
        close(big.s.fd);
    }
    {
        /* Struct tails of any length are read (copy_struct_from_user):
         * zero is accepted, a non-zero byte is E2BIG, an unreadable page
         * EFAULT, whichever comes first. */
        long pg = sysconf(_SC_PAGESIZE);
        uint8_t *map = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        check("three pages, the third unmapped", map != MAP_FAILED && munmap(map + 2 * pg, pg) == 0);
        struct liveupdate_session *big = (struct liveupdate_session *)map;
        big->size = 2 * pg;
        big->fd = -1;
        strcpy((char *)big->name, "two-pages");
        check("a struct two pages long, zero tail: accepted", ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, big) == 0 && big->fd >= 0);
        close(big->fd);
        big->size = 3 * pg;
        check("a tail into an unmapped page: EFAULT", fails(ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, big), EFAULT));
        map[pg + 100] = 1;
        check("a non-zero byte before the unmapped page: E2BIG", fails(ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, big), E2BIG));
        munmap(map, 2 * pg);
    }
    check("retrieve unknown session: ENOENT", fails(session_op(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, "nope"), ENOENT));
    check("a session request on the device: EINVAL", fails(finish(dev, 0), EINVAL));
    check("a device request on a session: EINVAL", fails(session_op(a, LIVEUPDATE_IOCTL_CREATE_SESSION, "b"), EINVAL));
    {
        struct liveupdate_session_fd p = { .size = sizeof p };
        check("an unknown session request: EINVAL", fails(ioctl(a, 0xBA44, &p), EINVAL));
        /* Linux 7.2 checks the number before it reads the argument. */
        check("an unknown session request, NULL argument: EINVAL", fails(ioctl(a, 0xBA44, NULL), EINVAL));
        check("an unknown device request, NULL argument: EINVAL", fails(ioctl(dev, 0xBA02, NULL), EINVAL));
        check("a known request, NULL argument: EFAULT", fails(ioctl(a, LIVEUPDATE_SESSION_PRESERVE_FD, NULL), EFAULT));
        check("a known number with direction and size bits: ENOTTY",
              fails(ioctl(a, _IOWR(0xBA, 0x40, struct liveupdate_session_fd), &p), ENOTTY));
        check("a session number of another type: ENOTTY", fails(ioctl(a, 0x1240, &p), ENOTTY));
    }
    {
        char name[LIVEUPDATE_SESSION_NAME_LENGTH];
        check("GET_NAME on outgoing session a: \"a\"", get_name(a, name) == 0 && !strcmp(name, "a"));
        struct liveupdate_session_get_name g;
        memset(&g, 0, sizeof g);
        g.size = sizeof g;
        g.reserved = 1;
        check("GET_NAME with reserved set: EINVAL", fails(ioctl(a, LIVEUPDATE_SESSION_GET_NAME, &g), EINVAL));
        g.reserved = 0;
        g.size = sizeof g - 1;
        check("GET_NAME with a short struct: EINVAL", fails(ioctl(a, LIVEUPDATE_SESSION_GET_NAME, &g), EINVAL));
        char longest[LIVEUPDATE_SESSION_NAME_LENGTH];
        memset(longest, 'n', sizeof longest - 1);
        longest[sizeof longest - 1] = 0;
        int l = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, longest);
        check("GET_NAME of a 63-byte name", l >= 0 && get_name(l, name) == 0 && !strcmp(name, longest));
        close(l);
    }
    {
        check("retrieve an empty name: ENOENT", fails(session_op(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, ""), ENOENT));
        struct liveupdate_session s;
        memset(&s, 'x', sizeof s);
        s.size = sizeof s;
        check("retrieve an unterminated name: ENOENT", fails(ioctl(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, &s), ENOENT));
    }

    int pipes[2];
    check("pipe", pipe(pipes) == 0);
    check("preserve a pipe: ENOENT", fails(preserve(a, pipes[0], 1), ENOENT));
    check("a LUO request on a pipe is the kernel's: ENOTTY", fails(finish(pipes[0], 0), ENOTTY));
    check("preserve a bad fd: EBADF", fails(preserve(a, 9999, 1), EBADF));
    check("preserve the device: ENOENT", fails(preserve(a, dev, 1), ENOENT));
    {
        /* Only where the kernel has hugetlbfs; creating one needs no huge page. */
        int huge = memfd_create("liveupdate-check-huge", MFD_CLOEXEC | MFD_HUGETLB);
        if (huge >= 0)
            check("preserve a hugetlb memfd: ENOENT", fails(preserve(a, huge, 1), ENOENT));
    }
    int memfd = memfd_with("content");
    check("preserve a memfd at token 1", preserve(a, memfd, 1) == 0);
    check("the caller's fd stays open", has_content(memfd, "content"));
    int other = memfd_with("other");
    check("preserve token 1 again: EEXIST", fails(preserve(a, other, 1), EEXIST));
    int dupped = dup(memfd);
    check("preserve the same file (a dup) again: EBUSY", fails(preserve(a, dupped, 2), EBUSY));
    {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
        int reopened = open(path, O_RDWR);
        check("a new open of the memfd, same inode: EBUSY", reopened >= 0 && fails(preserve(a, reopened, 3), EBUSY));
        close(reopened);
    }
    int b = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, "b");
    check("create session b", b >= 0);
    check("preserve a file of session a in b: EBUSY", fails(preserve(b, memfd, 1), EBUSY));
    check("RETRIEVE_FD on an outgoing session: EINVAL", fails(retrieve(a, 1), EINVAL));
    check("FINISH on an outgoing session: EINVAL", fails(finish(a, 0), EINVAL));
    {
        /* The session's direction is checked before the struct's tail. */
        union { struct liveupdate_session_finish f; uint8_t bytes[16]; } big;
        memset(&big, 0, sizeof big);
        big.f.size = sizeof big;
        big.bytes[12] = 1;
        check("FINISH on an outgoing session, non-zero tail: EINVAL", fails(ioctl(a, LIVEUPDATE_SESSION_FINISH, &big), EINVAL));
        check("GET_NAME with a non-zero tail: E2BIG", ({
            union { struct liveupdate_session_get_name g; uint8_t bytes[80]; } gn;
            memset(&gn, 0, sizeof gn);
            gn.g.size = sizeof gn;
            gn.bytes[79] = 1;
            fails(ioctl(a, LIVEUPDATE_SESSION_GET_NAME, &gn), E2BIG);
        }));
    }
    {
        /* A preserved memfd's size is frozen (memfd_luo_preserve's
         * shmem_freeze): "content" is 7 bytes. */
        check("ftruncate a preserved memfd larger: EPERM", fails(ftruncate(memfd, 100), EPERM));
        check("ftruncate it smaller: EPERM", fails(ftruncate(memfd, 3), EPERM));
        check("ftruncate it to its size: allowed", ftruncate(memfd, 7) == 0);
        check("fallocate it: EPERM", fails(fallocate(memfd, 0, 0, 100), EPERM));
        check("fallocate it, KEEP_SIZE: EPERM", fails(fallocate(memfd, FALLOC_FL_KEEP_SIZE, 0, 4), EPERM));
        check("punch a hole in it: EPERM", fails(fallocate(memfd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, 4), EPERM));
        check("fallocate it with a bad mode: EOPNOTSUPP", fails(fallocate(memfd, FALLOC_FL_PUNCH_HOLE, 0, 4), EOPNOTSUPP));
        check("write inside it: allowed", pwrite(memfd, "c", 1, 0) == 1 && has_content(memfd, "content"));
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
        int read_only = open(path, O_RDONLY);
        check("ftruncate it through a read-only open: EINVAL", read_only >= 0 && fails(ftruncate(read_only, 100), EINVAL));
        close(read_only);
        int other_memfd = memfd_with("x");
        check("other memfds still grow", ftruncate(other_memfd, 100) == 0 && fallocate(other_memfd, 0, 0, 200) == 0);
        close(other_memfd);
        /* A write past the end: EPERM on Linux 7.2; the emulator does not
         * trap writes (documented), so there it lands, and only the size at
         * PRESERVE_FD would travel. */
        int s = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, "grow");
        int m = memfd_with("1234");
        check("preserve a memfd in session grow", s >= 0 && preserve(s, m, 1) == 0);
        if (emulated)
            check("a write past its end: accepted (emulator: writes are not trapped; Linux 7.2: EPERM)", pwrite(m, "5", 1, 4) == 1);
        else
            check("a write past its end: EPERM", fails(pwrite(m, "5", 1, 4), EPERM));
        if (!emulated) {
            snprintf(path, sizeof path, "/proc/self/fd/%d", m);
            int ap = open(path, O_WRONLY | O_APPEND);
            check("an append to it: EPERM", ap >= 0 && fails(write(ap, "6", 1), EPERM));
            close(ap);
        }
        close(s);
        check("closing its session unfreezes it", ftruncate(m, 100) == 0 && fallocate(m, 0, 0, 200) == 0);
        close(m);
    }
    {
        /* LUO pins a preserved memfd's pages: F_SEAL_WRITE waits for pins
         * (memfd_wait_for_pins) and gives up, EBUSY; other seals, and an
         * empty memfd (no pages), are fine. */
        int s = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, "seals");
        int m = memfd_create("liveupdate-check-seals", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        int empty = memfd_create("liveupdate-check-empty", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        check("preserve a sealable memfd with a page, and an empty one",
              s >= 0 && m >= 0 && empty >= 0 && write(m, "x", 1) == 1 && preserve(s, m, 1) == 0 && preserve(s, empty, 2) == 0);
        check("F_SEAL_WRITE on it: EBUSY (its pages are pinned)", fails(fcntl(m, F_ADD_SEALS, F_SEAL_WRITE), EBUSY));
        check("F_SEAL_FUTURE_WRITE on it: allowed", fcntl(m, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == 0);
        check("F_SEAL_WRITE on the empty one: allowed", fcntl(empty, F_ADD_SEALS, F_SEAL_WRITE) == 0);
        close(s);
        check("F_SEAL_WRITE once its session is closed: allowed", fcntl(m, F_ADD_SEALS, F_SEAL_WRITE) == 0);
        close(m);
        close(empty);
    }

    {
        /* The emulator's documented limit; the caller's fds may close. */
        int full = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, "full");
        int ok = full >= 0;
        for (int i = 0; ok && i < 1024; i++) {
            int m = memfd_create("liveupdate-check-full", MFD_CLOEXEC);
            ok = m >= 0 && preserve(full, m, i) == 0 && close(m) == 0;
        }
        check("preserve 1024 memfds in a session", ok);
        /* The emulator's documented limit; the kernel's is its memory. */
        if (emulated)
            check("the 1025th: ENOSPC (emulator limit)", fails(preserve(full, other, 1024), ENOSPC));
        else
            check("the 1025th: preserved (no fixed limit on Linux)", preserve(full, other, 1024) == 0);
        close(full);
    }

    close(a);
    a = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, "a");
    check("closing session a frees its name", a >= 0);
    check("and un-preserves its files", preserve(b, dupped, 1) == 0);
    check("an ordinary open still works", open("/proc/self/status", O_RDONLY) >= 0);
    return 0;
}

static int kexec_before(void) {
    int dev = open_device();
    int s = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, "s");
    check("create session s", s >= 0);
    int memfd = memfd_with("hello");
    check("memfd with hello, offset 2", memfd >= 0 && lseek(memfd, 2, SEEK_SET) == 2);
    check("preserve it at token 7", preserve(s, memfd, 7) == 0);
    {
        int sealed = memfd_create("liveupdate-check-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        check("memfd \"sealed\" with F_SEAL_SHRINK | F_SEAL_GROW",
              sealed >= 0 && write(sealed, "sealed", 6) == 6 && fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
        check("preserve it at token 8", preserve(s, sealed, 8) == 0);
        check("then F_SEAL_FUTURE_WRITE", fcntl(sealed, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == 0);
    }
    {
        /* What travels is the size at PRESERVE_FD: the kernel refuses the
         * write past the end, the emulator lets it land and drops it at
         * the kexec moment (documented). */
        int grown = memfd_with("1234");
        check("preserve \"1234\" at token 9", preserve(s, grown, 9) == 0);
        if (emulated)
            check("a write past its end: accepted (emulator)", pwrite(grown, "5678", 4, 4) == 4);
        else
            check("a write past its end: EPERM", fails(pwrite(grown, "5678", 4, 4), EPERM));
        check("a write within it", pwrite(grown, "abcd", 4, 0) == 4);
    }
    int gone = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, "closed");
    check("session closed, preserved and closed", gone >= 0 && preserve(gone, memfd_with("x"), 1) == 0 && close(gone) == 0);
    check("ready", 1);
    pause();
    return 0;
}

static int kexec_after(void) {
    int dev = open_device();
    int s = session_op(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, "s");
    check("retrieve session s", s >= 0 && is_cloexec(s));
    check("retrieve s again: EINVAL", fails(session_op(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, "s"), EINVAL));
    check("the closed session did not travel: ENOENT", fails(session_op(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, "closed"), ENOENT));
    int out = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, "s");
    check("an outgoing session may take the incoming one's name", out >= 0);
    close(out);
    check("an unknown token: ENOENT", fails(retrieve(s, 99), ENOENT));
    {
        char name[LIVEUPDATE_SESSION_NAME_LENGTH];
        check("GET_NAME on incoming session s: \"s\"", get_name(s, name) == 0 && !strcmp(name, "s"));
    }
    int memfd = retrieve(s, 7);
    check("retrieve token 7", memfd >= 0);
    check("its content survived", has_content(memfd, "hello"));
    check("its offset survived", lseek(memfd, 0, SEEK_CUR) == 2);
    check("it is close-on-exec", is_cloexec(memfd));
    check("its seals survived (F_SEAL_SEAL: made without MFD_ALLOW_SEALING)", fcntl(memfd, F_GET_SEALS) == F_SEAL_SEAL);
    {
        char path[64], link[64] = {0};
        snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
        /* A new file: the kernel names it "" (memfd_alloc_file), the
         * emulator "memfd:" (memfd_create cannot make an empty name). */
        check("its name is not its label", readlink(path, link, sizeof link - 1) > 0 && !strstr(link, "liveupdate-check"));
    }
    check("its size is not frozen", ftruncate(memfd, 6) == 0 && ftruncate(memfd, 5) == 0);
    check("PRESERVE_FD on an incoming session: EINVAL", fails(preserve(s, memfd, 1), EINVAL));
    {
        union { struct liveupdate_session_fd p; uint8_t bytes[24]; } big;
        memset(&big, 0, sizeof big);
        big.p.size = sizeof big;
        big.p.fd = memfd;
        big.bytes[20] = 1;
        check("PRESERVE_FD on an incoming session, non-zero tail: EINVAL", fails(ioctl(s, LIVEUPDATE_SESSION_PRESERVE_FD, &big), EINVAL));
    }
    int again = retrieve(s, 7);
    check("retrieve token 7 again: the same file", again >= 0 && again != memfd && one_open_file(memfd, again));
    close(again);
    int sealed = retrieve(s, 8);
    check("retrieve token 8", sealed >= 0 && has_content(sealed, "sealed"));
    check("its seals at PRESERVE_FD survived, not those added after",
          fcntl(sealed, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW));
    int grown = retrieve(s, 9);
    check("token 9 has its size at PRESERVE_FD, and the write within it", grown >= 0 && has_content(grown, "abcd"));
    close(grown);
    int next = session_op(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, "next");
    check("create outgoing session next", next >= 0);
    check("preserve a retrieved file before FINISH: EBUSY", fails(preserve(next, memfd, 1), EBUSY));
    check("FINISH with reserved set: EINVAL", fails(finish(s, 1), EINVAL));
    check("FINISH", finish(s, 0) == 0);
    check("retrieve token 7 after FINISH: ENOENT", fails(retrieve(s, 7), ENOENT));
    check("FINISH again: 0", finish(s, 0) == 0);
    check("preserve the retrieved file after FINISH", preserve(next, memfd, 1) == 0);
    check("its size is frozen now", fails(ftruncate(memfd, 100), EPERM));
    close(next);
    check("retrieve s after FINISH: still EINVAL", fails(session_op(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, "s"), EINVAL));
    return 0;
}

static int kexec_third(void) {
    int dev = open_device();
    check("s did not travel again: ENOENT", fails(session_op(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, "s"), ENOENT));
    return 0;
}

static int eacces(void) {
    check("open as another uid: EACCES", fails(open("/dev/liveupdate", O_RDWR), EACCES));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "checks")) return checks();
    if (!strcmp(argv[1], "kexec-before")) return kexec_before();
    if (!strcmp(argv[1], "kexec-after")) return kexec_after();
    if (!strcmp(argv[1], "kexec-third")) return kexec_third();
    if (!strcmp(argv[1], "eacces")) return eacces();
    return 2;
}
