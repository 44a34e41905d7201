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
 * workers pass their WebSockets to the new ones over the socket pairs
 * (handoff.c), and the answers come back the same way; every worker
 * inherits all of them, as with the eventfds.
 * The pid file stays open and flock()ed for the master's life: the lock,
 * not the number in it, is what says a master is running.
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
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ip_limit.h"
#include "cluster.h"
#include "journal.h"
#include "lock.h"
#include "log.h"
#include "shm.h"
#include "worker.h"
#include "worker_loop.h"

#define BACKOFF_FIRST_MS  100
#define BACKOFF_MAX_MS    5000
#define CRASH_WINDOW_MS   5000      /* dying sooner than this after start counts as a crash */
#define STOP_GRACE_MS     1500      /* SIGTERM: then SIGKILL, all gone within 2 s */
#define JOURNAL_STOP_MS   5000      /* for the journal to write and sync the rest */
#define MASTER_ERR_LEN    (PATH_MAX + 256)

struct worker_proc {
    pid_t    pid;           /* 0 = not running */
    int      in_use;        /* slot belongs to a generation */
    int      retiring;      /* told to stop; do not respawn */
    uint32_t generation;
    uint64_t started_ms;
    uint64_t respawn_at_ms; /* when pid == 0 and in_use: time to fork again */
    int      crashes;       /* consecutive quick deaths */
    int      watchdog_killed;   /* SIGKILLed for a stalled loop, not reaped yet */
};

struct master {
    struct config cfg;
    int listen_fds[CONFIG_MAX_LISTEN];
    int nlisten;
    char shm_label[32];     /* "wschat-PORT": names the segment in /proc/PID/maps */
    struct shm_segment *seg;
    int eventfds[SHM_MAX_SLOTS];
    int handoff[SHM_MAX_SLOTS][2];  /* per slot: [0] its worker receives, [1] others send */
    struct worker_proc procs[SHM_MAX_SLOTS];
    uint32_t generation;
    int sigfd;
    int stopping;           /* 0, SIGTERM (fast) or SIGQUIT (graceful) */
    uint64_t kill_at_ms;
    int pid_fd;             /* the pid file, open and locked; -1 = none held */
    char pid_path[PATH_MAX];    /* where pid_fd was opened */
    /*
     * The helper process beside the workers: the history journal
     * (journal.h) when history_file is on, or in cluster mode the Redis
     * bridge (cluster.h). The two never run together.
     */
    int aux_efd;            /* its wake-up eventfd, -1 = none */
    pid_t aux_pid;          /* 0 = not running */
    uint64_t aux_respawn_at_ms;
    uint64_t aux_started_ms;
    int aux_crashes;
    int aux_told;           /* a stop was passed on to it */
};

static struct master M = { .sigfd = -1, .pid_fd = -1, .aux_efd = -1 };

/* ---- pid file ------------------------------------------------------------- */

/* 1 if PATH still names the file open at FD (nobody replaced or removed it). */
static int path_is_fd(const char *path, int fd)
{
    struct stat sp, sf;
    return stat(path, &sp) == 0 && fstat(fd, &sf) == 0 &&
           sp.st_dev == sf.st_dev && sp.st_ino == sf.st_ino;
}

/*
 * Open PATH for the pid file and take its lock: 0, or -errno with a message
 * in err (the fd is closed again). Never follows a symlink (a link planted
 * at the path would have us truncate its target) nor opens a FIFO, and
 * refuses any file but a regular one of ours with no other name, so the
 * truncate below can only hit a pid file. The file is opened without
 * O_TRUNC: a running master's pid stays intact until we hold the lock.
 */
static int pid_file_open(const char *path, int *out, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "opening pid file \"%s\" failed: %s%s", path, strerror(e),
                 e == ELOOP ? " (it is a symbolic link)" : "");
        return -e;
    }
    struct stat st;
    const char *why = fstat(fd, &st) < 0 ? strerror(errno)
                    : !S_ISREG(st.st_mode) ? "not a regular file"
                    : st.st_uid != geteuid() ? "owned by another user"
                    : st.st_nlink != 1 ? "it has other hard links" : NULL;
    if (why != NULL) {
        snprintf(err, errlen, "pid file \"%s\" refused: %s", path, why);
        close(fd);
        return -EPERM;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        if (e == EWOULDBLOCK)
            snprintf(err, errlen, "pid file \"%s\" is locked: another master is "
                     "already running with it", path);
        else
            snprintf(err, errlen, "flock() of pid file \"%s\" failed: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

/*
 * Take PATH as this master's pid file: open and lock it, then write "PID\n".
 * Returns the locked fd, to keep open for the master's life (workers close
 * it, see spawn(), so the lock dies with the master however it dies), or
 * -errno with a message in err: -EWOULDBLOCK when another master holds it.
 */
static int pid_file_lock(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        mkdir(dir, 0755);   /* one level, like nginx's run directory */
    }
    int fd = -1;
    /*
     * A master that exits unlinks its file while holding the lock; one that
     * opened the old file just before may then win a lock on a file with no
     * name. Check the path still leads to what we locked; a few tries.
     */
    for (int tries = 0; fd < 0; tries++) {
        int rc = pid_file_open(path, &fd, err, errlen);
        if (rc < 0)
            return rc;
        if (!path_is_fd(path, fd)) {
            close(fd);
            fd = -1;
            if (tries == 2) {
                snprintf(err, errlen, "pid file \"%s\" keeps being replaced", path);
                return -EAGAIN;
            }
        }
    }
    /* Unlocked yet not empty: left by a master that died without removing it. */
    char old[32];
    ssize_t had = pread(fd, old, sizeof old - 1, 0);
    if (had > 0) {
        old[had] = '\0';
        old[strcspn(old, "\n")] = '\0';
        log_write(LOG_LVL_NOTICE, 0, "pid file \"%s\" held \"%s\", no master holds it: "
                  "replacing it", path, old);
    }
    char line[32];
    int len = snprintf(line, sizeof line, "%d\n", (int)getpid());
    errno = 0;
    if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)len, 0) != len) {
        int e = errno != 0 ? errno : EIO;
        snprintf(err, errlen, "writing pid file \"%s\" failed: %s", path, strerror(e));
        unlink(path);       /* ours: we hold its lock */
        close(fd);
        return -e;
    }
    return fd;
}

/* Remove and unlock the pid file, if we hold one and it is still ours. */
static void pid_file_release(void)
{
    if (M.pid_fd < 0)
        return;
    /* Unlink before closing: until then no other master can lock it. */
    if (path_is_fd(M.pid_path, M.pid_fd))
        unlink(M.pid_path);
    close(M.pid_fd);
    M.pid_fd = -1;
}

/* Reload named another pid_file: take it the same way, then let go of the old one. */
static void pid_file_move(void)
{
    char err[MASTER_ERR_LEN];
    if (strcmp(M.pid_path, M.cfg.pid_file) == 0)
        return;
    int fd = pid_file_lock(M.cfg.pid_file, err, sizeof err);
    if (fd < 0) {
        log_write(LOG_LVL_ERR, 0, "%s; keeping pid file \"%s\"", err, M.pid_path);
        snprintf(M.cfg.pid_file, sizeof M.cfg.pid_file, "%s", M.pid_path);
        return;
    }
    pid_file_release();
    M.pid_fd = fd;
    snprintf(M.pid_path, sizeof M.pid_path, "%s", M.cfg.pid_file);
}

/* ---- start-up steps --------------------------------------------------------- */

/*
 * A start-up step failed: report MSG once (to stderr, and to the log when
 * that is a file: with error_log stderr the log line is the report), remove
 * our pid file and exit 1. Levels stay below alert: this is the operator's
 * to fix, not a surprise.
 */
static void startup_fail(const char *msg) __attribute__((noreturn));
static void startup_fail(const char *msg)
{
    if (log_fd() != STDERR_FILENO)
        fprintf(stderr, "wsmaster: %s\n", msg);
    log_write(LOG_LVL_ERR, 0, "%s", msg);
    pid_file_release();
    exit(1);
}

/*
 * The signals the loop acts on are blocked before anything else, so one
 * sent while the master starts waits in the signalfd instead of running its
 * default action; workers keep the mask (spawn()). SIGPIPE and SIGXFSZ are
 * ignored: a closed peer or a file size limit must fail the write (or the
 * ring's ftruncate) with an errno, not kill the process.
 */
static int block_signals(char *err, size_t errlen)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2 };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    M.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (M.sigfd < 0) {
        int e = errno;
        snprintf(err, errlen, "signalfd() failed: %s", strerror(e));
        return -e;
    }
    return 0;
}

/* Connections are fds: take the whole hard limit, as nginx's worker_rlimit_nofile. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void format_addr(const struct config_listen *l, uint16_t port, char *out, size_t cap)
{
    if (l->family == AF_INET6)
        snprintf(out, cap, "[%s]:%u", l->host, port);
    else
        snprintf(out, cap, "%s:%u", l->host, port);
}

/* The socket address of L (its configured port) into SS; returns its length. */
static socklen_t listen_sockaddr(const struct config_listen *l, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (l->family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(l->port);
        inet_pton(AF_INET6, l->host, &s6->sin6_addr);
        return sizeof *s6;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(l->port);
    inet_pton(AF_INET, l->host, &s4->sin_addr);
    return sizeof *s4;
}

/* Bind and listen on L: the fd, or -errno with the failing call in err. */
static int open_listener(const struct config_listen *l, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t slen = listen_sockaddr(l, &ss);
    char text[96];
    format_addr(l, l->port, text, sizeof text);
    int fd = socket(l->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket() for %s failed: %s", text, strerror(e));
        return -e;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l->family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    const char *failed = NULL;
    if (bind(fd, (struct sockaddr *)&ss, slen) < 0)
        failed = "bind() to";
    else if (listen(fd, 4096) < 0)
        failed = "listen() on";
    if (failed != NULL) {
        int e = errno;
        snprintf(err, errlen, "%s %s failed: %s", failed, text, strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

/* Bind every listen address before forking: 0, or -errno with a message in err. */
static int open_listeners(char *err, size_t errlen)
{
    for (int i = 0; i < M.cfg.nlisten; i++) {
        const struct config_listen *l = &M.cfg.listen[i];
        int fd = open_listener(l, err, errlen);
        if (fd < 0)
            return fd;
        M.listen_fds[i] = fd;
        M.nlisten = i + 1;
        struct sockaddr_storage ss;
        socklen_t slen = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &slen);
        uint16_t port = ntohs(l->family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                    : ((struct sockaddr_in *)&ss)->sin_port);
        if (i == 0)
            snprintf(M.shm_label, sizeof M.shm_label, "wschat-%u", port);
        char text[96];
        format_addr(l, port, text, sizeof text);
        log_write(LOG_LVL_NOTICE, 0, "listening on %s", text);
    }
    return 0;
}

/* What the helper process is, for the log. */
static const char *aux_name(void)
{
    return M.cfg.cluster ? "cluster bridge" : "history journal";
}

/*
 * What every worker shares, made before the first fork so that each
 * inherits it: the segment (same address in all), and per slot an eventfd
 * for wake-ups and a hand-over socket pair. 0, or -errno with err set.
 */
static int make_shared_state(char *err, size_t errlen)
{
    M.seg = shm_create(M.shm_label, M.cfg.ring_size, M.cfg.max_rooms,
                       M.cfg.cluster ? cluster_outbox_bytes(&M.cfg) : 0, err, errlen);
    if (M.seg == NULL)
        return -errno;
    /*
     * Ids start from the clock (ms x 1000, below 2^53 so JavaScript reads
     * them exactly) instead of 1: after a full restart they still rise, so a
     * client resuming with since=<an old id> gets everything the new server
     * has, announced by a gap event, instead of nothing.
     */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t clock_id = ((uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000) * 1000;
    /* With a journal, its messages go back into the ring first, and ids go on above them. */
    /* In cluster mode ids are the cluster's, read from Redis, and the ring starts empty. */
    int rc = M.cfg.cluster ? 0 : journal_restore(&M.cfg, M.seg, clock_id, err, errlen);
    if (rc < 0)
        return rc;
    if (M.cfg.cluster)
        cluster_prepare(&M.cfg, M.seg);
    if (M.cfg.history_file[0] != '\0' || M.cfg.cluster) {
        M.aux_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (M.aux_efd < 0) {
            int e = errno;
            snprintf(err, errlen, "eventfd() for the %s failed: %s", aux_name(), strerror(e));
            return -e;
        }
    }
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        M.eventfds[s] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        const char *failed = M.eventfds[s] < 0 ? "eventfd()" : NULL;
        /* Datagram-like pairs keep one handed-over connection per message. */
        if (failed == NULL &&
            socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, M.handoff[s]) < 0)
            failed = "socketpair()";
        if (failed != NULL) {
            int e = errno;
            snprintf(err, errlen, "%s for worker slot %d failed: %s", failed, s, strerror(e));
            return -e;
        }
        /* Room for a whole worker's connections at once (root may exceed wmem_max). */
        int sndbuf = 8 << 20;
        if (setsockopt(M.handoff[s][1], SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) < 0)
            setsockopt(M.handoff[s][1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    return 0;
}

/* ---- workers ------------------------------------------------------------------ */

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
        /* Only the master may hold the pid file's lock: it must die with it. */
        if (M.pid_fd >= 0)
            close(M.pid_fd);
        struct worker_ctx ctx = {
            .cfg = &M.cfg, .slot = slot, .generation = p->generation,
            .listen_fds = M.listen_fds, .nlisten = M.nlisten,
            .seg = M.seg, .eventfds = M.eventfds, .handoff = M.handoff,
            .journal_efd = M.cfg.cluster ? -1 : M.aux_efd,
            .cluster_efd = M.cfg.cluster ? M.aux_efd : -1,
        };
        worker_loop_run(&ctx);
    }
    p->pid = pid;
    p->watchdog_killed = 0;
    p->started_ms = worker_clock_ms();
    M.seg->slots[slot].generation = p->generation;
    __atomic_store_n(&M.seg->slots[slot].pid, (int32_t)pid, __ATOMIC_RELEASE);
    log_write(LOG_LVL_NOTICE, 0, "started worker %d (slot %d, generation %u)",
              (int)pid, slot, p->generation);
}

static void spawn_aux(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_write(LOG_LVL_ALERT, errno, "fork() of the %s failed", aux_name());
        M.aux_respawn_at_ms = worker_clock_ms() + BACKOFF_MAX_MS;
        return;
    }
    if (pid == 0) {
        close(M.sigfd);
        if (M.pid_fd >= 0)
            close(M.pid_fd);
        for (int i = 0; i < M.nlisten; i++)
            close(M.listen_fds[i]);
        if (M.cfg.cluster)
            cluster_run(&M.cfg, M.seg, M.eventfds, M.aux_efd);
        journal_run(&M.cfg, M.seg, M.eventfds, M.aux_efd);
    }
    M.aux_pid = pid;
    M.aux_started_ms = worker_clock_ms();
    log_write(LOG_LVL_NOTICE, 0, "started %s %d", aux_name(), (int)pid);
}

/* The helper process ended (STATUS): respawn it unless stopping, backing off if it keeps dying. */
static void aux_reaped(int status)
{
    M.aux_pid = 0;
    /* No bridge, no link: workers refuse messages until the next one is connected. */
    if (M.cfg.cluster)
        __atomic_store_n(&M.seg->cluster.up, 0u, __ATOMIC_RELEASE);
    if (M.stopping) {
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            log_write(LOG_LVL_ALERT, 0, "%s exited with status %d while stopping",
                      aux_name(), status);
        return;
    }
    log_write(LOG_LVL_ALERT, 0, "%s %s %d: respawning", aux_name(),
              WIFSIGNALED(status) ? "killed by signal" : "exited with code",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    uint64_t now = worker_clock_ms();
    M.aux_crashes = now - M.aux_started_ms < CRASH_WINDOW_MS ? M.aux_crashes + 1 : 0;
    uint64_t delay = M.aux_crashes > 1
                   ? (uint64_t)BACKOFF_FIRST_MS << (M.aux_crashes < 8 ? M.aux_crashes - 2 : 6)
                   : 0;
    M.aux_respawn_at_ms = now + (delay > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay);
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

/*
 * A worker that did not exit cleanly never gave back its connections'
 * per-address counts: start the table over; the live workers count theirs
 * in again within a tick (worker_ip_recount).
 */
static void forget_ip_counts(void)
{
    int lk = lock_acquire(&M.seg->ip_lock);
    if (lk < 0) {
        log_write(LOG_LVL_ALERT, -lk, "ip_limit lock_acquire() failed");
        return;
    }
    ip_limit_reset(&M.seg->ips);
    lock_release(&M.seg->ip_lock);
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == M.aux_pid) {
            aux_reaped(status);
            continue;
        }
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
        /* Its counters and wake flag must not outlive it. */
        shm_slot_reset(M.seg, slot);
        if (!clean) {
            forget_ip_counts();
            /* Nor its members: the live workers count theirs in again. */
            room_table_request_reset(shm_rooms(M.seg));
        }
        if (M.stopping || p->retiring || p->generation != M.generation) {
            if (!clean)
                log_write(LOG_LVL_WARN, 0, "worker %d exited with status %d", (int)pid, status);
            p->in_use = 0;
            continue;
        }
        if (WIFSIGNALED(status))
            log_write(LOG_LVL_ALERT, 0, "worker %d killed by signal %d%s", (int)pid, WTERMSIG(status),
                      p->watchdog_killed ? " (worker_watchdog)" : "");
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
    if (M.aux_efd >= 0 && M.aux_pid == 0 && M.aux_respawn_at_ms <= now)
        spawn_aux();
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        struct worker_proc *p = &M.procs[s];
        if (p->in_use && p->pid == 0 && !p->retiring && p->respawn_at_ms <= now)
            spawn(s);
    }
}

/*
 * A worker that is alive but no longer looping (stopped, stuck in a bug)
 * keeps its members waiting and, if it holds the publish lock, every
 * publisher: past worker_watchdog without a heartbeat it is killed. Its
 * death is then handled like a crash (lock recovered, counts reset,
 * respawn); its members reconnect and resume by id.
 */
static void watchdog(void)
{
    uint64_t limit = M.cfg.worker_watchdog_ms;
    if (limit == 0)
        return;
    uint64_t now = worker_clock_ms();
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        struct worker_proc *p = &M.procs[s];
        if (p->pid == 0 || p->watchdog_killed)
            continue;
        uint64_t beat = __atomic_load_n(&M.seg->slots[s].heartbeat_ms, __ATOMIC_RELAXED);
        uint64_t last = beat > p->started_ms ? beat : p->started_ms;
        if (now - last <= limit)
            continue;
        log_write(LOG_LVL_ALERT, 0, "worker %d (slot %d) has not run its loop for %llu ms: "
                  "killing it (worker_watchdog)", (int)p->pid, s,
                  (unsigned long long)(now - last));
        kill(p->pid, SIGKILL);
        p->watchdog_killed = 1;
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
    if (!M.stopping && M.aux_efd >= 0 && M.aux_pid == 0 && M.aux_respawn_at_ms < next)
        next = M.aux_respawn_at_ms;
    /* The watchdog looks every second (or every half limit, if shorter). */
    if (M.cfg.worker_watchdog_ms != 0) {
        uint64_t step = M.cfg.worker_watchdog_ms / 2 < 1000 ? M.cfg.worker_watchdog_ms / 2 : 1000;
        if (now + step < next)
            next = now + step;
    }
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
    if (strcmp(next.history_file, M.cfg.history_file) != 0 ||
        next.history_fsync != M.cfg.history_fsync || next.history_keep != M.cfg.history_keep) {
        log_write(LOG_LVL_WARN, 0, "history_file, history_fsync or history_keep changed: "
                  "a restart is needed to apply them");
        memcpy(next.history_file, M.cfg.history_file, sizeof next.history_file);
        next.history_fsync = M.cfg.history_fsync;
        next.history_keep = M.cfg.history_keep;
    }
    if (next.cluster != M.cfg.cluster ||
        memcmp(&next.cluster_url, &M.cfg.cluster_url, sizeof next.cluster_url) != 0 ||
        strcmp(next.cluster_prefix, M.cfg.cluster_prefix) != 0 ||
        next.cluster_timeout_ms != M.cfg.cluster_timeout_ms) {
        log_write(LOG_LVL_WARN, 0, "cluster settings changed: a restart is needed to apply them");
        next.cluster = M.cfg.cluster;
        next.cluster_url = M.cfg.cluster_url;
        memcpy(next.cluster_prefix, M.cfg.cluster_prefix, sizeof next.cluster_prefix);
        next.cluster_timeout_ms = M.cfg.cluster_timeout_ms;
    }
    if (next.max_rooms != M.cfg.max_rooms) {
        log_write(LOG_LVL_WARN, 0, "max_rooms changed: a restart is needed to apply it");
        next.max_rooms = M.cfg.max_rooms;
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
    pid_file_move();
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
    pid_file_release();
    shm_destroy(M.seg);
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
        if (M.aux_pid > 0)
            kill(M.aux_pid, SIGUSR1);
        break;
    default:
        break;
    }
}

/* Act on signals and dead workers until a stop completes; never returns. */
static void supervise(void) __attribute__((noreturn));
static void supervise(void)
{
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
        watchdog();
        if (M.stopping) {
            if (live_workers() == 0 && M.aux_pid == 0)
                cleanup_and_exit(0);
            if (live_workers() == 0 && !M.aux_told) {
                /* Nothing more can be published: the journal writes the rest, syncs,
                 * exits; the bridge sends the rest of its outbox. */
                kill(M.aux_pid, SIGTERM);
                M.aux_told = 1;
                M.kill_at_ms = worker_clock_ms() + JOURNAL_STOP_MS;
            }
            if (worker_clock_ms() >= M.kill_at_ms) {
                if (live_workers() > 0)
                    signal_workers(SIGKILL, 0);
                else if (M.aux_pid > 0)
                    kill(M.aux_pid, SIGKILL);
                M.kill_at_ms = live_workers() > 0 ? worker_clock_ms() + STOP_GRACE_MS : UINT64_MAX;
            }
            continue;
        }
        respawn_due();
    }
}

void master_run(const struct config *cfg)
{
    char err[MASTER_ERR_LEN];
    M.cfg = *cfg;
    if (block_signals(err, sizeof err) < 0)
        startup_fail(err);
    raise_fd_limit();
    /*
     * The pid file first, before binding: a second master started with the
     * same configuration is told that a master already runs (not that the
     * port is taken), and nothing else, least of all a ring of up to 4 GiB,
     * is set up while another master owns the file. startup_fail() removes
     * the file again if a later step fails.
     */
    int fd = pid_file_lock(M.cfg.pid_file, err, sizeof err);
    if (fd < 0)
        startup_fail(err);
    M.pid_fd = fd;
    snprintf(M.pid_path, sizeof M.pid_path, "%s", M.cfg.pid_file);
    if (open_listeners(err, sizeof err) < 0 || make_shared_state(err, sizeof err) < 0)
        startup_fail(err);
    log_write(LOG_LVL_NOTICE, 0, "wschat %s starting: %d workers, ring %llu bytes, config %s",
              WSCHAT_VERSION, M.cfg.workers, (unsigned long long)M.cfg.ring_size, M.cfg.path);
    if (M.aux_efd >= 0)
        spawn_aux();
    start_generation(M.cfg.workers);
    supervise();
}
