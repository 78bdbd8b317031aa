/* Raw /dev/fdbox calls, per the FDBox RFC's UAPI, for tests/emulate.rs to run
 * under `fdbox emulate`. One line per check; exits 1 on the first failure.
 *
 *   emulate_checks checks        every errno path of the driver
 *   emulate_checks kexec-before  box "kx": a memfd "state" = "survives", sealed
 *   emulate_checks kexec-after   box "kx" back sealed; unseal, get, compare
 *   emulate_checks eperm         run without CAP_SYS_ADMIN: ioctls are EPERM
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
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "checks.h"

#define FDBOX_NAME_LEN 256
#define FDBOX_CREATE_BOX 0x2E00
#define FDBOX_DELETE_BOX 0x2E01
#define FDBOX_PUT_FD 0x2E02
#define FDBOX_GET_FD 0x2E03
#define FDBOX_SEAL 0x2E04
#define FDBOX_UNSEAL 0x2E05

struct fdbox_create_box { uint64_t flags; uint8_t name[FDBOX_NAME_LEN]; };
struct fdbox_put_fd { uint64_t flags; uint32_t fd; uint32_t pad; uint8_t name[FDBOX_NAME_LEN]; };
struct fdbox_get_fd { uint64_t flags; uint32_t pad; uint8_t name[FDBOX_NAME_LEN]; };

static int box_op(int control, unsigned long req, const char *name, uint64_t flags) {
    struct fdbox_create_box a;
    memset(&a, 0, sizeof a);
    a.flags = flags;
    strncpy((char *)a.name, name, FDBOX_NAME_LEN - 1);
    return ioctl(control, req, &a);
}

static int put(int box, int fd, const char *name) {
    struct fdbox_put_fd p;
    memset(&p, 0, sizeof p);
    p.fd = fd;
    strncpy((char *)p.name, name, FDBOX_NAME_LEN - 1);
    return ioctl(box, FDBOX_PUT_FD, &p);
}

static int get(int box, const char *name, uint64_t flags) {
    struct fdbox_get_fd g;
    memset(&g, 0, sizeof g);
    g.flags = flags;
    strncpy((char *)g.name, name, FDBOX_NAME_LEN - 1);
    return ioctl(box, FDBOX_GET_FD, &g);
}

static int memfd_with(const char *content) {
    return memfd_with_label("emulate-check", content);
}

static int open_control(void) {
    int control = open("/dev/fdbox/fdbox", O_RDWR | O_CLOEXEC);
    check("open /dev/fdbox/fdbox", control >= 0);
    int flags = fcntl(control, F_GETFD);
    check("the control fd honours O_CLOEXEC", flags >= 0 && (flags & FD_CLOEXEC));
    return control;
}

static int checks(void) {
    int control = open_control();
    check("create box b1", box_op(control, FDBOX_CREATE_BOX, "b1", 0) == 0);
    check("create b1 again: EEXIST", fails(box_op(control, FDBOX_CREATE_BOX, "b1", 0), EEXIST));
    check("create with flags: EINVAL", fails(box_op(control, FDBOX_CREATE_BOX, "b2", 1), EINVAL));
    check("create empty name: EINVAL", fails(box_op(control, FDBOX_CREATE_BOX, "", 0), EINVAL));
    check("create a/b: EINVAL", fails(box_op(control, FDBOX_CREATE_BOX, "a/b", 0), EINVAL));
    {
        struct fdbox_create_box a;
        memset(&a, 'x', sizeof a);
        a.flags = 0;
        check("create unterminated name: EINVAL", fails(ioctl(control, FDBOX_CREATE_BOX, &a), EINVAL));
    }
    check("delete unknown box: ENOENT", fails(box_op(control, FDBOX_DELETE_BOX, "nope", 0), ENOENT));
    check("delete with flags: EINVAL", fails(box_op(control, FDBOX_DELETE_BOX, "b1", 1), EINVAL));
    check("seal on the control device: EINVAL", fails(ioctl(control, FDBOX_SEAL), EINVAL));
    check("open unknown box: ENOENT", fails(open("/dev/fdbox/nope", O_RDWR), ENOENT));
    check("a tty ioctl on the control device is the kernel's", fails(ioctl(control, TCGETS), ENOTTY));

    {
        struct open_how how = { .flags = O_RDWR | O_CLOEXEC };
        int fd = syscall(SYS_openat2, AT_FDCWD, "/dev/fdbox/b1", &how, sizeof how);
        check("openat2 /dev/fdbox/b1", fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC));
        check("seal and unseal through it", ioctl(fd, FDBOX_SEAL) == 0 && ioctl(fd, FDBOX_UNSEAL) == 0);
        close(fd);
    }
    int box = open("/dev/fdbox/b1", O_RDWR);
    check("open /dev/fdbox/b1", box >= 0);
    check("the box fd has no O_CLOEXEC", (fcntl(box, F_GETFD) & FD_CLOEXEC) == 0);
    check("create on a box: EINVAL", fails(box_op(box, FDBOX_CREATE_BOX, "b3", 0), EINVAL));

    int memfd = memfd_with("hello");
    check("memfd_create + write", memfd >= 0);
    check("put memfd as m1", put(box, memfd, "m1") == 0);
    int dup_name = memfd_with("dup");
    check("put another memfd as m1: EEXIST", fails(put(box, dup_name, "m1"), EEXIST));
    check("put a bad fd: EINVAL", fails(put(box, 9999, "m2"), EINVAL));
    int pipes[2];
    check("pipe", pipe(pipes) == 0);
    check("put a pipe: EOPNOTSUPP", fails(put(box, pipes[0], "p"), EOPNOTSUPP));
    check("an FDBox request on a pipe is the kernel's: ENOTTY", fails(ioctl(pipes[0], FDBOX_SEAL), ENOTTY));
    check("an FDBox request on a bad fd is the kernel's: EBADF", fails(ioctl(9999, FDBOX_SEAL), EBADF));
    check("put a box fd: EOPNOTSUPP", fails(put(box, box, "self"), EOPNOTSUPP));

    check("unseal not sealed: EBUSY", fails(ioctl(box, FDBOX_UNSEAL), EBUSY));
    check("seal", ioctl(box, FDBOX_SEAL) == 0);
    check("seal again: EBUSY", fails(ioctl(box, FDBOX_SEAL), EBUSY));
    int other = memfd_with("other");
    check("put into sealed box: EBUSY", fails(put(box, other, "m2"), EBUSY));
    check("get from sealed box: EBUSY", fails(get(box, "m1", 0), EBUSY));
    check("unseal", ioctl(box, FDBOX_UNSEAL) == 0);

    check("get with flags: EINVAL", fails(get(box, "m1", 1), EINVAL));
    check("get unknown: ENOENT", fails(get(box, "zz", 0), ENOENT));
    int back = get(box, "m1", 0);
    check("get m1 returns an fd", back >= 0);
    check("it is not close-on-exec", (fcntl(back, F_GETFD) & FD_CLOEXEC) == 0);
    check("it holds the memfd's content", has_content(back, "hello"));
    check("get m1 again: ENOENT (take-once)", fails(get(box, "m1", 0), ENOENT));

    check("a child process is served too", ({
        pid_t pid = fork();
        if (pid == 0) _exit(box_op(open("/dev/fdbox/fdbox", O_RDWR), FDBOX_CREATE_BOX, "child", 0) == 0 ? 0 : 1);
        int st = 0;
        waitpid(pid, &st, 0);
        WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }));
    check("delete the child's box", box_op(control, FDBOX_DELETE_BOX, "child", 0) == 0);

    check("delete sealed box b1", ioctl(box, FDBOX_SEAL) == 0 && box_op(control, FDBOX_DELETE_BOX, "b1", 0) == 0);
    check("open deleted box: ENOENT", fails(open("/dev/fdbox/b1", O_RDWR), ENOENT));
    check("an ordinary open still works", open("/proc/self/status", O_RDONLY) >= 0);
    return 0;
}

static int kexec_before(void) {
    int control = open_control();
    check("create box kx", box_op(control, FDBOX_CREATE_BOX, "kx", 0) == 0);
    check("create box loose (left unsealed)", box_op(control, FDBOX_CREATE_BOX, "loose", 0) == 0);
    int box = open("/dev/fdbox/kx", O_RDWR);
    check("open /dev/fdbox/kx", box >= 0);
    int memfd = memfd_with("survives");
    check("put state", put(box, memfd, "state") == 0);
    check("seal kx", ioctl(box, FDBOX_SEAL) == 0);
    return 0;
}

static int kexec_after(void) {
    open_control();
    check("the unsealed box is gone", fails(open("/dev/fdbox/loose", O_RDWR), ENOENT));
    int box = open("/dev/fdbox/kx", O_RDWR);
    check("box kx came back", box >= 0);
    int memfd = memfd_with("x");
    check("it is sealed: put EBUSY", fails(put(box, memfd, "x"), EBUSY));
    check("unseal kx", ioctl(box, FDBOX_UNSEAL) == 0);
    int back = get(box, "state", 0);
    check("get state", back >= 0);
    check("its content survived", has_content(back, "survives"));
    return 0;
}

static int eperm(void) {
    int control = open("/dev/fdbox/fdbox", O_RDWR);
    check("open /dev/fdbox/fdbox (root, mode 0600)", control >= 0);
    check("create without CAP_SYS_ADMIN: EPERM", fails(box_op(control, FDBOX_CREATE_BOX, "p", 0), EPERM));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "checks")) return checks();
    if (!strcmp(argv[1], "kexec-before")) return kexec_before();
    if (!strcmp(argv[1], "kexec-after")) return kexec_after();
    if (!strcmp(argv[1], "eperm")) return eperm();
    return 2;
}
