/*
 * access_log: one line per HTTP request and per ended WebSocket session,
 * in nginx's shape (the access_log directive; format in README.md):
 *
 *   ADDR - USER [03/Dec/2026:14:30:00 +0000] "METHOD PATH" STATUS IN OUT MS
 *
 * METHOD is the request's ("GET") or "WS" for a WebSocket session, whose
 * STATUS is then its close code. The formatter is pure (no clock, no
 * locale, no allocation): the caller passes the time and its UTC offset.
 * Every client-supplied byte outside printable ASCII, and '"' and '\',
 * becomes \xHH, and each such field is cut (ending "...") at a fixed
 * bound, so a line is at most ACCESS_LINE_MAX bytes and a client can never
 * forge or split one. The I/O helpers open the file O_APPEND and write a
 * line with one write(2), so lines of several workers never interleave.
 * Callers: worker.c (the per-connection bookkeeping below), tests.
 */
#ifndef WSM_ACCESS_LOG_H
#define WSM_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Most bytes of each escaped field (a longer one is cut and ends in "..."). */
#define ACCESS_METHOD_FIELD 32
#define ACCESS_PATH_FIELD   1024
#define ACCESS_USER_FIELD   256
/* Longest line access_log_format() writes, its '\n' included. */
#define ACCESS_LINE_MAX     2048

/* One line's fields. Slices need not be NUL-terminated. */
struct access_entry {
    int64_t        unix_s;          /* wall-clock time of the event */
    int32_t        utc_offset_s;    /* local time's offset east of UTC (tm_gmtoff) */
    const uint8_t *addr;            /* 16 bytes, IPv4 as ::ffff:a.b.c.d; NULL: "-" */
    const char    *user;            /* NULL or empty: "-" (a guest, or not chat) */
    size_t         user_len;
    const char    *method;          /* NULL or empty: "-" (no request line read) */
    size_t         method_len;
    const char    *path;            /* NULL or empty: "-" */
    size_t         path_len;
    unsigned       status;          /* HTTP status, or the WebSocket close code */
    uint64_t       bytes_in;
    uint64_t       bytes_out;
    uint64_t       duration_ms;
};

/*
 * Format E as one '\n'-terminated line into BUF[0..cap). Returns its
 * length (<= ACCESS_LINE_MAX), or -ENOSPC when cap < ACCESS_LINE_MAX.
 */
ssize_t access_log_format(char *buf, size_t cap, const struct access_entry *e);

/* Open PATH for appending (O_APPEND|O_CREAT|O_CLOEXEC, mode 0640): the fd, or -errno. */
int access_log_open(const char *path);
/*
 * Log rotation: open PATH again into *fd, closing the old fd only once the
 * new one is open. 0, or -errno with *fd unchanged (the old file stays in use).
 */
int access_log_reopen(int *fd, const char *path);
/* Write LINE[0..len) with one write(2) (EINTR retried). 0, or -errno (-EIO: short). */
int access_log_write(int fd, const char *line, size_t len);

/*
 * What a worker keeps per connection while the access log is on (an array
 * parallel to its connection table, so a server without an access log pays
 * nothing): the current request's or session's start and byte counts, and
 * for a WebSocket session what its line will say. Plain data, carried as
 * is in a hand-over record.
 */
#define ACCESS_SESSION_PATH_MAX 48  /* "/chat/" + a room, "/echo" */
#define ACCESS_SESSION_USER_MAX 64  /* a token's sub (JWT_SUB_MAX) */

struct access_conn {
    uint64_t start_ms;          /* monotonic: first byte of the request or session; 0: none yet */
    uint64_t bytes_in;          /* read since the session's upgrade request began */
    uint64_t bytes_out;         /* written since then */
    uint16_t code;              /* first close code sent or received, 0: none (1006) */
    uint8_t  done;              /* its line is written, or another worker's to write (hand-over) */
    uint8_t  path_len;
    uint8_t  user_len;          /* 0: a guest */
    char     path[ACCESS_SESSION_PATH_MAX];
    char     user[ACCESS_SESSION_USER_MAX];
};

#endif
