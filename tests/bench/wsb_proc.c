/*
 * wsb_proc: what the bench learns from the kernel about itself and about
 * the server: the fd limit, and the server's memory and CPU, summed over
 * the master and its direct children (the workers) found by scanning
 * /proc/<pid>/stat for ppid == master. Everything is read-only; a process
 * that vanishes between the scan and the read is just skipped.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include "wsb.h"

long wsb_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

static pid_t pid_from_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid > 0 ? (pid_t)pid : 0;
}

pid_t wsb_server_pid(const struct wsb_opts *o)
{
    if (o->server_pid > 0)
        return o->server_pid;
    return o->pid_file ? pid_from_file(o->pid_file) : 0;
}

int wsb_server_pids(const struct wsb_opts *o, pid_t *out, int max)
{
    int n = 0;
    pid_t one = wsb_server_pid(o);
    if (one > 0 && n < max)
        out[n++] = one;
    for (int i = 0; i < o->npid_files && n < max; i++)
        out[n++] = pid_from_file(o->pid_files[i]);
    return n;
}

/* Read a whole small /proc file into buf (NUL-terminated); length or -1. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* Value in kB of "Key:   123 kB" inside text; 0 if absent. */
static uint64_t kb_field(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (!p)
        return 0;
    p += strlen(key);
    while (*p == ' ' || *p == '\t')
        p++;
    return strtoull(p, NULL, 10);
}

/*
 * Parse /proc/<pid>/stat: fields after the command (which may itself hold
 * spaces and parentheses, hence the last ')'). ppid is field 4, utime and
 * stime fields 14 and 15 (proc(5)).
 */
static int read_stat(pid_t pid, pid_t *ppid, double *cpu_s)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (slurp(path, buf, sizeof buf) < 0)
        return -1;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2;                              /* now at field 3, the state */
    unsigned long long v[13];
    char state;
    if (sscanf(p, "%c %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
                  "%llu %llu", &state, &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]) != 13)
        return -1;
    *ppid = (pid_t)v[0];
    long hz = sysconf(_SC_CLK_TCK);
    *cpu_s = (double)(v[10] + v[11]) / (double)(hz > 0 ? hz : 100);
    return 0;
}

static void add_process(pid_t pid, struct wsb_server_usage *u, double cpu)
{
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (slurp(path, buf, sizeof buf) < 0)
        return;
    u->rss_kb += kb_field(buf, "VmRSS:");
    u->data_kb += kb_field(buf, "RssAnon:") + kb_field(buf, "RssShmem:");
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    if (slurp(path, buf, sizeof buf) >= 0)
        u->pss_kb += kb_field(buf, "\nPss:");
    u->cpu_s += cpu;
    u->nproc++;
}

int wsb_server_usage(pid_t master, struct wsb_server_usage *u)
{
    memset(u, 0, sizeof *u);
    pid_t ppid;
    double cpu;
    if (master <= 0 || read_stat(master, &ppid, &cpu) < 0)
        return -1;
    add_process(master, u, cpu);
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid != master && read_stat(pid, &ppid, &cpu) == 0 &&
            ppid == master)
            add_process(pid, u, cpu);
    }
    closedir(d);
    return 0;
}

int wsb_servers_usage(const pid_t *masters, int n, struct wsb_server_usage *u)
{
    memset(u, 0, sizeof *u);
    if (n <= 0)
        return -1;
    for (int i = 0; i < n; i++) {
        struct wsb_server_usage one;
        if (wsb_server_usage(masters[i], &one) < 0)
            return -1;
        u->nproc += one.nproc;
        u->rss_kb += one.rss_kb;
        u->data_kb += one.data_kb;
        u->pss_kb += one.pss_kb;
        u->cpu_s += one.cpu_s;
    }
    return 0;
}
