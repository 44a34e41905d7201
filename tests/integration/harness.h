/*
 * harness: start the real wsmaster binary and talk to it, for the Check
 * integration suites (nginx-tests / Redis start_server style).
 *
 * Server side: srv_init() makes a mkdtemp dir and writes wschat.conf from a
 * template (pid file, log, stdout/stderr captures all inside the dir);
 * srv_spawn() execs $WSCHAT_BIN as the leader of a new process group and
 * arms a watchdog process (in a group of its own, out of reach of Check's
 * killpg) that SIGKILLs the server's group if the test process dies without
 * calling srv_stop(): a failed ck_assert ends a forked Check test at once,
 * and a timeout kills it. srv_stop() is QUIT, bounded wait, TERM, KILL (by
 * pid, and only processes proven ours by group, name and start time), then
 * fails the test on any [alert]/[crit] log line or a process of the
 * server's group outliving the master. (The server's shared memory is an
 * unnamed memfd: nothing of it can outlive the group.)
 *
 * Client side: an independent RFC 6455 client (it never uses the server sources):
 * connect to 127.0.0.1, raw sends that keep reading while they write (so a
 * server echoing while we send can never deadlock us), an HTTP response
 * head reader, the handshake with Sec-WebSocket-Accept verified through
 * libcrypto SHA-1, a frame encoder with arbitrary header bits, and a frame
 * decoder that asserts the server's frames obey §5 (unmasked, minimal
 * length, no RSV, known opcode, control frames short and final).
 *
 * Every wait has a deadline in milliseconds; nothing loops unbounded.
 */
#ifndef WSM_HARNESS_H
#define WSM_HARNESS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- time ---------------------------------------------------------------- */

int64_t it_now_ms(void);
void it_sleep_ms(int ms);

/*
 * Poll COND every 10 ms until it holds or TIMEOUT_MS passes; evaluates to
 * 1 if it held. COND is re-evaluated once after the deadline.
 */
#define WAIT_FOR(cond, timeout_ms) ({                                      \
        int64_t wf_end_ = it_now_ms() + (timeout_ms);                      \
        int wf_ok_ = 0;                                                    \
        for (;;) {                                                         \
            if (cond) { wf_ok_ = 1; break; }                               \
            if (it_now_ms() >= wf_end_) { wf_ok_ = (cond) ? 1 : 0; break; } \
            it_sleep_ms(10);                                               \
        }                                                                  \
        wf_ok_; })

/* ---- server -------------------------------------------------------------- */

#define SRV_MAX_WORKERS 64

struct server {
    char  dir[64];              /* mkdtemp directory, removed by srv_stop */
    char  conf[PATH_MAX];       /* dir/wschat.conf */
    char  log[PATH_MAX];        /* dir/error.log */
    char  pid_file[PATH_MAX];   /* dir/wschat.pid */
    char  out[PATH_MAX];        /* captured stdout of the binary */
    char  err[PATH_MAX];        /* captured stderr */
    char  extra[4096];          /* directives overriding the template */
    pid_t pid;                  /* master, a child of the test process, and
                                   the leader of its own process group */
    unsigned long long start;   /* its start time (/proc/PID/stat field 22) */
    char  comm[16];             /* its command name, to recognise the group */
    int   port;                 /* parsed from "listening on" */
    int   running;              /* not yet reaped */
    int   status;               /* waitpid status once reaped */
    int   shutdown_ms;          /* worker_shutdown_timeout in ms */
    pid_t watchdog;
    int   watchdog_fd;          /* write end; EOF = the test died */
    char  alert_ok[64];         /* [alert] lines holding this are tolerated */
};

/*
 * Make the temp dir and write the config: the template with every
 * "name value" line of EXTRA (newline-separated, may be NULL) replacing the
 * template line of the same name or appended after it.
 */
void srv_init(struct server *s, const char *extra);
/* Rewrite s->conf from the template and EXTRA (for SIGHUP tests). */
void srv_write_config(struct server *s, const char *extra);
/* Overwrite s->conf with TEXT verbatim. */
void srv_write_file(const char *path, const char *text);

/*
 * Exec $WSCHAT_BIN with ARGS (NULL-terminated, argv[1..]), stdout/stderr to
 * s->out/s->err. Does not wait for anything.
 */
void srv_spawn(struct server *s, const char *const *args);
/*
 * srv_init + spawn "-c conf" + wait (5 s) for the pid file holding the
 * master's pid, the "listening on" line and a TCP connect. Fails the test
 * (with the log tail) when the server does not come up.
 */
void srv_start(struct server *s, const char *extra);
/* Wait for the master to exit; 1 if it did (status in s->status). */
int  srv_wait_exit(struct server *s, int timeout_ms);
/* Run the binary with ARGS to completion (5 s); returns the exit status
 * (or -1 on a signal/timeout); stdout/stderr in s->out/s->err. */
int  srv_run_sync(struct server *s, const char *const *args);
/*
 * Graceful stop (QUIT, then TERM, then KILL, by pid), then fail the test on
 * an [alert]/[crit] log line (except ones holding s->alert_ok), a process
 * of the server's group outliving the master, or a sanitizer report on the
 * server's stderr. Removes the temp dir when all is well
 * (kept when WSCHAT_IT_KEEP is set). Safe to call once the master exited.
 */
void srv_stop(struct server *s);

/* Children of the master (ppid == master, not zombies), up to MAX. */
int  srv_workers(const struct server *s, pid_t *out, int max);
/* The history journal's process (comm JOURNAL_COMM), -1 if none. */
pid_t srv_journal_pid(const struct server *s);
/* Wait until exactly N workers exist; 1 on success. */
int  srv_wait_worker_count(const struct server *s, int n, int timeout_ms);
/* 1 while PID exists and is not a zombie. */
int  it_proc_alive(pid_t pid);
/*
 * The pid among WK[0..n) whose fd table holds the server end of C (found
 * through /proc/net/tcp: local 127.0.0.1:PORT, remote C's local port); -1.
 */
struct client;
pid_t srv_conn_owner(const struct client *c, int port, const pid_t *wk, int n);
/* ppid of PID from /proc, or -1. */
pid_t it_proc_ppid(pid_t pid);

/* Whole file into a malloc'd NUL-terminated buffer (or NULL); len optional. */
char *it_file_read(const char *path, size_t *len);
int  it_file_exists(const char *path);
/* Lines of PATH containing NEEDLE (0 when the file is missing). */
int  it_file_count(const char *path, const char *needle);
/* Lines containing both A and B (B may be NULL). */
int  it_file_count2(const char *path, const char *a, const char *b);
/* 1-based number of the first line of PATH containing NEEDLE, or 0. */
int  it_file_line_of(const char *path, const char *needle);
/* Print the last N lines of the server's log and stderr to stderr. */
void srv_dump(const struct server *s, int n);

/* ---- client -------------------------------------------------------------- */

struct client {
    int       fd;
    int       port;
    uint8_t  *rx;               /* unconsumed input: rx[off .. len) */
    size_t    off, len, cap;
    int       eof;              /* peer closed (FIN or RST seen) */
    int       rst;              /* the close was a reset */
    int       trickle_us;       /* >0: cli_send writes 1 byte, then sleeps this */
};

/* TCP connect to 127.0.0.1:PORT within 3 s; 0, or -1 with errno. */
int  cli_connect(struct client *c, int port);
/* The same with SO_RCVBUF set to RCVBUF bytes first (0: the default). */
int  cli_connect_rcvbuf(struct client *c, int port, int rcvbuf);
void cli_close(struct client *c);
/* Close with SO_LINGER 0, so the peer sees a reset. */
void cli_abort(struct client *c);
/*
 * Write all of BUF within TIMEOUT_MS, reading whatever arrives meanwhile
 * into the client's input. 0, or -1 (errno EPIPE/ECONNRESET/ETIMEDOUT).
 */
int  cli_send_t(struct client *c, const void *buf, size_t len, int timeout_ms);
int  cli_send(struct client *c, const void *buf, size_t len);
int  cli_sendstr(struct client *c, const char *s);
/*
 * Read more input, waiting at most TIMEOUT_MS. >0 bytes added, 0 when the
 * peer closed, -1 on timeout.
 */
ssize_t cli_fill(struct client *c, int timeout_ms);
/* Wait for EOF/RST, discarding input; 1 if the connection closed in time. */
int  cli_expect_closed(struct client *c, int timeout_ms);
/* Bytes of unconsumed input. */
static inline size_t cli_pending(const struct client *c) { return c->len - c->off; }

struct httpc_resp {
    int    status;              /* -1: closed before a full head; -2: timeout */
    char   head[16384];         /* the head, NUL-terminated */
    size_t head_len;
};

/* Read one response head (status line + headers) into R. */
int  httpc_read_head(struct client *c, struct httpc_resp *r, int timeout_ms);
/* Header value (first match, case-insensitive name) into BUF, or NULL. */
const char *httpc_header(const struct httpc_resp *r, const char *name,
                         char *buf, size_t n);
/*
 * Read one whole response on C: its head, then the body its Content-Length
 * names (none without one) into OUT, NUL-terminated; fails the test when it
 * does not fit CAP or does not come within TIMEOUT_MS. Returns the status.
 */
int  httpc_read_response(struct client *c, char *out, size_t cap, int timeout_ms);
/* Connect, send REQ, read the head; returns the status (<0 as above). */
int  httpc_get_status(int port, const char *req, struct httpc_resp *r);

/* ---- WebSocket ----------------------------------------------------------- */

#define WS_FIN      0x80
#define WS_RSV1     0x40
#define WS_RSV2     0x20
#define WS_RSV3     0x10
#define WS_OP_CONT  0x0
#define WS_OP_TEXT  0x1
#define WS_OP_BIN   0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING  0x9
#define WS_OP_PONG  0xA
#define WS_NOMASK   0x100       /* flag for wsc_frame_build: leave unmasked */
#define WS_HEADER_MAX_CLIENT 14 /* 2 + 8 (64-bit length) + 4 (mask key) */

/*
 * Send the upgrade request for PATH with EXTRA header lines (each ending in
 * \r\n, may be NULL) followed by TRAILER bytes in the same write, read the
 * response head and, for 101, verify Upgrade/Connection/Accept (ck_assert).
 * Returns the status code.
 */
int  wsc_handshake(struct client *c, const char *path, const char *extra,
                   const void *trailer, size_t trailer_len);
/* Connect + handshake on /echo, asserting 101. */
void wsc_open(struct client *c, int port);

/*
 * Encode one frame into a malloc'd buffer: first byte = BITS (FIN/RSV bits
 * ORed with the opcode), masked unless BITS has WS_NOMASK. Length forms are
 * minimal. *OUT_LEN gets the size.
 */
uint8_t *wsc_frame_build(int bits, const void *payload, size_t len, size_t *out_len);
/* Append a frame to a growing buffer (*buf, *len, *cap). */
void wsc_frame_append(uint8_t **buf, size_t *len, size_t *cap,
                      int bits, const void *payload, size_t len_payload);
/* Build and send one frame; 0 or -1 like cli_send. */
int  wsc_send(struct client *c, int bits, const void *payload, size_t len);
/*
 * Send only a frame header announcing LEN64 bytes (written verbatim in the
 * 64-bit form when FORCE64, else the minimal form), with a mask key.
 */
int  wsc_send_header(struct client *c, int bits, uint64_t len64, int force64);
/* A close frame: code (or -1 for an empty payload) and reason bytes. */
int  wsc_send_close(struct client *c, int code, const void *reason, size_t rlen);

struct wsc_msg {
    int      fin, opcode;
    uint8_t *data;              /* malloc'd (NUL appended), free with wsc_msg_free */
    size_t   len;
};

/*
 * Receive one frame within TIMEOUT_MS. 1 got a frame, 0 connection closed,
 * -1 timeout. The frame is checked against what a server must send.
 */
int  wsc_recv(struct client *c, struct wsc_msg *m, int timeout_ms);
void wsc_msg_free(struct wsc_msg *m);
/*
 * Read frames until a close frame (data/ping/pong frames are skipped and
 * counted in *SKIPPED if not NULL). Returns the close code, 0 for an empty
 * close payload, -1 if the connection ended without a close frame, -2 on
 * timeout. REASON (if not NULL) gets the reason text.
 */
int  wsc_read_close(struct client *c, int timeout_ms, int *skipped,
                    char *reason, size_t rn);
/* Send a data message and assert the same message comes back whole. */
void wsc_echo_check(struct client *c, int opcode, const void *p, size_t len);

/* ---- misc ---------------------------------------------------------------- */

void it_random(void *buf, size_t len);
/* Deterministic payloads: valid UTF-8 text (mixed 1-4 byte chars) / binary. */
uint8_t *it_make_text(size_t len);
uint8_t *it_make_binary(size_t len, uint32_t seed);
/* 1 if BUF is valid UTF-8 (strict: no overlongs, surrogates, > U+10FFFF). */
int  it_utf8_valid(const uint8_t *buf, size_t len);

#endif
