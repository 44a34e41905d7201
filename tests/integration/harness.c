/*
 * harness: see harness.h. Server control (temp dir, config template, spawn,
 * watchdog, bounded stop) first, then the independent HTTP/WebSocket client.
 * Nothing here includes server/ or shared/ headers: the client is written
 * from RFC 6455 alone so a codec bug cannot hide behind a shared mistake.
 */
#include "harness.h"
#include "cluster.h"
#include "journal.h"

#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 5000
#define RX_LIMIT         ((size_t)256 << 20)

/* ---- time ---------------------------------------------------------------- */

int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int remaining(int64_t end)
{
    int64_t r = end - it_now_ms();
    return r < 0 ? 0 : (int)r;
}

/* ---- files --------------------------------------------------------------- */

char *it_file_read(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (cap - n < 2048) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int it_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int it_file_count2(const char *path, const char *a, const char *b)
{
    char *text = it_file_read(path, NULL);
    if (text == NULL)
        return 0;
    int count = 0;
    for (char *line = text; line && *line; ) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strstr(line, a) && (b == NULL || strstr(line, b)))
            count++;
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return count;
}

int it_file_count(const char *path, const char *needle)
{
    return it_file_count2(path, needle, NULL);
}

int it_file_line_of(const char *path, const char *needle)
{
    char *text = it_file_read(path, NULL);
    if (text == NULL)
        return 0;
    int no = 0, found = 0;
    for (char *line = text; line && *line && !found; ) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        no++;
        if (strstr(line, needle))
            found = no;
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return found;
}

/* Lines holding NEEDLE but not EXCEPT (EXCEPT empty: no exception). */
static int it_file_count_except(const char *path, const char *needle, const char *except)
{
    char *text = it_file_read(path, NULL);
    if (text == NULL)
        return 0;
    int count = 0;
    for (char *line = text; line && *line; ) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strstr(line, needle) && !(except[0] && strstr(line, except)))
            count++;
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return count;
}

void srv_write_file(const char *path, const char *text)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    ck_assert_msg(f != NULL, "fopen(%s): %s", tmp, strerror(errno));
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    /* rename: the server never sees a half-written file on SIGHUP */
    ck_assert_msg(rename(tmp, path) == 0, "rename(%s): %s", path, strerror(errno));
}

static void print_tail(const char *title, const char *path, int n)
{
    size_t len;
    char *text = it_file_read(path, &len);
    if (text == NULL)
        return;
    size_t i = len;
    int lines = 0;
    while (i > 0 && lines <= n) {
        i--;
        if (text[i] == '\n' && i + 1 < len)
            lines++;
    }
    if (lines > n)
        i++;
    fprintf(stderr, "---- %s (%s), last lines:\n%s%s", title, path, text + i,
            len && text[len - 1] != '\n' ? "\n" : "");
    free(text);
}

void srv_dump(const struct server *s, int n)
{
    print_tail("server log", s->log, n);
    print_tail("server stderr", s->err, n);
    print_tail("server stdout", s->out, n);
}

/* ---- /proc ---------------------------------------------------------------- */

/* state, ppid, process group and start time of PID; 0, or -1 if it is gone. */
static int proc_stat4(pid_t pid, char *state, pid_t *ppid, pid_t *pgrp,
                      unsigned long long *start, char *comm, size_t commlen)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');   /* comm may hold blanks and parens */
    char *c = strchr(buf, '(');
    if (p == NULL || c == NULL || c > p)
        return -1;
    char st;
    int pp, pg;
    unsigned long long t;
    /* fields 3 (state), 4 (ppid), 5 (pgrp), ... 22 (starttime) */
    if (sscanf(p + 2, "%c %d %d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                      "%*d %*d %*d %*d %llu", &st, &pp, &pg, &t) != 4)
        return -1;
    if (state) *state = st;
    if (ppid) *ppid = pp;
    if (pgrp) *pgrp = pg;
    if (start) *start = t;
    if (comm && commlen) {
        size_t k = (size_t)(p - c - 1) < commlen - 1 ? (size_t)(p - c - 1) : commlen - 1;
        memcpy(comm, c + 1, k);
        comm[k] = '\0';
    }
    return 0;
}

static int proc_stat(pid_t pid, char *state, pid_t *ppid, unsigned long long *start)
{
    return proc_stat4(pid, state, ppid, NULL, start, NULL, 0);
}

int it_proc_alive(pid_t pid)
{
    char st;
    if (pid <= 0 || proc_stat(pid, &st, NULL, NULL) < 0)
        return 0;
    return st != 'Z' && st != 'X' && st != 'x';
}

pid_t it_proc_ppid(pid_t pid)
{
    pid_t pp;
    return proc_stat(pid, NULL, &pp, NULL) < 0 ? -1 : pp;
}

static int children_of(pid_t parent, pid_t *out, unsigned long long *starts, int max)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(e->d_name), pp;
        char st;
        unsigned long long t;
        if (proc_stat(pid, &st, &pp, &t) < 0 || pp != parent || st == 'Z' || st == 'X')
            continue;
        if (starts)
            starts[n] = t;
        out[n++] = pid;
    }
    closedir(d);
    return n;
}

/*
 * Live members of the master's process group started no earlier than the
 * master: the master and every worker, however recently forked. While the
 * master's pid is held (alive or zombie) the group id cannot have been
 * recycled; once it is reaped, members must also carry the master's command
 * name, so a stranger that reused the pid (pid_max may be 32768) is never
 * hit. SIGKILL them when KILL_THEM is set. Returns how many there were.
 */
static int group_scan(pid_t master, unsigned long long start, const char *comm, int kill_them)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    unsigned long long mt;
    int held = proc_stat(master, NULL, NULL, &mt) == 0 && mt == start;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(e->d_name), pg;
        char st, name[32];
        unsigned long long t;
        if (proc_stat4(pid, &st, NULL, &pg, &t, name, sizeof name) < 0 || pg != master
            || t < start || st == 'Z' || st == 'X' ||
            (!held && strcmp(name, comm) != 0 && strcmp(name, JOURNAL_COMM) != 0 &&
             strcmp(name, CLUSTER_COMM) != 0))
            continue;
        n++;
        if (kill_them)
            kill(pid, SIGKILL);
    }
    closedir(d);
    return n;
}

/* SIGKILL the master (first: then it cannot fork) and its whole group. */
static int kill_tree(pid_t master, unsigned long long start, const char *comm)
{
    unsigned long long t;
    char st;
    int n = 0;
    if (proc_stat(master, &st, NULL, &t) == 0 && t == start && st != 'Z') {
        kill(master, SIGKILL);
        n++;
    }
    for (int round = 0; round < 50; round++) {
        int k = group_scan(master, start, comm, 1);
        n += k;
        if (k == 0)
            break;
        it_sleep_ms(10);
    }
    return n;
}

/*
 * The master's children, workers or (IS_JOURNAL) its helper process: the
 * history journal's, or in cluster mode the Redis bridge.
 */
static int children_named(const struct server *s, pid_t *out, int max, int is_journal)
{
    if (!s->running)
        return 0;
    pid_t all[SRV_MAX_WORKERS + 1];
    int n = children_of(s->pid, all, NULL, SRV_MAX_WORKERS + 1), k = 0;
    for (int i = 0; i < n && k < max; i++) {
        char st, name[32];
        pid_t pg;
        unsigned long long t;
        if (proc_stat4(all[i], &st, NULL, &pg, &t, name, sizeof name) < 0)
            continue;
        int helper = strcmp(name, JOURNAL_COMM) == 0 || strcmp(name, CLUSTER_COMM) == 0;
        if (helper == is_journal)
            out[k++] = all[i];
    }
    return k;
}

int srv_workers(const struct server *s, pid_t *out, int max)
{
    return children_named(s, out, max, 0);
}

pid_t srv_journal_pid(const struct server *s)
{
    pid_t p;
    return children_named(s, &p, 1, 1) == 1 ? p : -1;
}

/*
 * 1 when S runs a helper process beside its workers: the history journal
 * (on in the template unless the test turns it off) or the cluster bridge.
 */
static int expects_helper(const struct server *s)
{
    return strstr(s->extra, "history_file off") == NULL || strstr(s->extra, "cluster redis") != NULL;
}

int srv_wait_worker_count(const struct server *s, int n, int timeout_ms)
{
    pid_t w[SRV_MAX_WORKERS];
    /*
     * A helper just forked still has the workers' name until it renames
     * itself: it counts as a worker only until it appears as the helper.
     */
    return WAIT_FOR(srv_workers(s, w, SRV_MAX_WORKERS) == n &&
                    (!expects_helper(s) || srv_journal_pid(s) > 0), timeout_ms);
}

/* ---- config -------------------------------------------------------------- */

static const char *const tmpl_names[] = {
    "listen", "workers", "max_connections", "web_root", "pid_file",
    "error_log", "log_level", "handshake_timeout", "idle_timeout",
    "close_timeout", "worker_shutdown_timeout", "max_request_head",
    "max_message", "max_send_queue", "history_size", "ring_size", "ip_publish_rate",
    "history_file",
};

static void tmpl_value(const struct server *s, const char *name, char *out, size_t n)
{
    const char *root = getenv("WSCHAT_ROOT");
    static const struct { const char *name, *value; } fixed[] = {
        { "listen", "127.0.0.1:0" }, { "workers", "2" },
        { "max_connections", "1024" }, { "log_level", "info" },
        { "handshake_timeout", "5s" }, { "idle_timeout", "60s" },
        { "close_timeout", "2s" }, { "worker_shutdown_timeout", "2s" },
        { "max_request_head", "8k" }, { "max_message", "16m" },
        { "max_send_queue", "4m" }, { "history_size", "100" },
        { "ring_size", "16m" },
        /* Every test client is 127.0.0.1: the per-address publish budget
         * would throttle the suites that fill rooms; its own tests set it. */
        { "ip_publish_rate", "0" },
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(fixed[i].name, name) == 0) {
            snprintf(out, n, "%s", fixed[i].value);
            return;
        }
    if (strcmp(name, "web_root") == 0)
        snprintf(out, n, "%s/web", root ? root : ".");
    else if (strcmp(name, "pid_file") == 0)
        snprintf(out, n, "%s", s->pid_file);
    else if (strcmp(name, "error_log") == 0)
        snprintf(out, n, "%s", s->log);
    else if (strcmp(name, "history_file") == 0)
        snprintf(out, n, "%s/history", s->dir);     /* on, as by default, but the test's own */
    else
        out[0] = '\0';
}

/* "2s", "1500ms", "3" → ms */
static int parse_ms(const char *v)
{
    char *end;
    double x = strtod(v, &end);
    if (strncmp(end, "ms", 2) == 0) return (int)x;
    if (*end == 'm') return (int)(x * 60000);
    if (*end == 'h') return (int)(x * 3600000);
    return (int)(x * 1000);
}

/* Name of the directive on LINE (first token) into NAME; 0 if none. */
static int line_name(const char *line, char *name, size_t n)
{
    while (*line == ' ' || *line == '\t')
        line++;
    size_t i = 0;
    while (line[i] && line[i] != ' ' && line[i] != '\t' && line[i] != '#' && i + 1 < n) {
        name[i] = line[i];
        i++;
    }
    name[i] = '\0';
    return i > 0;
}

void srv_write_config(struct server *s, const char *extra)
{
    char lines[64][512], names[64][64];
    int nl = 0, used[64] = { 0 };
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", extra ? extra : "");
    snprintf(s->extra, sizeof s->extra, "%s", buf);
    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l && nl < 64;
         l = strtok_r(NULL, "\n", &save)) {
        snprintf(lines[nl], sizeof lines[nl], "%s", l);
        if (!line_name(l, names[nl], sizeof names[nl]))
            names[nl][0] = '\0';
        nl++;
    }

    char text[16384];
    size_t off = 0;
    off += (size_t)snprintf(text + off, sizeof text - off,
                            "# written by tests/integration/harness.c\n");
    s->shutdown_ms = 2000;
    for (size_t t = 0; t < sizeof tmpl_names / sizeof tmpl_names[0]; t++) {
        int overridden = 0;
        for (int i = 0; i < nl; i++)
            if (strcmp(names[i], tmpl_names[t]) == 0) {
                off += (size_t)snprintf(text + off, sizeof text - off, "%s\n", lines[i]);
                used[i] = 1;
                overridden = 1;
            }
        char v[PATH_MAX];
        if (!overridden) {
            tmpl_value(s, tmpl_names[t], v, sizeof v);
            off += (size_t)snprintf(text + off, sizeof text - off, "%s %s\n", tmpl_names[t], v);
        }
    }
    for (int i = 0; i < nl; i++) {
        if (!used[i])
            off += (size_t)snprintf(text + off, sizeof text - off, "%s\n", lines[i]);
        if (strcmp(names[i], "worker_shutdown_timeout") == 0) {
            const char *v = lines[i] + strlen("worker_shutdown_timeout");
            while (*v == ' ')
                v++;
            s->shutdown_ms = parse_ms(v);
        }
    }
    ck_assert_msg(off < sizeof text - 1, "config too long");
    srv_write_file(s->conf, text);
}

void srv_init(struct server *s, const char *extra)
{
    memset(s, 0, sizeof *s);
    s->watchdog_fd = -1;
    snprintf(s->dir, sizeof s->dir, "/tmp/wschat-it-XXXXXX");
    ck_assert_msg(mkdtemp(s->dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(s->conf, sizeof s->conf, "%s/wschat.conf", s->dir);
    snprintf(s->log, sizeof s->log, "%s/error.log", s->dir);
    snprintf(s->pid_file, sizeof s->pid_file, "%s/wschat.pid", s->dir);
    snprintf(s->out, sizeof s->out, "%s/stdout", s->dir);
    snprintf(s->err, sizeof s->err, "%s/stderr", s->dir);
    srv_write_config(s, extra);
}

/* ---- spawn and watchdog --------------------------------------------------- */

static const char *server_bin(void)
{
    static char path[PATH_MAX];
    const char *b = getenv("WSCHAT_BIN");
    if (b && *b)
        return b;
    const char *root = getenv("WSCHAT_ROOT");
    snprintf(path, sizeof path, "%s/build/release/wsmaster", root ? root : ".");
    return path;
}

static void close_from(int lo, int keep)
{
    /* every fd >= lo except KEEP; close_range where the kernel has it */
    if (keep >= lo) {
        if (keep > lo && close_range((unsigned)lo, (unsigned)keep - 1, 0) < 0)
            for (int fd = lo; fd < keep; fd++) close(fd);
        if (close_range((unsigned)keep + 1, ~0U, 0) < 0)
            for (int fd = keep + 1; fd < 4096; fd++) close(fd);
    } else if (close_range((unsigned)lo, ~0U, 0) < 0) {
        for (int fd = lo; fd < 4096; fd++) close(fd);
    }
}

/*
 * The watchdog runs in its own process group (Check's killpg of the test
 * group cannot reach it) and waits on a pipe: 'D' disarms it, EOF means the
 * test process died without srv_stop. Then it SIGKILLs the server's process
 * group (kill_tree) and prints the log tails for whoever reads the output.
 * The server's shared memory has no name, so nothing else can be left over.
 */
static void watchdog_main(const struct server *s, int fd)
{
    for (;;) {
        char t;
        ssize_t n = read(fd, &t, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 1 && t == 'D')
            _exit(0);
        break;
    }
    int killed = kill_tree(s->pid, s->start, s->comm);
    if (killed) {
        fprintf(stderr, "harness: test process ended without srv_stop; killed wsmaster %d; "
                "files kept in %s\n", (int)s->pid, s->dir);
        srv_dump(s, 15);
    }
    _exit(0);
}

static void watchdog_arm(struct server *s)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    pid_t w = fork();
    ck_assert_msg(w >= 0, "fork: %s", strerror(errno));
    if (w == 0) {
        setpgid(0, 0);
        int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1 };
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_IGN);
        close(p[1]);
        close_from(3, p[0]);
        watchdog_main(s, p[0]);
        _exit(0);
    }
    close(p[0]);
    s->watchdog = w;
    s->watchdog_fd = p[1];
}

static void watchdog_disarm(struct server *s)
{
    if (s->watchdog_fd < 0)
        return;
    if (write(s->watchdog_fd, "D", 1) != 1)
        fprintf(stderr, "harness: watchdog write: %s\n", strerror(errno));
    close(s->watchdog_fd);
    s->watchdog_fd = -1;
    int st;
    int64_t end = it_now_ms() + 2000;
    while (waitpid(s->watchdog, &st, WNOHANG) == 0 && it_now_ms() < end)
        it_sleep_ms(2);
}

void srv_spawn(struct server *s, const char *const *args)
{
    const char *bin = server_bin();
    ck_assert_msg(access(bin, X_OK) == 0, "server binary %s: %s (set WSCHAT_BIN)",
                  bin, strerror(errno));
    const char *argv[16];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(s->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(s->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        close_from(3, -1);
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < 32; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                signal(sig, SIG_DFL);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    setpgid(pid, pid);  /* both sides, so the group exists whoever runs first */
    s->pid = pid;
    s->running = 1;
    proc_stat(pid, NULL, NULL, &s->start);
    const char *base = strrchr(bin, '/');
    snprintf(s->comm, sizeof s->comm, "%.15s", base ? base + 1 : bin);
    watchdog_arm(s);
}

int srv_wait_exit(struct server *s, int timeout_ms)
{
    if (!s->running)
        return 1;
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(s->pid, &s->status, WNOHANG);
        if (r == s->pid) {
            s->running = 0;
            return 1;
        }
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(5);
    }
}

int srv_run_sync(struct server *s, const char *const *args)
{
    srv_spawn(s, args);
    if (!srv_wait_exit(s, START_TIMEOUT_MS)) {
        kill_tree(s->pid, s->start, s->comm);
        srv_wait_exit(s, 2000);
        watchdog_disarm(s);
        return -1;
    }
    watchdog_disarm(s);
    return WIFEXITED(s->status) ? WEXITSTATUS(s->status) : -1;
}

/* Port from the first "listening on HOST:PORT" log line; 0 if none yet. */
static int log_port(const char *path)
{
    char *text = it_file_read(path, NULL);
    if (text == NULL)
        return 0;
    int port = 0;
    char *p = strstr(text, "listening on ");
    if (p) {
        p += strlen("listening on ");
        char *end = p;
        while (*end && !isspace((unsigned char)*end))
            end++;
        char *colon = NULL;
        for (char *q = p; q < end; q++)
            if (*q == ':')
                colon = q;
        if (colon)
            port = atoi(colon + 1);
    }
    free(text);
    return port;
}

static int pid_file_ok(const struct server *s)
{
    char *t = it_file_read(s->pid_file, NULL);
    if (t == NULL)
        return 0;
    char want[32];
    snprintf(want, sizeof want, "%d\n", (int)s->pid);
    int ok = strcmp(t, want) == 0;
    free(t);
    return ok;
}

static int can_connect(int port)
{
    struct client c;
    if (cli_connect(&c, port) < 0)
        return 0;
    cli_close(&c);
    return 1;
}

void srv_start(struct server *s, const char *extra)
{
    srv_init(s, extra);
    const char *args[] = { "-c", s->conf, NULL };
    srv_spawn(s, args);
    int64_t end = it_now_ms() + START_TIMEOUT_MS;
    int up = 0;
    while (it_now_ms() < end) {
        if (srv_wait_exit(s, 0))
            break;
        if (s->port == 0)
            s->port = log_port(s->log);
        if (s->port > 0 && pid_file_ok(s) && can_connect(s->port)) {
            up = 1;
            break;
        }
        it_sleep_ms(10);
    }
    if (!up) {
        int exited = !s->running;
        srv_dump(s, 20);
        kill_tree(s->pid, s->start, s->comm);
        srv_wait_exit(s, 2000);
        watchdog_disarm(s);
        ck_abort_msg("server did not come up: %s (status 0x%x, port %d, pid file %s); "
                     "files in %s", exited ? "it exited" : "timeout after 5 s", s->status,
                     s->port, it_file_exists(s->pid_file) ? "present" : "missing", s->dir);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

void srv_stop(struct server *s)
{
    if (s->pid == 0)
        return;
    int graceful = 1, workers_left = 0;
    if (s->running) {
        kill(s->pid, SIGQUIT);
        if (!srv_wait_exit(s, s->shutdown_ms + 3000)) {
            graceful = 0;
            kill(s->pid, SIGTERM);
            if (!srv_wait_exit(s, 2000)) {
                kill_tree(s->pid, s->start, s->comm);
                srv_wait_exit(s, 2000);
            }
        }
    }
    /* the master is gone (and reaped): its group must empty out too */
    if (!WAIT_FOR(group_scan(s->pid, s->start, s->comm, 0) == 0, 2000)) {
        workers_left = group_scan(s->pid, s->start, s->comm, 0);
        kill_tree(s->pid, s->start, s->comm);
    }
    watchdog_disarm(s);

    int alerts = it_file_count_except(s->log, "[alert]", s->alert_ok)
               + it_file_count(s->log, "[crit]");
    int sanitizer = it_file_count(s->err, "Sanitizer") + it_file_count(s->err, "runtime error:");
    int ok = graceful && !alerts && !workers_left && !sanitizer;
    if (!ok)
        srv_dump(s, 20);
    else if (getenv("WSCHAT_IT_KEEP") == NULL)
        nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    s->pid = 0;
    ck_assert_msg(graceful, "SIGQUIT did not stop the master within %d ms (files in %s)",
                  s->shutdown_ms + 3000, s->dir);
    ck_assert_msg(!workers_left, "%d worker(s) outlived the master (files in %s)",
                  workers_left, s->dir);
    ck_assert_msg(!alerts, "%d [alert]/[crit] line(s) in %s", alerts, s->log);
    ck_assert_msg(!sanitizer, "sanitizer report in %s", s->err);
}

/* ---- client: TCP ---------------------------------------------------------- */

int cli_connect(struct client *c, int port)
{
    return cli_connect_rcvbuf(c, port, 0);
}

int cli_connect_rcvbuf(struct client *c, int port, int rcvbuf)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    c->port = port;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Before connect(), so the window offered matches it (shrinking it later drops data). */
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno != EINPROGRESS)
            goto fail;
        struct pollfd pfd = { c->fd, POLLOUT, 0 };
        int r;
        while ((r = poll(&pfd, 1, 3000)) < 0 && errno == EINTR)
            ;
        if (r == 0) {
            errno = ETIMEDOUT;
            goto fail;
        }
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            errno = err;
            goto fail;
        }
    }
    return 0;
fail:;
    int e = errno;
    close(c->fd);
    c->fd = -1;
    errno = e;
    return -1;
}

void cli_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->rx);
    c->rx = NULL;
    c->off = c->len = c->cap = 0;
}

void cli_abort(struct client *c)
{
    if (c->fd >= 0) {
        struct linger lg = { 1, 0 };
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    cli_close(c);
}

/* Room for at least NEED more bytes at rx + len. */
static void cli_reserve(struct client *c, size_t need)
{
    if (c->off > 0 && (c->off == c->len || c->cap - c->len < need)) {
        memmove(c->rx, c->rx + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->cap - c->len >= need)
        return;
    size_t cap = c->cap ? c->cap : 65536;
    while (cap - c->len < need)
        cap *= 2;
    ck_assert_msg(cap <= RX_LIMIT, "client input buffer over %zu bytes", RX_LIMIT);
    c->rx = realloc(c->rx, cap);
    ck_assert(c->rx != NULL);
    c->cap = cap;
}

/* One non-blocking read: >0 bytes, 0 EOF/reset, -1 nothing available. */
static ssize_t cli_read_some(struct client *c, size_t want)
{
    if (c->eof)
        return 0;
    cli_reserve(c, want < 65536 ? 65536 : want);
    ssize_t n = recv(c->fd, c->rx + c->len, c->cap - c->len, MSG_DONTWAIT);
    if (n > 0) {
        c->len += (size_t)n;
        return n;
    }
    if (n == 0) {
        c->eof = 1;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return -1;
    c->eof = 1;
    c->rst = errno == ECONNRESET;
    return 0;
}

ssize_t cli_fill(struct client *c, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        ssize_t n = cli_read_some(c, 65536);
        if (n >= 0)
            return n;
        int left = remaining(end);
        if (left == 0)
            return -1;
        struct pollfd pfd = { c->fd, POLLIN, 0 };
        poll(&pfd, 1, left);
    }
}

int cli_send_t(struct client *c, const void *buf, size_t len, int timeout_ms)
{
    const uint8_t *p = buf;
    size_t sent = 0;
    int64_t end = it_now_ms() + timeout_ms;
    while (sent < len) {
        size_t chunk = len - sent;
        if (c->trickle_us > 0) {
            chunk = 1;
            if (sent > 0)
                usleep((useconds_t)c->trickle_us);
        }
        ssize_t n = send(c->fd, p + sent, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        /* the peer may be writing to us too: drain while we wait */
        while (cli_read_some(c, 65536) > 0)
            ;
        int left = remaining(end);
        if (left == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pfd = { c->fd, POLLOUT | (c->eof ? 0 : POLLIN), 0 };
        poll(&pfd, 1, left < 100 ? left : 100);
    }
    return 0;
}

int cli_send(struct client *c, const void *buf, size_t len)
{
    return cli_send_t(c, buf, len, 20000);
}

int cli_sendstr(struct client *c, const char *s)
{
    return cli_send(c, s, strlen(s));
}

int cli_expect_closed(struct client *c, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        c->off = c->len;  /* discard */
        ssize_t n = cli_fill(c, remaining(end));
        if (n == 0)
            return 1;
        if (n < 0)
            return 0;
    }
}

int httpc_read_response(struct client *c, char *out, size_t cap, int timeout_ms)
{
    struct httpc_resp r;
    int st = httpc_read_head(c, &r, timeout_ms);
    ck_assert_int_gt(st, 0);
    char cl[32];
    size_t want = httpc_header(&r, "Content-Length", cl, sizeof cl) ? strtoul(cl, NULL, 10) : 0;
    ck_assert_uint_lt(want, cap);
    int64_t end = it_now_ms() + 5000;
    while (cli_pending(c) < want && it_now_ms() < end)
        if (cli_fill(c, 1000) <= 0)
            break;
    ck_assert_uint_ge(cli_pending(c), want);
    memcpy(out, c->rx + c->off, want);
    out[want] = '\0';
    c->off += want;
    return st;
}

/* ---- client: HTTP --------------------------------------------------------- */

int httpc_read_head(struct client *c, struct httpc_resp *r, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    memset(r, 0, sizeof *r);
    for (;;) {
        uint8_t *b = c->rx ? c->rx + c->off : NULL;
        size_t n = cli_pending(c);
        uint8_t *e = n >= 4 ? memmem(b, n, "\r\n\r\n", 4) : NULL;
        if (e) {
            size_t hl = (size_t)(e - b) + 4;
            if (hl >= sizeof r->head)
                hl = sizeof r->head - 1;
            memcpy(r->head, b, hl);
            r->head[hl] = '\0';
            r->head_len = hl;
            c->off += (size_t)(e - b) + 4;
            int st = -3;
            if (strncmp(r->head, "HTTP/1.1 ", 9) == 0 && isdigit((unsigned char)r->head[9])
                && isdigit((unsigned char)r->head[10]) && isdigit((unsigned char)r->head[11])
                && (r->head[12] == ' ' || r->head[12] == '\r'))
                st = atoi(r->head + 9);
            return r->status = st;
        }
        if (n > sizeof r->head)
            return r->status = -3;
        ssize_t got = cli_fill(c, remaining(end));
        if (got == 0 || got < 0) {
            size_t k = n < sizeof r->head - 1 ? n : sizeof r->head - 1;
            if (k)
                memcpy(r->head, b, k);
            r->head[k] = '\0';
            r->head_len = k;
            return r->status = got == 0 ? -1 : -2;
        }
    }
}

const char *httpc_header(const struct httpc_resp *r, const char *name, char *buf, size_t n)
{
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2] != '\r' && p[2] != '\0') {
        p += 2;
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL)
            break;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t k = (size_t)(ve - v) < n - 1 ? (size_t)(ve - v) : n - 1;
            memcpy(buf, v, k);
            buf[k] = '\0';
            return buf;
        }
        p = eol;
    }
    return NULL;
}

int httpc_get_status(int port, const char *req, struct httpc_resp *r)
{
    struct client c;
    if (cli_connect(&c, port) < 0) {
        memset(r, 0, sizeof *r);
        return r->status = -4;
    }
    int st = cli_sendstr(&c, req) < 0 ? -5 : httpc_read_head(&c, r, 5000);
    cli_close(&c);
    return st;
}

/* ---- WebSocket ------------------------------------------------------------ */

void it_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        ck_assert_msg(n > 0, "getrandom: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static int contains_token(const char *list, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = list; *p; ) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *te = e;
        while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if ((size_t)(te - p) == tl && strncasecmp(p, token, tl) == 0)
            return 1;
        p = e;
    }
    return 0;
}

int wsc_handshake(struct client *c, const char *path, const char *extra,
                  const void *trailer, size_t trailer_len)
{
    uint8_t raw[16];
    char key[32], accept[64], want[64];
    it_random(raw, sizeof raw);
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);

    char head[4096];
    int hl = snprintf(head, sizeof head,
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                      "Sec-WebSocket-Version: 13\r\n%s\r\n",
                      path, c->port, key, extra ? extra : "");
    ck_assert(hl > 0 && (size_t)hl < sizeof head);
    size_t total = (size_t)hl + trailer_len;
    uint8_t *req = malloc(total);
    memcpy(req, head, (size_t)hl);
    if (trailer_len)
        memcpy(req + hl, trailer, trailer_len);
    int sr = cli_send(c, req, total);
    free(req);
    if (sr < 0)
        return -5;

    struct httpc_resp r;
    int st = httpc_read_head(c, &r, 5000);
    if (st != 101)
        return st;

    char concat[128];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    snprintf(concat, sizeof concat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    ck_assert(EVP_Digest(concat, strlen(concat), md, &mdlen, EVP_sha1(), NULL) == 1);
    EVP_EncodeBlock((unsigned char *)want, md, (int)mdlen);

    char v[256];
    ck_assert_msg(httpc_header(&r, "Upgrade", v, sizeof v) && strcasecmp(v, "websocket") == 0,
                  "101 without Upgrade: websocket:\n%s", r.head);
    ck_assert_msg(httpc_header(&r, "Connection", v, sizeof v) && contains_token(v, "upgrade"),
                  "101 without Connection: Upgrade:\n%s", r.head);
    ck_assert_msg(httpc_header(&r, "Sec-WebSocket-Accept", accept, sizeof accept)
                  && strcmp(accept, want) == 0,
                  "Sec-WebSocket-Accept wrong (want %s):\n%s", want, r.head);
    return 101;
}

void wsc_open(struct client *c, int port)
{
    ck_assert_msg(cli_connect(c, port) == 0, "connect to %d: %s", port, strerror(errno));
    int st = wsc_handshake(c, "/echo", NULL, NULL, 0);
    ck_assert_msg(st == 101, "handshake on /echo: status %d", st);
}

static size_t header_encode(uint8_t *h, int bits, uint64_t len, int masked, int force64)
{
    size_t n = 0;
    h[n++] = (uint8_t)(bits & 0xFF);
    uint8_t m = masked ? 0x80 : 0;
    if (len <= 125 && !force64) {
        h[n++] = m | (uint8_t)len;
    } else if (len <= 0xFFFF && !force64) {
        h[n++] = m | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)(len >> (8 * i));
    }
    return n;
}

void wsc_frame_append(uint8_t **buf, size_t *len, size_t *cap,
                      int bits, const void *payload, size_t plen)
{
    int masked = !(bits & WS_NOMASK);
    size_t need = *len + WS_HEADER_MAX_CLIENT + plen;
    if (need > *cap) {
        size_t nc = *cap ? *cap : 1024;
        while (nc < need)
            nc *= 2;
        *buf = realloc(*buf, nc);
        ck_assert(*buf != NULL);
        *cap = nc;
    }
    uint8_t *h = *buf + *len;
    size_t hl = header_encode(h, bits, plen, masked, 0);
    uint8_t key[4];
    if (masked) {
        it_random(key, 4);
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    uint8_t *d = h + hl;
    if (plen)
        memcpy(d, payload, plen);
    if (masked)
        for (size_t i = 0; i < plen; i++)
            d[i] ^= key[i & 3];
    *len += hl + plen;
}

uint8_t *wsc_frame_build(int bits, const void *payload, size_t len, size_t *out_len)
{
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    wsc_frame_append(&buf, &n, &cap, bits, payload, len);
    *out_len = n;
    return buf;
}

int wsc_send(struct client *c, int bits, const void *payload, size_t len)
{
    size_t n;
    uint8_t *f = wsc_frame_build(bits, payload, len, &n);
    int r = cli_send(c, f, n);
    free(f);
    return r;
}

int wsc_send_header(struct client *c, int bits, uint64_t len64, int force64)
{
    uint8_t h[WS_HEADER_MAX_CLIENT];
    size_t n = header_encode(h, bits, len64, 1, force64);
    it_random(h + n, 4);
    return cli_send(c, h, n + 4);
}

int wsc_send_close(struct client *c, int code, const void *reason, size_t rlen)
{
    uint8_t p[256];
    size_t n = 0;
    if (code >= 0) {
        p[n++] = (uint8_t)(code >> 8);
        p[n++] = (uint8_t)code;
        ck_assert(rlen <= sizeof p - 2);
        if (rlen)
            memcpy(p + n, reason, rlen);
        n += rlen;
    }
    return wsc_send(c, WS_FIN | WS_OP_CLOSE, p, n);
}

void wsc_msg_free(struct wsc_msg *m)
{
    free(m->data);
    m->data = NULL;
    m->len = 0;
}

int wsc_recv(struct client *c, struct wsc_msg *m, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    memset(m, 0, sizeof *m);
    for (;;) {
        size_t n = cli_pending(c);
        const uint8_t *b = c->rx ? c->rx + c->off : NULL;
        size_t need = 2;
        if (n >= 2) {
            int l7 = b[1] & 0x7F;
            size_t hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((b[1] & 0x80) ? 4 : 0);
            need = hl;
            if (n >= hl) {
                uint64_t len = (uint64_t)l7;
                if (l7 == 126)
                    len = (uint64_t)b[2] << 8 | b[3];
                else if (l7 == 127)
                    for (int i = 0; i < 8; i++)
                        len = len << 8 | b[2 + i];
                int op = b[0] & 0x0F;
                ck_assert_msg(!(b[1] & 0x80), "server sent a masked frame (§5.1)");
                ck_assert_msg((b[0] & 0x70) == 0, "server frame has RSV bits 0x%02x", b[0]);
                ck_assert_msg(op <= 2 || (op >= 8 && op <= 10), "server sent opcode 0x%x", op);
                ck_assert_msg(l7 != 126 || len >= 126, "non-minimal 16-bit length %llu",
                              (unsigned long long)len);
                ck_assert_msg(l7 != 127 || (len > 0xFFFF && !(len >> 63)),
                              "non-minimal or huge 64-bit length %llu", (unsigned long long)len);
                if (op >= 8) {
                    ck_assert_msg(b[0] & 0x80, "server sent a fragmented control frame");
                    ck_assert_msg(len <= 125, "server control frame of %llu bytes",
                                  (unsigned long long)len);
                }
                ck_assert_msg(len <= RX_LIMIT / 2, "server frame of %llu bytes",
                              (unsigned long long)len);
                need = hl + (size_t)len;
                if (n >= need) {
                    m->fin = !!(b[0] & 0x80);
                    m->opcode = op;
                    m->len = (size_t)len;
                    m->data = malloc(m->len + 1);
                    memcpy(m->data, b + hl, m->len);
                    m->data[m->len] = '\0';
                    c->off += need;
                    return 1;
                }
            }
        }
        cli_reserve(c, need - n);
        ssize_t got = cli_fill(c, remaining(end));
        if (got == 0)
            return 0;
        if (got < 0)
            return -1;
    }
}

int wsc_read_close(struct client *c, int timeout_ms, int *skipped, char *reason, size_t rn)
{
    int64_t end = it_now_ms() + timeout_ms;
    if (skipped)
        *skipped = 0;
    if (reason && rn)
        reason[0] = '\0';
    for (;;) {
        struct wsc_msg m;
        int r = wsc_recv(c, &m, remaining(end));
        if (r == 0)
            return -1;
        if (r < 0)
            return -2;
        if (m.opcode != WS_OP_CLOSE) {
            if (skipped)
                (*skipped)++;
            wsc_msg_free(&m);
            continue;
        }
        int code = 0;
        ck_assert_msg(m.len != 1, "server sent a 1-byte close payload");
        if (m.len >= 2) {
            code = m.data[0] << 8 | m.data[1];
            ck_assert_msg((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)
                          || (code >= 3000 && code <= 4999),
                          "server sent close code %d, invalid on the wire", code);
            ck_assert_msg(it_utf8_valid(m.data + 2, m.len - 2), "server close reason not UTF-8");
            if (reason && rn) {
                size_t k = m.len - 2 < rn - 1 ? m.len - 2 : rn - 1;
                memcpy(reason, m.data + 2, k);
                reason[k] = '\0';
            }
        }
        wsc_msg_free(&m);
        return code;
    }
}

static int echo_timeout(size_t len)
{
    return 10000 + (int)(len >> 20) * 1000;
}

void wsc_echo_check(struct client *c, int opcode, const void *p, size_t len)
{
    ck_assert_msg(wsc_send(c, WS_FIN | opcode, p, len) == 0, "send %zu bytes: %s",
                  len, strerror(errno));
    int64_t end = it_now_ms() + echo_timeout(len);
    for (;;) {
        struct wsc_msg m;
        int r = wsc_recv(c, &m, remaining(end));
        ck_assert_msg(r == 1, "no echo of %zu bytes (%s)", len,
                      r == 0 ? "connection closed" : "timeout");
        if (m.opcode == WS_OP_PING) {   /* an idle ping may cross our message */
            wsc_send(c, WS_FIN | WS_OP_PONG, m.data, m.len);
            wsc_msg_free(&m);
            continue;
        }
        if (m.opcode == WS_OP_CLOSE && m.len >= 2)
            ck_abort_msg("echo of %zu bytes answered by close %d", len,
                         m.data[0] << 8 | m.data[1]);
        ck_assert_msg(m.opcode == opcode, "echo opcode %d, sent %d", m.opcode, opcode);
        ck_assert_msg(m.fin, "echo came back fragmented");
        ck_assert_msg(m.len == len, "echo length %zu, sent %zu", m.len, len);
        if (len && memcmp(m.data, p, len) != 0) {
            size_t i = 0;
            while (m.data[i] == ((const uint8_t *)p)[i])
                i++;
            ck_abort_msg("echo of %zu bytes differs at offset %zu", len, i);
        }
        wsc_msg_free(&m);
        return;
    }
}

/* ---- payloads ------------------------------------------------------------- */

uint8_t *it_make_text(size_t len)
{
    static const char pat[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 wschat!";
    size_t pl = sizeof pat - 1;
    uint8_t *b = malloc(len + 1);
    size_t i = 0;
    while (i + pl <= len) {
        memcpy(b + i, pat, pl);
        i += pl;
    }
    while (i < len)
        b[i++] = 'z';
    b[len] = '\0';
    return b;
}

uint8_t *it_make_binary(size_t len, uint32_t seed)
{
    uint8_t *b = malloc(len + 1);
    uint32_t x = seed ? seed : 0x9E3779B9u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)(x >> 24);
    }
    b[len] = 0;
    return b;
}

int it_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

/*
 * The pid among WK[0..n) whose fd table holds the server end of C (found
 * through /proc/net/tcp: local 127.0.0.1:PORT, remote C's local port); -1.
 */
pid_t srv_conn_owner(const struct client *c, int port, const pid_t *wk, int n)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    ck_assert_int_eq(getsockname(c->fd, (struct sockaddr *)&sa, &sl), 0);
    unsigned mine = ntohs(sa.sin_port);
    FILE *f = fopen("/proc/net/tcp", "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    unsigned long inode = 0;
    while (inode == 0 && fgets(line, sizeof line, f) != NULL) {
        unsigned la, lp, ra, rp;
        unsigned long ino;
        if (sscanf(line, " %*u: %x:%x %x:%x %*x %*s %*s %*s %*u %*u %lu", &la, &lp, &ra, &rp,
                   &ino) == 5 && la == 0x0100007F && lp == (unsigned)port && ra == 0x0100007F
            && rp == mine)
            inode = ino;
    }
    fclose(f);
    ck_assert_msg(inode != 0, "no server socket for client port %u", mine);
    char want[48];
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    for (int i = 0; i < n; i++) {
        char dir[64];
        snprintf(dir, sizeof dir, "/proc/%d/fd", (int)wk[i]);
        DIR *d = opendir(dir);
        if (d == NULL)
            continue;
        struct dirent *de;
        int hit = 0;
        while (!hit && (de = readdir(d)) != NULL) {
            char path[sizeof dir + 260], link[64];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            ssize_t k = readlink(path, link, sizeof link - 1);
            if (k > 0) {
                link[k] = '\0';
                hit = strcmp(link, want) == 0;
            }
        }
        closedir(d);
        if (hit)
            return wk[i];
    }
    return -1;
}
