/*
 * master: owns the listen sockets, the shm room, and per worker slot an
 * eventfd and a hand-over socket pair; forks, supervises and replaces
 * workers; never serves a client.
 *
 * Signals are read from a signalfd in a poll loop (no work in handlers).
 * Worker slots: a generation of N workers occupies N of SHM_MAX_SLOTS slots;
 * a reload starts the new generation in free slots before the old one is
 * told (SIGUSR2) to retire, so some worker is always accepting on the
 * listen sockets, which stay open in the master throughout. Retiring
 * workers pass idle WebSockets to the new ones over the socket pairs
 * (handoff.c); every worker inherits all of them, as with the eventfds.
 */
#include "master.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "shm.h"
#include "worker.h"
#include "worker_loop.h"

#define BACKOFF_FIRST_MS  100
#define BACKOFF_MAX_MS    5000
#define CRASH_WINDOW_MS   5000      /* dying sooner than this after start counts as a crash */
#define STOP_GRACE_MS     1500      /* SIGTERM: then SIGKILL, all gone within 2 s */

struct worker_proc {
    pid_t    pid;           /* 0 = not running */
    int      in_use;        /* slot belongs to a generation */
    int      retiring;      /* told to stop; do not respawn */
    uint32_t generation;
    uint64_t started_ms;
    uint64_t respawn_at_ms; /* when pid == 0 and in_use: time to fork again */
    int      crashes;       /* consecutive quick deaths */
};

struct master {
    struct config cfg;
    int listen_fds[CONFIG_MAX_LISTEN];
    int nlisten;
    char shm_name[64];
    struct shm_segment *seg;
    int eventfds[SHM_MAX_SLOTS];
    int handoff[SHM_MAX_SLOTS][2];  /* per slot: [0] its worker receives, [1] others send */
    struct worker_proc procs[SHM_MAX_SLOTS];
    uint32_t generation;
    int sigfd;
    int stopping;           /* 0, SIGTERM (fast) or SIGQUIT (graceful) */
    uint64_t kill_at_ms;
    int pid_written;
};

static struct master M;

static void format_addr(const struct config_listen *l, uint16_t port, char *out, size_t cap)
{
    if (l->family == AF_INET6)
        snprintf(out, cap, "[%s]:%u", l->host, port);
    else
        snprintf(out, cap, "%s:%u", l->host, port);
}

/* Bind every listen address before forking. Exits 1 on failure (startup). */
static void open_listeners(void)
{
    for (int i = 0; i < M.cfg.nlisten; i++) {
        const struct config_listen *l = &M.cfg.listen[i];
        struct sockaddr_storage ss;
        socklen_t slen;
        char text[96];
        memset(&ss, 0, sizeof ss);
        if (l->family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons(l->port);
            inet_pton(AF_INET6, l->host, &s6->sin6_addr);
            slen = sizeof *s6;
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            s4->sin_port = htons(l->port);
            inet_pton(AF_INET, l->host, &s4->sin_addr);
            slen = sizeof *s4;
        }
        format_addr(l, l->port, text, sizeof text);
        int fd = socket(l->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0) {
            fprintf(stderr, "wsmaster: socket() for %s failed: %s\n", text, strerror(errno));
            exit(1);
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (l->family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&ss, slen) < 0) {
            int e = errno;
            fprintf(stderr, "wsmaster: bind() to %s failed: %s\n", text, strerror(e));
            log_write(LOG_LVL_ERR, e, "bind() to %s failed", text);
            exit(1);
        }
        if (listen(fd, 4096) < 0) {
            fprintf(stderr, "wsmaster: listen() on %s failed: %s\n", text, strerror(errno));
            exit(1);
        }
        getsockname(fd, (struct sockaddr *)&ss, &slen);
        uint16_t port = ntohs(l->family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                    : ((struct sockaddr_in *)&ss)->sin_port);
        if (i == 0)
            snprintf(M.shm_name, sizeof M.shm_name, "/wschat-%u", port);
        format_addr(l, port, text, sizeof text);
        log_write(LOG_LVL_NOTICE, 0, "listening on %s", text);
        M.listen_fds[i] = fd;
    }
    M.nlisten = M.cfg.nlisten;
}

static void write_pid_file(void)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", M.cfg.pid_file);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        mkdir(dir, 0755);   /* one level, like nginx's run directory */
    }
    FILE *f = fopen(M.cfg.pid_file, "w");
    if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
        log_write(LOG_LVL_ALERT, errno, "writing pid file \"%s\" failed", M.cfg.pid_file);
        return;
    }
    M.pid_written = 1;
}

static void spawn(int slot)
{
    struct worker_proc *p = &M.procs[slot];
    pid_t pid = fork();
    if (pid < 0) {
        log_write(LOG_LVL_ALERT, errno, "fork() failed");
        p->respawn_at_ms = worker_clock_ms() + BACKOFF_MAX_MS;
        return;
    }
    if (pid == 0) {
        /*
         * The signal mask stays blocked: the worker reads the same signals
         * from its own signalfd, so one sent before it is ready still waits.
         */
        close(M.sigfd);
        struct worker_ctx ctx = {
            .cfg = &M.cfg, .slot = slot, .generation = p->generation,
            .listen_fds = M.listen_fds, .nlisten = M.nlisten,
            .seg = M.seg, .eventfds = M.eventfds, .handoff = M.handoff,
        };
        worker_loop_run(&ctx);
    }
    p->pid = pid;
    p->started_ms = worker_clock_ms();
    M.seg->slots[slot].generation = p->generation;
    __atomic_store_n(&M.seg->slots[slot].pid, (int32_t)pid, __ATOMIC_RELEASE);
    log_write(LOG_LVL_NOTICE, 0, "started worker %d (slot %d, generation %u)",
              (int)pid, slot, p->generation);
}

/* Claim N free slots for a new generation and fork into them. */
static int start_generation(int n)
{
    int free_slots = 0;
    for (int s = 0; s < SHM_MAX_SLOTS; s++)
        free_slots += !M.procs[s].in_use;
    if (free_slots < n) {
        log_write(LOG_LVL_ERR, 0, "no free worker slots for %d workers (old ones still draining)", n);
        return -1;
    }
    M.generation++;
    for (int s = 0, started = 0; s < SHM_MAX_SLOTS && started < n; s++) {
        if (M.procs[s].in_use)
            continue;
        memset(&M.procs[s], 0, sizeof M.procs[s]);
        M.procs[s].in_use = 1;
        M.procs[s].generation = M.generation;
        shm_slot_reset(M.seg, s);
        spawn(s);
        started++;
    }
    return 0;
}

static void signal_workers(int sig, int only_old)
{
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        struct worker_proc *p = &M.procs[s];
        if (!p->in_use || p->pid == 0)
            continue;
        if (only_old && p->generation == M.generation)
            continue;
        kill(p->pid, sig);
    }
}

static int live_workers(void)
{
    int n = 0;
    for (int s = 0; s < SHM_MAX_SLOTS; s++)
        n += M.procs[s].pid != 0;
    return n;
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int slot = -1;
        for (int s = 0; s < SHM_MAX_SLOTS; s++)
            if (M.procs[s].pid == pid)
                slot = s;
        if (slot < 0)
            continue;
        struct worker_proc *p = &M.procs[slot];
        uint64_t now = worker_clock_ms();
        int fatal = WIFEXITED(status) && WEXITSTATUS(status) == 2;
        int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        p->pid = 0;
        /* Its presence counts and wake flag must not outlive it. */
        shm_slot_reset(M.seg, slot);
        if (M.stopping || p->retiring || p->generation != M.generation) {
            if (!clean)
                log_write(LOG_LVL_WARN, 0, "worker %d exited with status %d", (int)pid, status);
            p->in_use = 0;
            continue;
        }
        if (WIFSIGNALED(status))
            log_write(LOG_LVL_ALERT, 0, "worker %d killed by signal %d", (int)pid, WTERMSIG(status));
        else
            log_write(LOG_LVL_ALERT, 0, "worker %d exited with code %d", (int)pid, WEXITSTATUS(status));
        if (fatal) {
            log_write(LOG_LVL_ALERT, 0, "worker %d cannot start: not respawning slot %d", (int)pid, slot);
            p->in_use = 0;
            continue;
        }
        p->crashes = (now - p->started_ms < CRASH_WINDOW_MS) ? p->crashes + 1 : 0;
        uint64_t delay = 0;
        if (p->crashes > 1) {
            delay = (uint64_t)BACKOFF_FIRST_MS << (p->crashes - 2 < 6 ? p->crashes - 2 : 6);
            if (delay > BACKOFF_MAX_MS)
                delay = BACKOFF_MAX_MS;
            log_write(LOG_LVL_WARN, 0, "slot %d keeps dying: respawning in %llu ms",
                      slot, (unsigned long long)delay);
        }
        p->respawn_at_ms = now + delay;
    }
}

static void respawn_due(void)
{
    uint64_t now = worker_clock_ms();
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        struct worker_proc *p = &M.procs[s];
        if (p->in_use && p->pid == 0 && !p->retiring && p->respawn_at_ms <= now)
            spawn(s);
    }
}

static int next_timeout_ms(void)
{
    uint64_t now = worker_clock_ms();
    uint64_t next = UINT64_MAX;
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        struct worker_proc *p = &M.procs[s];
        if (p->in_use && p->pid == 0 && !p->retiring && p->respawn_at_ms < next)
            next = p->respawn_at_ms;
    }
    if (M.stopping && M.kill_at_ms < next)
        next = M.kill_at_ms;
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : (int)(next - now);
}

static int same_listen(const struct config *a, const struct config *b)
{
    if (a->nlisten != b->nlisten)
        return 0;
    for (int i = 0; i < a->nlisten; i++)
        if (a->listen[i].family != b->listen[i].family || a->listen[i].port != b->listen[i].port ||
            strcmp(a->listen[i].host, b->listen[i].host) != 0)
            return 0;
    return 1;
}

static void reload(void)
{
    static struct config next;
    char err[CONFIG_ERR_LEN];
    log_write(LOG_LVL_NOTICE, 0, "reloading configuration from %s", M.cfg.path);
    if (config_load(&next, M.cfg.path, err, sizeof err) < 0) {
        log_write(LOG_LVL_ERR, 0, "%s; keeping the running configuration", err);
        return;
    }
    /* What lives in the master across generations cannot change on reload. */
    if (!same_listen(&M.cfg, &next)) {
        log_write(LOG_LVL_WARN, 0, "listen addresses changed: a restart is needed to apply them");
        memcpy(next.listen, M.cfg.listen, sizeof next.listen);
        next.nlisten = M.cfg.nlisten;
    }
    if (next.ring_size != M.cfg.ring_size) {
        log_write(LOG_LVL_WARN, 0, "ring_size changed: a restart is needed to apply it");
        next.ring_size = M.cfg.ring_size;
    }
    if (strcmp(next.error_log, M.cfg.error_log) != 0 || next.log_level != M.cfg.log_level) {
        if (log_open(next.error_log, next.log_level) < 0)
            log_write(LOG_LVL_ALERT, errno, "opening \"%s\" failed", next.error_log);
    }
    struct config old = M.cfg;
    M.cfg = next;
    /* Mark the running generation before forking the new one. */
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        if (!M.procs[s].in_use)
            continue;
        M.procs[s].retiring = 1;
        if (M.procs[s].pid == 0)
            M.procs[s].in_use = 0;      /* was waiting for a respawn: drop it */
    }
    if (start_generation(M.cfg.workers) < 0) {
        M.cfg = old;
        for (int s = 0; s < SHM_MAX_SLOTS; s++)
            if (M.procs[s].in_use && M.procs[s].generation == M.generation)
                M.procs[s].retiring = 0;
        return;
    }
    signal_workers(SIGUSR2, 1);
    if (strcmp(old.pid_file, M.cfg.pid_file) != 0) {
        unlink(old.pid_file);
        write_pid_file();
    }
    log_write(LOG_LVL_NOTICE, 0, "generation %u: %d workers", M.generation, M.cfg.workers);
}

static void begin_stop(int sig)
{
    if (M.stopping == SIGTERM)
        return;
    M.stopping = sig;
    uint64_t now = worker_clock_ms();
    M.kill_at_ms = now + (sig == SIGTERM ? STOP_GRACE_MS : M.cfg.shutdown_timeout_ms + 1000);
    log_write(LOG_LVL_NOTICE, 0, "%s", sig == SIGTERM ? "stopping" : "stopping gracefully");
    signal_workers(sig == SIGTERM ? SIGTERM : SIGQUIT, 0);
}

static void cleanup_and_exit(int code)
{
    for (int i = 0; i < M.nlisten; i++)
        close(M.listen_fds[i]);
    if (M.pid_written)
        unlink(M.cfg.pid_file);
    shm_destroy(M.seg, M.shm_name);
    log_write(LOG_LVL_NOTICE, 0, "exiting");
    exit(code);
}

static void handle_signal(int sig)
{
    switch (sig) {
    case SIGCHLD:
        reap();
        break;
    case SIGHUP:
        if (!M.stopping)
            reload();
        break;
    case SIGTERM:
    case SIGINT:
        begin_stop(SIGTERM);
        break;
    case SIGQUIT:
        if (!M.stopping)
            begin_stop(SIGQUIT);
        break;
    case SIGUSR1:
        if (log_reopen() < 0)
            log_write(LOG_LVL_ALERT, errno, "reopening the log failed");
        signal_workers(SIGUSR1, 0);
        break;
    default:
        break;
    }
}

void master_run(const struct config *cfg)
{
    M.cfg = *cfg;
    char err[256];

    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2 };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    M.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (M.sigfd < 0) {
        fprintf(stderr, "wsmaster: signalfd() failed: %s\n", strerror(errno));
        exit(1);
    }

    /* Connections are fds: take the whole hard limit, as nginx's worker_rlimit_nofile. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    open_listeners();
    M.seg = shm_create(M.shm_name, M.cfg.ring_size, err, sizeof err);
    if (M.seg == NULL) {
        fprintf(stderr, "wsmaster: %s\n", err);
        exit(1);
    }
    /*
     * Ids start from the clock (ms x 1000, below 2^53 so JavaScript reads
     * them exactly) instead of 1: after a full restart they still rise, so a
     * client resuming with since=<an old id> gets everything the new server
     * has, announced by a gap event, instead of nothing.
     */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    ring_start_ids(&M.seg->ring, ((uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000) * 1000);
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        M.eventfds[s] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        /* Datagram-like pairs keep one handed-over connection per message. */
        if (M.eventfds[s] < 0 ||
            socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, M.handoff[s]) < 0) {
            fprintf(stderr, "wsmaster: eventfd()/socketpair() failed: %s\n", strerror(errno));
            shm_destroy(M.seg, M.shm_name);
            exit(1);
        }
        /* Room for a whole worker's connections at once (root may exceed wmem_max). */
        int sndbuf = 8 << 20;
        if (setsockopt(M.handoff[s][1], SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) < 0)
            setsockopt(M.handoff[s][1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    log_write(LOG_LVL_NOTICE, 0, "wschat %s starting: %d workers, ring %llu bytes, config %s",
              WSCHAT_VERSION, M.cfg.workers, (unsigned long long)M.cfg.ring_size, M.cfg.path);
    start_generation(M.cfg.workers);
    write_pid_file();

    for (;;) {
        struct pollfd pfd = { .fd = M.sigfd, .events = POLLIN };
        int rc = poll(&pfd, 1, next_timeout_ms());
        if (rc < 0 && errno != EINTR) {
            log_write(LOG_LVL_ALERT, errno, "poll() failed");
            continue;
        }
        struct signalfd_siginfo si;
        while (read(M.sigfd, &si, sizeof si) == (ssize_t)sizeof si)
            handle_signal((int)si.ssi_signo);
        /* signalfd coalesces SIGCHLD: reap on every pass, not only when seen. */
        reap();
        if (M.stopping) {
            if (live_workers() == 0)
                cleanup_and_exit(0);
            if (worker_clock_ms() >= M.kill_at_ms) {
                signal_workers(SIGKILL, 0);
                M.kill_at_ms = UINT64_MAX;
            }
            continue;
        }
        respawn_due();
    }
}
