/*
 * log: see log.h. State is per process (each worker inherits the master's fd
 * at fork and keeps using it until SIGUSR1 asks for a reopen). A line is
 * formatted into a stack buffer and written with one write(2), so O_APPEND
 * keeps lines from different processes whole.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {
    "alert", "crit", "error", "warn", "notice", "info", "debug"
};

const char *log_level_name(int level)
{
    if (level < 0 || (size_t)level >= sizeof level_names / sizeof level_names[0])
        return "unknown";
    return level_names[level];
}

int log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -EINVAL;
}

int log_level_current = LOG_LVL_INFO;

static int  log_fd_current = STDERR_FILENO;
static char log_path[PATH_MAX] = "stderr";
static int  log_slot = -1;

static int open_path(const char *path)
{
    if (path == NULL || strcmp(path, "stderr") == 0)
        return STDERR_FILENO;
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int log_open(const char *path, int level)
{
    int fd = open_path(path);
    if (fd < 0)
        return -1;
    if (log_fd_current != STDERR_FILENO)
        close(log_fd_current);
    log_fd_current = fd;
    log_level_current = level;
    /* log_reopen() passes log_path itself: copying it onto itself is undefined. */
    if (path != log_path)
        snprintf(log_path, sizeof log_path, "%s", path ? path : "stderr");
    return 0;
}

int log_reopen(void)
{
    return log_open(log_path, log_level_current);
}

void log_set_worker(int slot) { log_slot = slot; }

int log_fd(void) { return log_fd_current; }

void log_write(int level, int err, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;
    int w;

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y/%m/%d %H:%M:%S", &tm);
    if (log_slot < 0)
        w = snprintf(line + n, sizeof line - n, " [%s] %d: ",
                     log_level_name(level), (int)getpid());
    else
        w = snprintf(line + n, sizeof line - n, " [%s] %d#%d: ",
                     log_level_name(level), (int)getpid(), log_slot);
    n += (size_t)w;

    va_start(ap, fmt);
    w = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    /* A line that did not fit is cut, never dropped: keep room for errno and \n. */
    n = (w < 0) ? n : (n + (size_t)w < sizeof line - 128 ? n + (size_t)w : sizeof line - 128);
    if (err != 0)
        n += (size_t)snprintf(line + n, sizeof line - n, ": %s (%d)", strerror(err), err);
    line[n++] = '\n';

    int saved = errno;
    ssize_t rc;
    do {
        rc = write(log_fd_current, line, n);
    } while (rc < 0 && errno == EINTR);
    errno = saved;
}
