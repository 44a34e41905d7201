/*
 * lifecycle: the process model of wsmaster seen from outside (issue 2).
 * Worker count and parentage, respawn after SIGKILL, SIGHUP reload (valid,
 * broken, under a tight connect loop), SIGTERM fast stop, SIGQUIT graceful
 * stop with close 1001, SIGUSR1 log reopen, a taken port, `-t`, a missing
 * config and max_connections; the unnamed shared memory; the pid file
 * (never written through a planted symlink, FIFO or hard link, one master
 * per pid file, moved on reload) and `-s`, which signals only a master
 * that holds its pid file locked. Every test starts its own server.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define GET_NOPE "GET /no-such-file HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

static int in_set(pid_t p, const pid_t *set, int n)
{
    for (int i = 0; i < n; i++)
        if (set[i] == p)
            return 1;
    return 0;
}

/* Every current worker is outside OLD and there are exactly N of them. */
static int all_new(const struct server *s, const pid_t *old, int nold, int n)
{
    pid_t w[SRV_MAX_WORKERS];
    int nw = srv_workers(s, w, SRV_MAX_WORKERS);
    if (nw != n)
        return 0;
    for (int i = 0; i < nw; i++)
        if (in_set(w[i], old, nold))
            return 0;
    return 1;
}

static int none_alive(const pid_t *p, int n)
{
    for (int i = 0; i < n; i++)
        if (it_proc_alive(p[i]))
            return 0;
    return 1;
}

static void assert_serves(const struct server *s, int times)
{
    for (int i = 0; i < times; i++) {
        struct httpc_resp r;
        int st = httpc_get_status(s->port, GET_NOPE, &r);
        ck_assert_msg(st >= 100 && st <= 599, "request %d: no status line (%d)", i, st);
    }
}

/* "YYYY/MM/DD HH:MM:SS [" at the start of LINE */
static int log_prefix_ok(const char *l)
{
    const char *fmt = "dddd/dd/dd dd:dd:dd [";
    for (int i = 0; fmt[i]; i++) {
        if (fmt[i] == 'd' ? (l[i] < '0' || l[i] > '9') : l[i] != fmt[i])
            return 0;
    }
    return 1;
}

/* 1 if PATH holds exactly TEXT. */
static int file_is(const char *path, const char *text)
{
    char *t = it_file_read(path, NULL);
    int same = t != NULL && strcmp(t, text) == 0;
    free(t);
    return same;
}

/* 1 if PATH holds "PID\n". */
static int pid_file_holds(const char *path, pid_t pid)
{
    char want[32];
    snprintf(want, sizeof want, "%d\n", (int)pid);
    return file_is(path, want);
}

/*
 * A live process that is not a master: a child of the test that waits for
 * signals, dies with the test (PDEATHSIG) and after 30 s in any case.
 */
static pid_t spawn_bystander(void)
{
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(30);
        for (;;)
            pause();
    }
    return pid;
}

/* SIGKILL and reap our own child PID. */
static void reap_bystander(pid_t pid)
{
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
}

/*
 * `wsmaster -c CONF -s SIG` through a server struct of its own whose
 * config names PID_FILE (the running server's struct must keep its pid).
 * Returns the exit status; its stderr stays in CMD->err.
 */
static int run_signal(struct server *cmd, const char *pid_file, const char *sig)
{
    char extra[PATH_MAX + 16];
    snprintf(extra, sizeof extra, "pid_file %s", pid_file);
    srv_init(cmd, extra);
    const char *args[] = { "-c", cmd->conf, "-s", sig, NULL };
    return srv_run_sync(cmd, args);
}

/*
 * Inode of PID's mapping of "memfd:LABEL (deleted)", 0 if it has none.
 * *OTHER counts mappings from /dev/shm (a named segment).
 */
static unsigned long memfd_inode(pid_t pid, const char *label, int *other)
{
    char path[64], want[96], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    snprintf(want, sizeof want, "/memfd:%s (deleted)\n", label);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    unsigned long ino = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        size_t ll = strlen(line), wl = strlen(want);
        if (strstr(line, " /dev/shm/") != NULL && other != NULL)
            (*other)++;
        if (ll >= wl && strcmp(line + ll - wl, want) == 0)
            sscanf(line, "%*s %*s %*s %*s %lu", &ino);
    }
    fclose(f);
    return ino;
}

/* Open fds of PID that lead to a memfd. */
static int memfd_fds(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[384], target[256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0) {
            target[len] = '\0';
            n += strncmp(target, "/memfd:", 7) == 0;
        }
    }
    closedir(d);
    return n;
}

/* ---- workers -------------------------------------------------------------- */

static const int worker_counts[] = { 2, 3 };

START_TEST(worker_count_and_parent)
{
    struct server s;
    int n = worker_counts[_i];
    char extra[64];
    snprintf(extra, sizeof extra, "workers %d", n);
    srv_start(&s, extra);
    ck_assert_msg(srv_wait_worker_count(&s, n, 3000), "want %d workers", n);
    pid_t w[SRV_MAX_WORKERS];
    int nw = srv_workers(&s, w, SRV_MAX_WORKERS);
    ck_assert_int_eq(nw, n);
    for (int i = 0; i < nw; i++)
        ck_assert_int_eq(it_proc_ppid(w[i]), s.pid);

    /* each worker says so once its loop is ready, tagged PID#SLOT */
    ck_assert_msg(WAIT_FOR(it_file_count(s.log, "worker started") >= n, 3000),
                  "want %d \"worker started\" lines", n);
    for (int i = 0; i < nw; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, " %d#", (int)w[i]);
        ck_assert_msg(it_file_count2(s.log, tag, "worker started") == 1,
                      "no \"worker started\" line tagged%s", tag);
    }
    char tag[32];
    snprintf(tag, sizeof tag, " %d: listening on 127.0.0.1:%d", (int)s.pid, s.port);
    ck_assert_msg(it_file_count(s.log, tag) == 1, "no master line \"%s\"", tag);

    char *text = it_file_read(s.log, NULL);
    ck_assert(text != NULL);
    for (char *l = text; *l; ) {
        ck_assert_msg(log_prefix_ok(l), "log line without a time prefix: %.80s", l);
        char *nl = strchr(l, '\n');
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    free(text);
    assert_serves(&s, 4);
    srv_stop(&s);
}
END_TEST

START_TEST(worker_killed_is_replaced)
{
    struct server s;
    srv_start(&s, "workers 2");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    pid_t old[SRV_MAX_WORKERS];
    int nold = srv_workers(&s, old, SRV_MAX_WORKERS);
    snprintf(s.alert_ok, sizeof s.alert_ok, "%d", (int)old[0]);

    ck_assert_int_eq(kill(old[0], SIGKILL), 0);
    /* a pid that is neither of the old ones, with the other one kept */
    int ok = WAIT_FOR(({
        pid_t w[SRV_MAX_WORKERS];
        int nw = srv_workers(&s, w, SRV_MAX_WORKERS), fresh = 0;
        for (int i = 0; i < nw; i++)
            fresh += !in_set(w[i], old, nold);
        fresh == 1 && nw == 2;
    }), 1000);
    ck_assert_msg(ok, "no replacement worker within 1 s");
    ck_assert(it_proc_alive(old[1]));
    ck_assert(!it_proc_alive(old[0]));

    ck_assert(WAIT_FOR(it_file_count(s.log, "worker started") >= 3, 2000));
    assert_serves(&s, 10);
    struct client c;
    wsc_open(&c, s.port);
    wsc_echo_check(&c, WS_OP_TEXT, "after respawn", 13);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/*
 * The shared memory has no name: the master and every worker map the same
 * memfd, labelled wschat-PORT, that no process keeps an fd of, and nothing
 * of the server's appears in /dev/shm.
 */
START_TEST(shm_is_unnamed)
{
    struct server s;
    srv_start(&s, "workers 2");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    char label[32];
    snprintf(label, sizeof label, "wschat-%d", s.port);
    int named = 0;
    unsigned long ino = memfd_inode(s.pid, label, &named);
    ck_assert_msg(ino != 0, "master %d maps no memfd:%s", (int)s.pid, label);
    ck_assert_int_eq(memfd_fds(s.pid), 0);
    pid_t w[SRV_MAX_WORKERS];
    int nw = srv_workers(&s, w, SRV_MAX_WORKERS);
    ck_assert_int_eq(nw, 2);
    for (int i = 0; i < nw; i++) {
        ck_assert_msg(memfd_inode(w[i], label, &named) == ino,
                      "worker %d does not map the master's segment", (int)w[i]);
        ck_assert_int_eq(memfd_fds(w[i]), 0);
    }
    ck_assert_int_eq(named, 0);
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/%s", label);
    ck_assert_msg(!it_file_exists(path), "%s exists", path);
    snprintf(path, sizeof path, "/dev/shm/wschat-%d", s.port);
    ck_assert_msg(!it_file_exists(path), "%s exists", path);
    assert_serves(&s, 2);
    srv_stop(&s);
}
END_TEST

/*
 * A second master with the same pid_file (its own port) exits 1 saying a
 * master already runs, before it binds; the first keeps its pid file,
 * unchanged, and keeps serving.
 */
START_TEST(second_master_same_pid_file)
{
    struct server a, b;
    srv_start(&a, "workers 1");
    ck_assert(srv_wait_worker_count(&a, 1, 3000));
    char extra[PATH_MAX + 32];
    snprintf(extra, sizeof extra, "workers 1\npid_file %s", a.pid_file);
    srv_init(&b, extra);
    const char *args[] = { "-c", b.conf, NULL };
    int rc = srv_run_sync(&b, args);
    ck_assert_msg(rc == 1, "second master: exit %d, want 1", rc);
    ck_assert_msg(it_file_count2(b.err, "already running", a.pid_file) == 1,
                  "stderr of the second master lacks \"already running\" and %s", a.pid_file);
    ck_assert_msg(it_file_count(b.log, "listening on") == 0, "the second master bound a port");
    ck_assert_msg(!srv_wait_exit(&a, 0), "the first master exited");
    ck_assert_msg(pid_file_holds(a.pid_file, a.pid), "the first master's pid file changed");
    assert_serves(&a, 3);
    srv_stop(&b);

    /* `-s` still reaches the first one through that file. */
    struct server cmd;
    ck_assert_int_eq(run_signal(&cmd, a.pid_file, "quit"), 0);
    ck_assert_msg(srv_wait_exit(&a, a.shutdown_ms + 2000), "-s quit did not stop the master");
    ck_assert_msg(WIFEXITED(a.status) && WEXITSTATUS(a.status) == 0, "status 0x%x", a.status);
    ck_assert_msg(!it_file_exists(a.pid_file), "pid file left after -s quit");
    srv_stop(&cmd);
    srv_stop(&a);
}
END_TEST

/* `-s reload` signals a running master: a new generation replaces the old. */
START_TEST(signal_running_master)
{
    struct server s, cmd;
    srv_start(&s, "workers 1");
    ck_assert(srv_wait_worker_count(&s, 1, 3000));
    pid_t old[SRV_MAX_WORKERS];
    int nold = srv_workers(&s, old, SRV_MAX_WORKERS);
    int rc = run_signal(&cmd, s.pid_file, "reload");
    ck_assert_msg(rc == 0, "-s reload: exit %d", rc);
    ck_assert_msg(WAIT_FOR(all_new(&s, old, nold, 1), s.shutdown_ms + 1000),
                  "no new worker after -s reload");
    srv_stop(&cmd);
    assert_serves(&s, 2);
    srv_stop(&s);
}
END_TEST

/* ---- reload --------------------------------------------------------------- */

START_TEST(reload_valid_config)
{
    struct server s;
    /* This test is about the 1012 path; reload_hands_over covers the default. */
    srv_start(&s, "workers 2\nreload_handoff off");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    ck_assert(WAIT_FOR(it_file_count(s.log, "worker started") >= 2, 3000));
    pid_t old[SRV_MAX_WORKERS];
    int nold = srv_workers(&s, old, SRV_MAX_WORKERS);
    pid_t master = s.pid;

    struct client c;    /* held by an old worker: gets 1012 */
    wsc_open(&c, s.port);
    wsc_echo_check(&c, WS_OP_TEXT, "before", 6);

    srv_write_config(&s, "workers 3\nreload_handoff off");
    int64_t t0 = it_now_ms();
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);

    char reason[128];
    int code = wsc_read_close(&c, s.shutdown_ms + 1000, NULL, reason, sizeof reason);
    ck_assert_msg(code == 1012, "client of an old worker: close %d, want 1012", code);
    wsc_send_close(&c, 1012, NULL, 0);
    ck_assert(cli_expect_closed(&c, 2000));
    cli_close(&c);

    int left = (int)(t0 + s.shutdown_ms + 1000 - it_now_ms());
    ck_assert_msg(WAIT_FOR(none_alive(old, nold), left > 0 ? left : 0),
                  "old workers alive after worker_shutdown_timeout + 1 s");
    ck_assert_msg(WAIT_FOR(all_new(&s, old, nold, 3), 1000), "want 3 new workers");
    ck_assert_msg(!srv_wait_exit(&s, 0) && s.pid == master, "master changed or exited");
    ck_assert(WAIT_FOR(it_file_count(s.log, "worker started") >= 5, 2000));

    assert_serves(&s, 6);
    wsc_open(&c, s.port);
    wsc_echo_check(&c, WS_OP_TEXT, "after", 5);
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

/*
 * Default reload: an idle WebSocket of an old worker is passed to a new
 * worker with its socket. The client sees no close frame, the old workers
 * still exit, and the same connection keeps echoing.
 */
START_TEST(reload_hands_over)
{
    struct server s;
    srv_start(&s, "workers 2");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    pid_t old[SRV_MAX_WORKERS];
    int nold = srv_workers(&s, old, SRV_MAX_WORKERS);
    enum { N = 6 };
    struct client c[N];
    for (int i = 0; i < N; i++) {
        wsc_open(&c[i], s.port);
        wsc_echo_check(&c[i], WS_OP_TEXT, "before", 6);
    }
    srv_write_config(&s, "workers 3");
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_msg(WAIT_FOR(none_alive(old, nold), s.shutdown_ms + 1000),
                  "old workers alive after worker_shutdown_timeout + 1 s");
    ck_assert(WAIT_FOR(it_file_count(s.log, "handed to new workers") >= nold, 2000));
    for (int i = 0; i < N; i++) {
        /* Still the same TCP connection: no close frame, echo works. */
        wsc_echo_check(&c[i], WS_OP_BIN, "after the reload", 16);
        cli_close(&c[i]);
    }
    srv_stop(&s);
}
END_TEST

/*
 * Connect in a tight loop (each: connect, GET, read a status line) while a
 * reload replaces the workers; no connect may fail and no request may end
 * without a status line. At least 300 requests, and on until the reload is
 * complete (old workers gone, new ones in place).
 */
START_TEST(reload_under_connect_loop)
{
    struct server s;
    srv_start(&s, "workers 2");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    pid_t old[SRV_MAX_WORKERS];
    int nold = srv_workers(&s, old, SRV_MAX_WORKERS);
    srv_write_config(&s, "workers 3");

    int64_t end = it_now_ms() + 15000;
    int done = 0, hup_at = 50, i;
    for (i = 0; it_now_ms() < end; i++) {
        if (i == hup_at)
            ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
        if (i > hup_at && !done)
            done = none_alive(old, nold) && all_new(&s, old, nold, 3);
        if (i >= 300 && done)
            break;
        struct client c;
        ck_assert_msg(cli_connect(&c, s.port) == 0, "connect %d failed: %s", i, strerror(errno));
        ck_assert_msg(cli_sendstr(&c, GET_NOPE) == 0, "send %d: %s", i, strerror(errno));
        struct httpc_resp r;
        int st = httpc_read_head(&c, &r, 5000);
        ck_assert_msg(st >= 100 && st <= 599, "request %d: %s (rst=%d)", i,
                      st == -1 ? "closed without a response" : "no response", c.rst);
        cli_close(&c);
    }
    ck_assert_msg(done && i >= 300, "reload did not complete (%d requests)", i);
    srv_stop(&s);
}
END_TEST

START_TEST(reload_broken_config_keeps_workers)
{
    struct server s;
    srv_start(&s, "workers 2\nreload_handoff off");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    pid_t old[SRV_MAX_WORKERS];
    int nold = srv_workers(&s, old, SRV_MAX_WORKERS);
    struct client c;
    wsc_open(&c, s.port);

    srv_write_config(&s, "workers 3\nno_such_directive on");
    int line = it_file_line_of(s.conf, "no_such_directive");
    ck_assert_int_gt(line, 0);
    char where[PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:%d:", s.conf, line);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_msg(WAIT_FOR(it_file_count2(s.log, "[error]", where) >= 1, 3000),
                  "no \"[error] ... %s\" log line", where);

    /* the reload was refused: the same two workers, still serving */
    it_sleep_ms(200);
    pid_t now[SRV_MAX_WORKERS];
    int nnow = srv_workers(&s, now, SRV_MAX_WORKERS);
    ck_assert_int_eq(nnow, nold);
    for (int i = 0; i < nnow; i++)
        ck_assert_msg(in_set(now[i], old, nold), "worker %d is new", (int)now[i]);
    wsc_echo_check(&c, WS_OP_TEXT, "still here", 10);
    assert_serves(&s, 4);

    /* and a fixed file reloads normally afterwards */
    srv_write_config(&s, "workers 3\nreload_handoff off");
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_int_eq(wsc_read_close(&c, s.shutdown_ms + 1000, NULL, NULL, 0), 1012);
    wsc_send_close(&c, 1012, NULL, 0);
    cli_close(&c);
    ck_assert_msg(WAIT_FOR(all_new(&s, old, nold, 3), s.shutdown_ms + 1000),
                  "fixed config did not reload");
    srv_stop(&s);
}
END_TEST

/*
 * A reload naming another pid_file moves the pid there (locked the same
 * way: a symlink at the new path is refused, the old file kept) and removes
 * the old file.
 */
START_TEST(reload_moves_pid_file)
{
    struct server s;
    srv_start(&s, "workers 1");
    char victim[PATH_MAX], link[PATH_MAX], moved[PATH_MAX], extra[PATH_MAX + 32];
    snprintf(victim, sizeof victim, "%s/victim", s.dir);
    snprintf(link, sizeof link, "%s/link.pid", s.dir);
    snprintf(moved, sizeof moved, "%s/run/moved.pid", s.dir);
    srv_write_file(victim, "keep me\n");
    ck_assert_int_eq(symlink(victim, link), 0);

    snprintf(extra, sizeof extra, "workers 1\npid_file %s", link);
    srv_write_config(&s, extra);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_msg(WAIT_FOR(it_file_count2(s.log, "keeping pid file", link) == 1, 3000),
                  "no \"keeping pid file\" error for the symlinked path");
    ck_assert(file_is(victim, "keep me\n"));
    ck_assert(pid_file_holds(s.pid_file, s.pid));

    snprintf(extra, sizeof extra, "workers 1\npid_file %s", moved);
    srv_write_config(&s, extra);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_msg(WAIT_FOR(pid_file_holds(moved, s.pid), 3000), "%s not written", moved);
    ck_assert_msg(WAIT_FOR(!it_file_exists(s.pid_file), 1000), "old pid file left");
    struct server cmd;
    ck_assert_int_eq(run_signal(&cmd, moved, "reopen"), 0);
    srv_stop(&cmd);
    ck_assert(file_is(victim, "keep me\n"));
    srv_stop(&s);
    ck_assert_msg(!it_file_exists(moved), "moved pid file left after stop");
}
END_TEST

/* ---- stop signals ----------------------------------------------------------- */

START_TEST(sigterm_stops_everything)
{
    struct server s;
    srv_start(&s, "workers 2");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    pid_t w[SRV_MAX_WORKERS];
    int nw = srv_workers(&s, w, SRV_MAX_WORKERS);
    struct client c;    /* a connected client must not delay a fast stop */
    wsc_open(&c, s.port);

    int64_t t0 = it_now_ms();
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    ck_assert_msg(srv_wait_exit(&s, 2000), "master alive 2 s after SIGTERM");
    int left = (int)(t0 + 2000 - it_now_ms());
    ck_assert_msg(WAIT_FOR(none_alive(w, nw), left > 0 ? left : 0),
                  "workers alive 2 s after SIGTERM");
    ck_assert_msg(!it_file_exists(s.pid_file), "pid file left after SIGTERM");
    ck_assert(cli_expect_closed(&c, 1000));
    cli_close(&c);
    srv_stop(&s);
}
END_TEST

START_TEST(sigquit_graceful_stop)
{
    struct server s;
    srv_start(&s, "workers 2");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    pid_t w[SRV_MAX_WORKERS];
    int nw = srv_workers(&s, w, SRV_MAX_WORKERS);
    struct client c;
    wsc_open(&c, s.port);
    wsc_echo_check(&c, WS_OP_TEXT, "hi", 2);

    ck_assert_int_eq(kill(s.pid, SIGQUIT), 0);
    int code = wsc_read_close(&c, s.shutdown_ms + 1000, NULL, NULL, 0);
    ck_assert_msg(code == 1001, "close code %d on SIGQUIT, want 1001", code);
    wsc_send_close(&c, 1001, NULL, 0);
    ck_assert(cli_expect_closed(&c, 2000));
    cli_close(&c);
    ck_assert_msg(srv_wait_exit(&s, s.shutdown_ms + 2000), "master did not exit on SIGQUIT");
    ck_assert_msg(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 0,
                  "master status 0x%x after SIGQUIT, want exit 0", s.status);
    ck_assert(WAIT_FOR(none_alive(w, nw), 1000));
    ck_assert_msg(!it_file_exists(s.pid_file), "pid file left after SIGQUIT");
    srv_stop(&s);
}
END_TEST

START_TEST(sigusr1_reopens_log)
{
    struct server s;
    srv_start(&s, "workers 2");
    ck_assert(srv_wait_worker_count(&s, 2, 3000));
    ck_assert(WAIT_FOR(it_file_count(s.log, "worker started") >= 2, 3000));
    char moved[PATH_MAX + 8];
    snprintf(moved, sizeof moved, "%s.1", s.log);
    ck_assert_int_eq(rename(s.log, moved), 0);
    ck_assert_int_eq(kill(s.pid, SIGUSR1), 0);
    ck_assert_msg(WAIT_FOR(it_file_exists(s.log), 2000), "no new %s after SIGUSR1", s.log);

    /* new lines (from the master and from workers it forks) go to the new file */
    srv_write_config(&s, "workers 2\nlog_level debug");
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_msg(WAIT_FOR(it_file_count(s.log, "worker started") >= 2, 3000),
                  "new workers did not log to the reopened file");
    ck_assert_int_eq(it_file_count(moved, "worker started"), 2);
    assert_serves(&s, 2);
    srv_stop(&s);
    /* srv_stop checked the new file for [alert]; the old one too */
    ck_assert_int_eq(it_file_count(moved, "[alert]") + it_file_count(moved, "[crit]"), 0);
}
END_TEST

/* ---- startup errors and -t ---------------------------------------------------- */

START_TEST(port_in_use)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    socklen_t sl = sizeof sa;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    int port = ntohs(sa.sin_port);

    struct server s;
    char extra[64];
    snprintf(extra, sizeof extra, "listen 127.0.0.1:%d", port);
    srv_init(&s, extra);
    const char *args[] = { "-c", s.conf, NULL };
    int rc = srv_run_sync(&s, args);
    close(fd);
    ck_assert_msg(rc == 1, "exit status %d with the port taken, want 1", rc);
    ck_assert_msg(it_file_count(s.err, "Address already in use") >= 1,
                  "stderr lacks \"Address already in use\"");
    ck_assert_msg(!it_file_exists(s.pid_file), "pid file left although bind failed");
    srv_stop(&s);
}
END_TEST

/*
 * Something planted at the pid_file path before the start: a symlink to a
 * file of ours, a hard link to one, a FIFO. The master refuses to start
 * (exit 1, the pid file named on stderr) without writing the victim, and
 * without hanging on the FIFO.
 */
enum { PLANT_SYMLINK, PLANT_HARDLINK, PLANT_FIFO };

START_TEST(pid_file_planted)
{
    struct server s;
    srv_init(&s, "workers 1");
    char victim[PATH_MAX];
    snprintf(victim, sizeof victim, "%s/victim", s.dir);
    const char *precious = "precious bytes\nsecond line\n";
    srv_write_file(victim, precious);
    if (_i == PLANT_SYMLINK)
        ck_assert_int_eq(symlink(victim, s.pid_file), 0);
    else if (_i == PLANT_HARDLINK)
        ck_assert_int_eq(link(victim, s.pid_file), 0);
    else
        ck_assert_int_eq(mkfifo(s.pid_file, 0600), 0);
    const char *args[] = { "-c", s.conf, NULL };
    int rc = srv_run_sync(&s, args);
    ck_assert_msg(rc == 1, "exit %d with a planted pid file (%d), want 1", rc, _i);
    ck_assert_msg(file_is(victim, precious), "the victim file changed");
    ck_assert_msg(it_file_count(s.err, s.pid_file) >= 1, "stderr does not name %s", s.pid_file);
    ck_assert_msg(it_file_count(s.log, "listening on") == 0, "it bound a port anyway");
    struct stat st;
    ck_assert_int_eq(lstat(s.pid_file, &st), 0);    /* left as it was */
    if (_i == PLANT_SYMLINK)
        ck_assert_msg(it_file_count(s.err, "symbolic link") == 1, "stderr does not say why");
    srv_stop(&s);
}
END_TEST

/*
 * `-s` with a pid file no master holds: it names a live process that is
 * not a master (ours), and every signal name is refused without touching
 * it; through a symlink too; and a missing file is an error.
 */
START_TEST(signal_stale_pid_file)
{
    static const char *const sigs[] = { "reload", "reopen", "quit", "stop" };
    struct server s;
    srv_init(&s, NULL);
    pid_t bystander = spawn_bystander();
    char text[32], want[PATH_MAX + 64];
    snprintf(text, sizeof text, "%d\n", (int)bystander);
    srv_write_file(s.pid_file, text);
    snprintf(want, sizeof want, "wsmaster: no running master (stale pid file %s)", s.pid_file);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        const char *args[] = { "-c", s.conf, "-s", sigs[i], NULL };
        int rc = srv_run_sync(&s, args);
        it_sleep_ms(20);
        int alive = waitpid(bystander, NULL, WNOHANG) == 0;
        if (rc != 1 || !alive || it_file_count(s.err, want) != 1)
            reap_bystander(bystander);
        ck_assert_msg(alive, "-s %s signalled pid %d, which is no master", sigs[i],
                      (int)bystander);
        ck_assert_msg(rc == 1, "-s %s with a stale pid file: exit %d, want 1", sigs[i], rc);
        ck_assert_msg(it_file_count(s.err, want) == 1, "-s %s: stderr lacks \"%s\"",
                      sigs[i], want);
    }

    char real[PATH_MAX + 8];
    snprintf(real, sizeof real, "%s.real", s.pid_file);
    ck_assert_int_eq(rename(s.pid_file, real), 0);
    ck_assert_int_eq(symlink(real, s.pid_file), 0);
    const char *args[] = { "-c", s.conf, "-s", "reload", NULL };
    int rc = srv_run_sync(&s, args);
    it_sleep_ms(20);
    int alive = waitpid(bystander, NULL, WNOHANG) == 0;
    reap_bystander(bystander);
    ck_assert_msg(alive && rc == 1, "-s through a symlink: exit %d, target %s", rc,
                  alive ? "alive" : "signalled");
    ck_assert_msg(it_file_count(s.err, "symbolic link") == 1, "stderr does not say why");

    ck_assert_int_eq(unlink(s.pid_file), 0);
    ck_assert_int_eq(srv_run_sync(&s, args), 1);
    ck_assert_msg(it_file_count(s.err, s.pid_file) == 1, "stderr does not name the pid file");
    srv_stop(&s);
}
END_TEST

/*
 * A pid file left by a master that died (unlocked, holding a pid) is taken
 * over with a notice naming what it held, and then holds the new master's.
 */
START_TEST(stale_pid_file_replaced)
{
    struct server s;
    srv_init(&s, "workers 1");
    srv_write_file(s.pid_file, "999999\n");
    const char *args[] = { "-c", s.conf, NULL };
    srv_spawn(&s, args);
    char want[64];
    snprintf(want, sizeof want, "%d\n", (int)s.pid);
    ck_assert_msg(WAIT_FOR(it_file_count(s.log, "held \"999999\", no master holds it") == 1,
                           5000), "no notice about the stale pid file in %s", s.log);
    int ours = 0;
    WAIT_FOR(({ char *t = it_file_read(s.pid_file, NULL);
                ours = t != NULL && strcmp(t, want) == 0; free(t); ours; }), 5000);
    ck_assert_msg(ours, "the pid file does not hold the new master's pid %d", (int)s.pid);
    srv_stop(&s);
}
END_TEST

START_TEST(config_test_good)
{
    struct server s;
    srv_init(&s, NULL);
    const char *args[] = { "-t", "-c", s.conf, NULL };
    int rc = srv_run_sync(&s, args);
    ck_assert_msg(rc == 0, "-t on a good file: exit %d", rc);
    ck_assert_msg(it_file_count(s.out, "syntax is ok") + it_file_count(s.out, "successful") >= 1,
                  "-t printed no success line on stdout");
    ck_assert_msg(!it_file_exists(s.pid_file), "-t wrote a pid file");
    srv_stop(&s);
}
END_TEST

/* extra directives, and a substring locating the line that is wrong */
static const struct { const char *extra, *bad; } bad_configs[] = {
    { "no_such_directive 1", "no_such_directive" },
    { "workers 0", "workers 0" },
    { "max_message 12q", "max_message 12q" },
    { "log_level loud", "log_level loud" },
    { "listen 127.0.0.1:99999", "listen 127.0.0.1:99999" },
    { "workers 2\nworkers 3", "workers 3" },
};

START_TEST(config_test_bad)
{
    struct server s;
    srv_init(&s, bad_configs[_i].extra);
    int line = it_file_line_of(s.conf, bad_configs[_i].bad);
    ck_assert_int_gt(line, 0);
    const char *args[] = { "-t", "-c", s.conf, NULL };
    int rc = srv_run_sync(&s, args);
    ck_assert_msg(rc == 1, "-t on \"%s\": exit %d, want 1", bad_configs[_i].extra, rc);
    char where[PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:%d:", s.conf, line);
    ck_assert_msg(it_file_count(s.err, where) >= 1, "stderr lacks \"%s\" for \"%s\"",
                  where, bad_configs[_i].extra);
    srv_stop(&s);
}
END_TEST

START_TEST(missing_config)
{
    struct server s;
    srv_init(&s, NULL);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/nope.conf", s.dir);
    const char *args[] = { "-c", path, NULL };
    int rc = srv_run_sync(&s, args);
    ck_assert_msg(rc == 1, "missing config: exit %d, want 1", rc);
    ck_assert_msg(it_file_count(s.err, "nope.conf") >= 1, "stderr does not name the file");
    srv_stop(&s);
}
END_TEST

START_TEST(version_and_usage)
{
    struct server s;
    srv_init(&s, NULL);
    const char *v[] = { "-v", NULL };
    ck_assert_int_eq(srv_run_sync(&s, v), 0);
    size_t lo = 0, le = 0;
    free(it_file_read(s.out, &lo));
    free(it_file_read(s.err, &le));
    ck_assert_msg(lo + le > 0, "-v printed nothing");
    const char *h[] = { "-h", NULL };
    int rc = srv_run_sync(&s, h);
    ck_assert_msg(rc == 0 || rc == 1, "-h: exit %d", rc);
    ck_assert_msg(it_file_count(s.out, "-c") + it_file_count(s.err, "-c") >= 1,
                  "-h usage does not mention -c");
    srv_stop(&s);
}
END_TEST

/* ---- limits ------------------------------------------------------------------ */

START_TEST(max_connections_defers_third)
{
    struct server s;
    srv_start(&s, "workers 1\nmax_connections 2");
    ck_assert(srv_wait_worker_count(&s, 1, 3000));
    ck_assert(WAIT_FOR(it_file_count(s.log, "worker started") >= 1, 3000));
    struct client a, b, c;
    wsc_open(&a, s.port);
    wsc_open(&b, s.port);
    ck_assert_int_eq(cli_connect(&c, s.port), 0);
    ck_assert_int_eq(cli_sendstr(&c, GET_NOPE), 0);
    struct httpc_resp r;
    int st = httpc_read_head(&c, &r, 1000);
    ck_assert_msg(st == -2, "third connection answered (%d) while two are open", st);
    wsc_echo_check(&a, WS_OP_TEXT, "a", 1);
    wsc_echo_check(&b, WS_OP_TEXT, "b", 1);

    wsc_send_close(&a, 1000, NULL, 0);
    ck_assert_int_eq(wsc_read_close(&a, 2000, NULL, NULL, 0), 1000);
    cli_close(&a);
    st = httpc_read_head(&c, &r, 3000);
    ck_assert_msg(st >= 100 && st <= 599, "third connection not served after one closed (%d)", st);
    cli_close(&c);
    cli_close(&b);
    srv_stop(&s);
}
END_TEST

Suite *lifecycle_suite(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, worker_count_and_parent, 0, 2);
    tcase_add_test(tc, worker_killed_is_replaced);
    tcase_add_test(tc, sigterm_stops_everything);
    tcase_add_test(tc, sigquit_graceful_stop);
    tcase_add_test(tc, sigusr1_reopens_log);
    tcase_add_test(tc, max_connections_defers_third);
    tcase_add_test(tc, shm_is_unnamed);
    tcase_add_test(tc, second_master_same_pid_file);
    tcase_add_test(tc, signal_running_master);
    suite_add_tcase(s, tc);

    tc = tcase_create("reload");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, reload_valid_config);
    tcase_add_test(tc, reload_hands_over);
    tcase_add_test(tc, reload_under_connect_loop);
    tcase_add_test(tc, reload_broken_config_keeps_workers);
    tcase_add_test(tc, reload_moves_pid_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("command_line");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, port_in_use);
    tcase_add_loop_test(tc, pid_file_planted, PLANT_SYMLINK, PLANT_FIFO + 1);
    tcase_add_test(tc, signal_stale_pid_file);
    tcase_add_test(tc, stale_pid_file_replaced);
    tcase_add_test(tc, config_test_good);
    tcase_add_loop_test(tc, config_test_bad, 0, (int)(sizeof bad_configs / sizeof bad_configs[0]));
    tcase_add_test(tc, missing_config);
    tcase_add_test(tc, version_and_usage);
    suite_add_tcase(s, tc);
    return s;
}
