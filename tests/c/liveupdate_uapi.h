/* The Live Update Orchestrator's UAPI (Linux 7.2,
 * include/uapi/linux/liveupdate.h) as the C checks and tests/vm/luo_bench.c
 * use it, one copy; tests/uapi_layout.rs checks fdbox's Rust side. */
#ifndef FDBOX_TEST_LIVEUPDATE_UAPI_H
#define FDBOX_TEST_LIVEUPDATE_UAPI_H

#include <stdint.h>

#define LIVEUPDATE_SESSION_NAME_LENGTH 64
#define LIVEUPDATE_IOCTL_CREATE_SESSION 0xBA00
#define LIVEUPDATE_IOCTL_RETRIEVE_SESSION 0xBA01
#define LIVEUPDATE_SESSION_PRESERVE_FD 0xBA40
#define LIVEUPDATE_SESSION_RETRIEVE_FD 0xBA41
#define LIVEUPDATE_SESSION_FINISH 0xBA42
#define LIVEUPDATE_SESSION_GET_NAME 0xBA43

struct liveupdate_session { uint32_t size; int32_t fd; uint8_t name[LIVEUPDATE_SESSION_NAME_LENGTH]; };
struct liveupdate_session_fd { uint32_t size; int32_t fd; uint64_t token; };
struct liveupdate_session_finish { uint32_t size; uint32_t reserved; };
struct liveupdate_session_get_name { uint32_t size; uint32_t reserved; uint8_t name[LIVEUPDATE_SESSION_NAME_LENGTH]; };

_Static_assert(sizeof(struct liveupdate_session) == 72, "session struct");
_Static_assert(sizeof(struct liveupdate_session_fd) == 16, "session fd struct");
_Static_assert(sizeof(struct liveupdate_session_finish) == 8, "finish struct");
_Static_assert(sizeof(struct liveupdate_session_get_name) == 72, "get-name struct");

#endif
