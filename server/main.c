/*
 * main: command line of wsmaster, nginx-style.
 *   -c FILE   configuration (default conf/wschat.conf)
 *   -t        test the configuration and exit 0/1
 *   -s SIG    send reload|reopen|quit|stop to the running master: the pid
 *             file's pid, and only while a master holds that file locked
 *   -v / -h   version / usage
 * Everything else is master_run()'s.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "journal.h"
#include "log.h"
#include "master.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: wsmaster [-c FILE] [-t] [-s reload|reopen|quit|stop] [-v] [-h]\n"
            "  -c FILE  configuration file (default: conf/wschat.conf)\n"
            "  -t       test the configuration and exit\n"
            "  -s SIG   signal the running master: reload (HUP), reopen (USR1),\n"
            "           quit (QUIT, graceful), stop (TERM)\n"
            "  -v       print the version and exit\n"
            "  -h       this help\n");
}

/*
 * The pid of the master that holds PATH locked into *PID: 0, or -errno
 * after printing why not (-ESRCH: no master holds it). Only a regular file of ours, reached without a symlink,
 * counts, and only while a master holds its lock (master.c keeps it locked
 * for its whole life): an unlocked file is stale, and the pid in it may
 * by now belong to any process at all.
 */
static int locked_master_pid(const char *path, pid_t *pid)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "wsmaster: cannot open pid file \"%s\": %s%s\n", path,
                strerror(e), e == ELOOP ? " (it is a symbolic link)" : "");
        return -e;
    }
    struct stat st;
    const char *why = fstat(fd, &st) < 0 ? strerror(errno)
                    : !S_ISREG(st.st_mode) ? "not a regular file"
                    : st.st_uid != geteuid() ? "owned by another user" : NULL;
    if (why != NULL) {
        fprintf(stderr, "wsmaster: pid file \"%s\" refused: %s\n", path, why);
        close(fd);
        return -EPERM;
    }
    /* A shared lock is granted only when no master holds its exclusive one. */
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        fprintf(stderr, "wsmaster: no running master (stale pid file %s)\n", path);
        close(fd);
        return -ESRCH;
    }
    if (errno != EWOULDBLOCK) {
        int e = errno;
        fprintf(stderr, "wsmaster: flock() of pid file \"%s\" failed: %s\n", path,
                strerror(e));
        close(fd);
        return -e;
    }
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (n <= 0 || end == buf || (*end != '\n' && *end != '\0') || errno != 0 || v <= 1 ||
        v != (pid_t)v) {
        fprintf(stderr, "wsmaster: no pid in pid file \"%s\"\n", path);
        return -EINVAL;
    }
    *pid = (pid_t)v;
    return 0;
}

static int send_signal(const struct config *cfg, const char *name)
{
    static const struct { const char *name; int sig; } map[] = {
        { "reload", SIGHUP }, { "reopen", SIGUSR1 }, { "quit", SIGQUIT }, { "stop", SIGTERM },
    };
    int sig = 0;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].name, name) == 0)
            sig = map[i].sig;
    if (sig == 0) {
        fprintf(stderr, "wsmaster: unknown signal \"%s\"\n", name);
        return 1;
    }
    pid_t pid = 0;
    if (locked_master_pid(cfg->pid_file, &pid) < 0)
        return 1;
    if (kill(pid, sig) < 0) {
        fprintf(stderr, "wsmaster: kill(%ld) failed: %s\n", (long)pid, strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *file = "conf/wschat.conf";
    const char *sig = NULL;
    int test_only = 0;
    int opt;
    while ((opt = getopt(argc, argv, "c:ts:vh")) != -1) {
        switch (opt) {
        case 'c': file = optarg; break;
        case 't': test_only = 1; break;
        case 's': sig = optarg; break;
        case 'v': printf("wschat %s\n", WSCHAT_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 1;
    }

    static struct config cfg;
    char err[CONFIG_ERR_LEN];
    if (config_load(&cfg, file, err, sizeof err) < 0) {
        fprintf(stderr, "wsmaster: %s\n", err);
        if (test_only)
            fprintf(stderr, "wsmaster: configuration file %s test failed\n", file);
        return 1;
    }
    if (test_only && journal_check(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "wsmaster: %s: %s\nwsmaster: configuration file %s test failed\n",
                cfg.path, err, cfg.path);
        return 1;
    }
    if (test_only) {
        printf("wsmaster: the configuration file %s syntax is ok\n"
               "wsmaster: configuration file %s test is successful\n", cfg.path, cfg.path);
        return 0;
    }
    if (sig != NULL)
        return send_signal(&cfg, sig);

    if (log_open(cfg.error_log, cfg.log_level) < 0) {
        fprintf(stderr, "wsmaster: opening error_log \"%s\" failed: %s\n", cfg.error_log,
                strerror(errno));
        return 1;
    }
    master_run(&cfg);
}
