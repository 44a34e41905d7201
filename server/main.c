/*
 * main: command line of wsmaster, nginx-style.
 *   -c FILE   configuration (default conf/wschat.conf)
 *   -t        test the configuration and exit 0/1
 *   -s SIG    send reload|reopen|quit|stop to the running master (pid file)
 *   -v / -h   version / usage
 * Everything else is master_run()'s.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
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
    FILE *f = fopen(cfg->pid_file, "r");
    long pid = 0;
    if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
        fprintf(stderr, "wsmaster: cannot read a pid from \"%s\": %s\n", cfg->pid_file,
                f == NULL ? strerror(errno) : "no pid");
        if (f) fclose(f);
        return 1;
    }
    fclose(f);
    if (kill((pid_t)pid, sig) < 0) {
        fprintf(stderr, "wsmaster: kill(%ld) failed: %s\n", pid, strerror(errno));
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
