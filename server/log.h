/*
 * log: leveled, line-oriented logger for the master and the workers.
 *
 * One line per event: "2026/11/25 08:17:02 [warn] 1234#2: text: errno text".
 * The level is checked before anything is formatted (log_at), so a disabled
 * debug line costs one compare. Each process keeps its own fd; SIGUSR1 makes
 * the master and every worker call log_reopen(). Writes are one write(2) per
 * line with O_APPEND, so lines from several processes never interleave.
 */
#ifndef WSM_LOG_H
#define WSM_LOG_H

#include <stdarg.h>

#include "result.h"

/* Severity, most severe first (nginx's names; a line is written when its
 * level is <= the configured one). */
enum log_level {
    LOG_LVL_ALERT, LOG_LVL_CRIT, LOG_LVL_ERR, LOG_LVL_WARN,
    LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG
};

/* "alert" ... "debug" as written in error_log lines and log_level; "unknown" out of range. */
const char *log_level_name(int level);
/* The level NAME spells, or -EINVAL. */
int log_level_parse(const char *name);

extern int log_level_current;

/* Open PATH ("stderr" or a file, appended). 0, or -1 with errno. */
int  log_open(const char *path, int level);
/* Reopen the current path (log rotation). 0, or -1 with errno. */
int  log_reopen(void);
/* Tag lines from this process: -1 = master, >= 0 = worker slot. */
void log_set_worker(int slot);
int  log_fd(void);

/* err != 0 appends ": strerror(err)" to the line. */
void log_write(int level, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_at(level, err, ...) \
    do { if ((level) <= log_level_current) log_write((level), (err), __VA_ARGS__); } while (0)

#endif
