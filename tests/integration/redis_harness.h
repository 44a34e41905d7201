/*
 * redis_harness: a real redis-server for the cluster suite, started the
 * way harness.c starts wsmaster. rds_start() picks a free 127.0.0.1 port,
 * makes a temp dir of its own, execs redis-server in the foreground
 * (--daemonize no) as a child of the test process and waits until it
 * answers PING. The child is armed with PR_SET_PDEATHSIG(SIGKILL): a failed
 * ck_assert or a timeout that ends the test process ends its Redis too.
 * rds_kill() signals it by pid (SIGTERM: Redis shuts down and, with
 * persistence, has its append-only file synced; SIGKILL: nothing saved);
 * rds_restart() starts it again on the same port and dir.
 *
 * rds_cmd() is a small RESP2 client of our own (no client library): one
 * command as an array of bulk strings, one reply read with a deadline.
 * Every wait has a deadline in milliseconds; nothing loops unbounded.
 */
#ifndef WSM_REDIS_HARNESS_H
#define WSM_REDIS_HARNESS_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

struct redis_srv {
    char  dir[64];              /* mkdtemp directory, removed by rds_destroy */
    char  log[PATH_MAX];        /* dir/redis.log (Redis' own logfile) */
    char  out[PATH_MAX];        /* captured stdout and stderr of redis-server */
    int   port;
    int   persist;              /* appendonly yes + appendfsync always */
    char  pass[64];             /* requirepass, "" for none */
    pid_t pid;                  /* a child of the test process */
    int   running;              /* not yet reaped */
    int   status;               /* waitpid status once reaped */
    int   starts;               /* how many times it was started */
};

/*
 * Make the dir, choose a port and start redis-server (with PERSIST its
 * append-only file, fsync always; without, no persistence at all); waits
 * (5 s) for PONG and fails the test with the log tail otherwise.
 */
void rds_start(struct redis_srv *r, int persist);
/* The same with `requirepass PASS` (PASS non-empty). */
void rds_start_auth(struct redis_srv *r, int persist, const char *pass);
/* Start it again on the same port and dir (it must have been stopped). */
void rds_restart(struct redis_srv *r);
/* Send SIG to the Redis process (by pid) and reap it within 10 s (asserted). */
void rds_kill(struct redis_srv *r, int sig);
/* SIGTERM (then SIGKILL) if still running, then remove the temp dir. */
void rds_destroy(struct redis_srv *r);

/*
 * Send one command (ARGV[0..argc) as bulk strings) to 127.0.0.1:PORT on a
 * new connection and read one reply within TIMEOUT_MS. The reply is
 * rendered into OUT (CAP bytes, NUL-terminated): a simple string or bulk as
 * its text, an error as "-" and its text, an integer in decimal, a nil bulk
 * as "(nil)", an array as its elements each followed by '\n'. Returns the
 * reply's type byte ('+', '-', ':', '$', '*'), or -1 when the connection,
 * the deadline or the reply's form failed.
 */
int  rds_cmd(int port, int timeout_ms, char *out, size_t cap, int argc, const char *const *argv);
/* 1 if the server on PORT answers PING with PONG within TIMEOUT_MS. */
int  rds_ping(int port, int timeout_ms);
/* A port nothing on 127.0.0.1 was bound to a moment ago (kernel's choice). */
int  rds_free_port(void);
/* Print the last N lines of Redis' log and output to stderr. */
void rds_dump(const struct redis_srv *r, int n);

#endif
