/*
 * wsb: internal interface of wsbench, the load generator in tests/bench/.
 *
 * wsbench is an independent RFC 6455 client: it shares no code with the
 * server so a bug in the server's codec cannot hide itself by being present
 * on both ends. One process, one thread, one epoll loop (wsb_net.c) drives
 * every connection through the pure codec in wsb_ws.c; the scenarios
 * (wsb_fanout.c, wsb_echo.c, wsb_conns.c, wsb_rooms.c) get callbacks for opened
 * connections, complete messages and closes. Helpers: SHA-1/base64 for
 * Sec-WebSocket-Accept (wsb_sha1.c), a log-linear latency histogram
 * (wsb_hist.c), /proc and rlimit access (wsb_proc.c), and the command line
 * and report writer (wsbench.c). Every wait is bounded by a deadline.
 */
#ifndef WSB_H
#define WSB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- options (wsbench.c) ---------------------------------------------- */

/* --ports and --pid-files: at most this many servers (cluster nodes). */
#define WSB_MAX_PORTS 8

struct wsb_opts {
    const char *scenario;       /* "fanout", "echo", "conns", "join", "rooms" */
    char     host[64];          /* numeric IPv4 inside 127.0.0.0/8 */
    uint16_t port;
    /* The servers connections go to: connection i (its index in the
     * scenario's array) to ports[i % nports]. validate() fills ports[0]
     * from --port when --ports was not given, so nports >= 1. */
    uint16_t ports[WSB_MAX_PORTS];
    int      nports;
    /* --pid-files: one pid file per server, CPU summed over all of them. */
    const char *pid_files[WSB_MAX_PORTS];
    int      npid_files;
    pid_t    extra_pid;         /* --extra-pid: CPU reported apart (0 none) */
    int      members, publishers, conns, concurrency;
    int      rooms;             /* rooms: how many rooms of 2 members */
    double   room_rate;         /* rooms: messages/s per room */
    double   rate;              /* messages/s, all publishers together */
    size_t   bytes;             /* payload size */
    double   duration, drain, hold, connect_timeout, close_timeout;
    double   deadline;          /* whole run, seconds */
    double   slo_ms;            /* ramp: p99 limit */
    int      max_steps;         /* ramp: bound on steps */
    double   ramp_factor;       /* ramp: rate multiplier per step (2) */
    int      ramp, json, check, text, src_bind;
    pid_t    server_pid;        /* 0 = unknown */
    const char *pid_file;
    char     room[40];
};

/* ---- time and misc (wsbench.c) ---------------------------------------- */

uint64_t wsb_now_ns(void);                 /* CLOCK_MONOTONIC */
/* Seconds of user+system CPU this process has used so far. */
double   wsb_cpu_s(void);
/* True once the global deadline has passed; scenarios poll it. */
int      wsb_deadline_passed(void);
/* Fill buf with n bytes from getrandom(); buffered, never fails silently. */
void     wsb_random(void *buf, size_t n);
/* "P1,P2,..." (1..65535 each, at most max, no empty item) into out; the
 * count, or -1 when malformed. Pure: the selftest checks it. */
int      wsb_parse_ports(const char *s, uint16_t *out, int max);

/* ---- SHA-1 and base64 (wsb_sha1.c) ------------------------------------ */

void   wsb_sha1(const void *data, size_t len, uint8_t out[20]);
/* Writes ceil(n/3)*4 characters plus a NUL; returns the length written. */
size_t wsb_base64(const uint8_t *in, size_t n, char *out);
/* RFC 6455 §4.2.2: base64(SHA-1(key + GUID)); out holds 29 bytes. */
void   wsb_accept_key(const char *key, char out[29]);

/* ---- RFC 6455 client codec, pure (wsb_ws.c) --------------------------- */

struct wsb_frame {
    int      fin, rsv, opcode, masked;
    uint64_t len;
};

/* The opening request (§4.1) into dst; its length, or -1 if cap is short. */
int     wsb_ws_request(char *dst, size_t cap, const char *path,
                       const char *host, const char *key);
/*
 * Check the server's response head (§4.1 client steps 1-5): >0 its length
 * when complete and valid, 0 incomplete, -WSB_FAIL_STATUS (not 101, bad
 * Upgrade/Connection, unasked extension, head too long) or -WSB_FAIL_ACCEPT.
 * *status receives the HTTP status (0 if unparsable).
 */
ssize_t wsb_ws_response(const char *buf, size_t n, const char *key,
                        int *status);
/* Header of the frame at p: its length (2..14), 0 need more, -1 malformed
 * (non-minimal length, 64-bit length with the top bit set). */
ssize_t wsb_ws_frame_head(const uint8_t *p, size_t n, struct wsb_frame *f);
/* 1 when f may arrive now from a server; msg_op is the opcode of the
 * fragmented message in progress, 0 if none (§5.1, §5.4, §5.5). */
int     wsb_ws_frame_valid(int msg_op, const struct wsb_frame *f);
/* FIN frame with the minimal length form, masked with key; dst needs
 * n + 14 bytes. Returns the frame length. */
size_t  wsb_ws_frame_build(char *dst, int opcode, const void *p, size_t n,
                           const uint8_t key[4]);
/* Strict UTF-8: no overlongs, surrogates or code points past U+10FFFF. */
int     wsb_ws_utf8_ok(const uint8_t *s, size_t n);

/* ---- latency histogram (wsb_hist.c) ----------------------------------- */

#define WSB_HIST_SUB_BITS 7
#define WSB_HIST_BUCKETS \
    ((64 - WSB_HIST_SUB_BITS + 2) << (WSB_HIST_SUB_BITS - 1))

/* Log-linear: ~1.6 % relative precision from 1 ns to 2^64 ns, fixed size. */
struct wsb_hist {
    uint64_t count, min, max;
    double   sum;
    uint64_t bucket[WSB_HIST_BUCKETS];
};

void     wsb_hist_init(struct wsb_hist *h);
void     wsb_hist_add(struct wsb_hist *h, uint64_t v);
void     wsb_hist_merge(struct wsb_hist *into, const struct wsb_hist *from);
/* Value at quantile q in [0,1] (bucket midpoint, exact for min/max). */
uint64_t wsb_hist_quantile(const struct wsb_hist *h, double q);
double   wsb_hist_mean(const struct wsb_hist *h);

/* ---- /proc and limits (wsb_proc.c) ------------------------------------ */

/* Raise RLIMIT_NOFILE soft to hard; returns the new soft limit. */
long   wsb_raise_nofile(void);
/* Master pid from opts (--server-pid, else --pid-file); 0 when unknown. */
pid_t  wsb_server_pid(const struct wsb_opts *o);
/* Every server master: the one above (when known), then one per
 * --pid-files entry (0 where a file is unreadable). The count written. */
int    wsb_server_pids(const struct wsb_opts *o, pid_t *out, int max);

struct wsb_server_usage {
    int      nproc;        /* master + direct children found */
    uint64_t rss_kb;       /* sum of VmRSS */
    uint64_t data_kb;      /* sum of RssAnon + RssShmem: VmRSS without file-backed
                              pages (code and libraries, paged in once, not per client) */
    uint64_t pss_kb;       /* sum of smaps_rollup Pss (0 if unreadable) */
    double   cpu_s;        /* sum of utime+stime */
};
/* Sample master and its children; -1 if the master is not there. */
int    wsb_server_usage(pid_t master, struct wsb_server_usage *u);
/* The sum over n masters and their children; -1 if any is not there. */
int    wsb_servers_usage(const pid_t *masters, int n,
                         struct wsb_server_usage *u);

/* ---- connections and the event loop (wsb_net.c) ----------------------- */

enum wsb_state {
    WSB_ST_IDLE, WSB_ST_CONNECTING, WSB_ST_HANDSHAKE, WSB_ST_OPEN,
    WSB_ST_CLOSING, WSB_ST_DONE
};

/* Why a connection never opened (or died before its close handshake). */
enum wsb_fail {
    WSB_FAIL_NONE, WSB_FAIL_REFUSED, WSB_FAIL_TIMEOUT, WSB_FAIL_STATUS,
    WSB_FAIL_ACCEPT, WSB_FAIL_RESET, WSB_FAIL_PROTOCOL, WSB_FAIL_OVERFLOW,
    WSB_FAIL_OTHER, WSB_FAIL_COUNT
};

#define WSB_OP_CONT   0x0
#define WSB_OP_TEXT   0x1
#define WSB_OP_BINARY 0x2
#define WSB_OP_CLOSE  0x8
#define WSB_OP_PING   0x9
#define WSB_OP_PONG   0xA

struct wsb_conn {
    int      fd;
    uint32_t id;               /* index in the scenario's array */
    uint8_t  state;            /* enum wsb_state */
    uint8_t  fail;             /* enum wsb_fail, first reason wins */
    uint8_t  want_out;         /* EPOLLOUT currently registered */
    uint8_t  sent_close, got_close;
    uint8_t  initiated;        /* we started the close handshake */
    uint8_t  msg_op;           /* opcode of the message being reassembled */
    uint8_t  was_open;         /* the handshake succeeded at some point */
    uint16_t close_code;       /* from the server's close frame, 0 = none */
    uint16_t http_status;
    uint64_t t_start;          /* connect() time, ns */
    uint64_t t_state;          /* when the current state began */
    char     key[25];          /* our Sec-WebSocket-Key */
    char    *in;               /* unconsumed input tail, NULL when empty */
    size_t   in_len, in_cap;
    char    *out;              /* unsent output, NULL when empty */
    size_t   out_off, out_len, out_cap;
    char    *msg;              /* fragments of an unfinished message */
    size_t   msg_len, msg_cap;
    struct wsb_conn *tprev, *tnext;   /* loop's list of expirable conns */
};

struct wsb_loop;

/* Scenario hooks; any may be NULL. c->state tells what happened. */
struct wsb_handlers {
    void (*on_open)(struct wsb_conn *c, void *ud);
    void (*on_message)(struct wsb_conn *c, int opcode, const char *p,
                       size_t n, void *ud);
    /* Final: called once when the fd is gone (clean close or failure). */
    void (*on_done)(struct wsb_conn *c, void *ud);
};

struct wsb_loop_stats {
    uint64_t frames_in, bytes_in, frames_out, bytes_out;
    uint64_t pings, protocol_errors, utf8_errors, close_timeouts;
    uint64_t fail[WSB_FAIL_COUNT];
};

struct wsb_loop *wsb_loop_create(const struct wsb_opts *o,
                                 const struct wsb_handlers *h, void *ud);
void     wsb_loop_destroy(struct wsb_loop *l);
const struct wsb_loop_stats *wsb_loop_stats(const struct wsb_loop *l);

/* Arm the loop's timer for absolute CLOCK_MONOTONIC time t (0 = disarm). */
void     wsb_loop_arm(struct wsb_loop *l, uint64_t t_ns);
/*
 * Wait for events up to timeout_ms and dispatch them; then expire
 * connections past their connect/close timeouts. Returns 1 if the timer
 * fired, 0 otherwise, -1 on an epoll failure (fatal for a run).
 */
int      wsb_loop_poll(struct wsb_loop *l, int timeout_ms);
/* Connections in CONNECTING/HANDSHAKE, and in CLOSING. */
int      wsb_loop_pending(const struct wsb_loop *l);
int      wsb_loop_closing(const struct wsb_loop *l);
/* Arrival time of the bytes now being dispatched: one clock read per
 * recv() serves every frame in it (valid inside on_message). */
uint64_t wsb_loop_rx_ns(const struct wsb_loop *l);

/* Start a non-blocking connect + handshake for GET path to the server
 * ports[c->id % nports] (see struct wsb_opts); 0 or -1. */
int      wsb_conn_start(struct wsb_loop *l, struct wsb_conn *c,
                        const char *path);
/*
 * Queue one masked frame (fresh random key). Writes at once when the
 * socket takes it; the rest waits for EPOLLOUT. 0, or -1 if the connection
 * is not open or its output would pass the bound (it is then aborted).
 */
int      wsb_conn_send(struct wsb_loop *l, struct wsb_conn *c, int opcode,
                       const void *p, size_t n);
/* Start the close handshake with code (1000 normally). */
void     wsb_conn_close(struct wsb_loop *l, struct wsb_conn *c, int code);
/* Drop the TCP connection now, recording reason if none was recorded. */
void     wsb_conn_abort(struct wsb_loop *l, struct wsb_conn *c, int reason);

const char *wsb_fail_name(int reason);

/*
 * Open n connections with at most o->concurrency handshakes in flight;
 * path_of(i) gives the request path. Returns when all are open or failed,
 * or the connect phase deadline (connect_timeout + n/1000 s) passed.
 */
struct wsb_open_result {
    int      opened, failed;
    uint64_t fail[WSB_FAIL_COUNT];
    double   seconds;          /* first connect() to last result */
    struct wsb_hist *hs;       /* optional: handshake latency, caller's */
};
void     wsb_open_all(struct wsb_loop *l, struct wsb_conn *conns, int n,
                      const char *(*path_of)(int i, void *ud), void *ud,
                      struct wsb_open_result *r);
/* Close every open connection and wait (bounded) until all are done. */
void     wsb_close_all(struct wsb_loop *l, struct wsb_conn *conns, int n);

/* ---- report writer (wsbench.c) ---------------------------------------- */

/*
 * Human lines go to stdout, or to stderr under --json so stdout carries
 * exactly one JSON object. The JSON writer keeps comma state per level.
 */
FILE *wsb_human(void);
void  wsb_json_open(const char *key);      /* key NULL inside an array */
void  wsb_json_close(void);
void  wsb_json_array(const char *key);
void  wsb_json_array_end(void);
void  wsb_json_num(const char *key, double v);
void  wsb_json_int(const char *key, int64_t v);
void  wsb_json_str(const char *key, const char *v);
void  wsb_json_hist_ms(const char *key, const struct wsb_hist *h);
/* Generator CPU (user+sys) over a phase, as a share of its wall time:
 * near 1 means the single-threaded generator, not the server, is the
 * limit. key names the JSON object ("generator" for the whole run). */
void  wsb_report_cpu(const char *what, const char *key, double wall_s,
                     double cpu_s);

/* ---- scenarios -------------------------------------------------------- */

/* Each returns 0 when the run passed its checks, 1 on a correctness
 * failure, 2 when it could not run (no server, no connection opened). */
int wsb_fanout_run(const struct wsb_opts *o);
int wsb_echo_run(const struct wsb_opts *o);
int wsb_conns_run(const struct wsb_opts *o);
int wsb_rooms_run(const struct wsb_opts *o);
/* Known-answer checks of the codec (wsb_selftest.c); 0 ok, 1 failed. */
int wsb_selftest(void);

#endif
