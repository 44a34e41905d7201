/*
 * wsbench: load generator and correctness checker for wschat.
 *
 *   wsbench fanout|echo|conns|join|rooms [options]   run one scenario
 *   wsbench freeport                        print a free 127.0.0.1 port
 *   wsbench selftest                        check wsbench's own codec
 *
 * This file owns the command line, the process-wide pieces (clock, random
 * bytes, the global deadline, a SIGALRM backstop) and the report writer:
 * a human table on stdout, or with --json one JSON object on stdout and
 * the table on stderr. Exit: 0 ok (or report only), 1 a check failed under
 * --check, 2 could not run, 3 the global deadline cut the run short.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "wsb.h"

static struct wsb_opts g_opts;
static uint64_t g_deadline_ns;

/* ---- clock, CPU, random ------------------------------------------------ */

uint64_t wsb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double wsb_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int wsb_deadline_passed(void)
{
    return g_deadline_ns && wsb_now_ns() >= g_deadline_ns;
}

/* Mask keys and handshake keys come from the kernel's CSPRNG (RFC 6455
 * §5.3 asks for unpredictable masks), batched so a frame costs no syscall. */
void wsb_random(void *buf, size_t n)
{
    static uint8_t pool[4096];
    static size_t left;
    uint8_t *out = buf;
    while (n > 0) {
        if (left == 0) {
            ssize_t r = getrandom(pool, sizeof pool, 0);
            if (r < (ssize_t)sizeof pool) {
                if (r < 0 && errno == EINTR)
                    continue;
                fprintf(stderr, "wsbench: getrandom() failed\n");
                exit(2);
            }
            left = sizeof pool;
        }
        size_t k = n < left ? n : left;
        memcpy(out, pool + sizeof pool - left, k);
        out += k;
        n -= k;
        left -= k;
    }
}

int wsb_parse_ports(const char *s, uint16_t *out, int max)
{
    int n = 0;
    for (;;) {
        unsigned long v = 0;
        const char *d = s;
        while (*s >= '0' && *s <= '9' && v <= 65535)
            v = v * 10 + (unsigned long)(*s++ - '0');
        if (s == d || v < 1 || v > 65535 || n >= max)
            return -1;
        out[n++] = (uint16_t)v;
        if (*s == '\0')
            return n;
        if (*s++ != ',')
            return -1;
    }
}

/* ---- report writer ----------------------------------------------------- */

#define JSON_DEPTH 8
static int json_depth = -1;
static int json_first[JSON_DEPTH];

FILE *wsb_human(void)
{
    return g_opts.json ? stderr : stdout;
}

static void json_sep(const char *key)
{
    if (json_depth >= 0) {
        if (!json_first[json_depth])
            putchar(',');
        json_first[json_depth] = 0;
    }
    if (key)
        printf("\"%s\":", key);
}

static void json_push(const char *key, char open)
{
    if (!g_opts.json || json_depth + 1 >= JSON_DEPTH)
        return;
    json_sep(key);
    putchar(open);
    json_first[++json_depth] = 1;
}

void wsb_json_open(const char *key)  { json_push(key, '{'); }
void wsb_json_array(const char *key) { json_push(key, '['); }

void wsb_json_close(void)
{
    if (g_opts.json && json_depth >= 0) {
        putchar('}');
        json_depth--;
    }
}

void wsb_json_array_end(void)
{
    if (g_opts.json && json_depth >= 0) {
        putchar(']');
        json_depth--;
    }
}

void wsb_json_num(const char *key, double v)
{
    if (!g_opts.json)
        return;
    json_sep(key);
    if (isfinite(v))
        printf("%.6g", v);
    else
        fputs("null", stdout);
}

void wsb_json_int(const char *key, int64_t v)
{
    if (!g_opts.json)
        return;
    json_sep(key);
    printf("%lld", (long long)v);
}

void wsb_json_str(const char *key, const char *v)
{
    if (!g_opts.json)
        return;
    json_sep(key);
    putchar('"');
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            printf("\\%c", *v);
        else if ((unsigned char)*v < 0x20)
            printf("\\u%04x", *v);
        else
            putchar(*v);
    }
    putchar('"');
}

void wsb_json_hist_ms(const char *key, const struct wsb_hist *h)
{
    wsb_json_open(key);
    wsb_json_int("count", (int64_t)h->count);
    wsb_json_num("p50_ms", wsb_hist_quantile(h, 0.50) / 1e6);
    wsb_json_num("p90_ms", wsb_hist_quantile(h, 0.90) / 1e6);
    wsb_json_num("p99_ms", wsb_hist_quantile(h, 0.99) / 1e6);
    wsb_json_num("p999_ms", wsb_hist_quantile(h, 0.999) / 1e6);
    wsb_json_num("max_ms", (h->count ? h->max : 0) / 1e6);
    wsb_json_num("mean_ms", wsb_hist_mean(h) / 1e6);
    wsb_json_close();
}

void wsb_report_cpu(const char *what, const char *key, double wall_s,
                    double cpu_s)
{
    double frac = wall_s > 0 ? cpu_s / wall_s : 0;
    char label[32];
    snprintf(label, sizeof label, "gen CPU %s", what);
    fprintf(wsb_human(), "  %-15s %.2f s over %.2f s = %.0f%% of one core%s\n",
            label, cpu_s, wall_s, frac * 100,
            frac > 0.9 ? "  (the generator is likely the limit)" : "");
    wsb_json_open(key);
    wsb_json_num("cpu_s", cpu_s);
    wsb_json_num("wall_s", wall_s);
    wsb_json_num("cpu_fraction", frac);
    wsb_json_close();
}

/* ---- command line ------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs(
"usage: wsbench fanout|echo|conns|join|rooms [options]\n"
"       wsbench freeport | selftest\n"
"  --host A            server IPv4 in 127.0.0.0/8 (127.0.0.1)\n"
"  --port N            server port (8000)\n"
"  --ports N,N,...     several servers (cluster nodes, up to 8): connection\n"
"                      i goes to the (i mod count)-th; instead of --port\n"
"fanout: members of one room receive what publishers send\n"
"  --members S --publishers P --rate R(msg/s, total) --bytes B --duration D\n"
"  --ramp              double R each step until loss or p99 > --slo-ms (100)\n"
"  --ramp-factor F     multiply R by F (1.01-10) each step instead of 2\n"
"  --max-steps N       bound on ramp steps (10)   --room NAME (random)\n"
"  --drain S           wait for stragglers after each step (5)\n"
"echo:  --conns C --bytes B --duration D [--text]   closed-loop round trips\n"
"conns: --conns N --hold S (3)   open N idle connections, report memory\n"
"join:  --conns N --hold S [--room NAME]   the same as members of one chat room\n"
"rooms: --rooms N --room-rate R (1) --bytes B --duration D --hold S\n"
"                      N rooms of 2 members, R msg/s per room spread evenly\n"
"common:\n"
"  --server-pid PID | --pid-file FILE   server master, for RSS/CPU figures\n"
"  --pid-files F,F,... one pid file per server of --ports (fanout: CPU summed)\n"
"  --extra-pid PID     fanout: also report this process's CPU per step\n"
"                      (with its children; e.g. redis-server)\n"
"  --concurrency K     handshakes in flight (256)\n"
"  --connect-timeout S (10)  --close-timeout S (3)  --deadline S (auto)\n"
"  --no-src-bind       do not spread source addresses over 127.0.0.2-250\n"
"  --json              one JSON object on stdout, table on stderr\n"
"  --check             exit 1 on any correctness failure\n", f);
}

enum {
    O_HOST = 1000, O_PORT, O_MEMBERS, O_PUBLISHERS, O_RATE, O_BYTES,
    O_DURATION, O_RAMP, O_SLO, O_MAXSTEPS, O_ROOM, O_DRAIN, O_CONNS,
    O_HOLD, O_TEXT, O_SPID, O_PIDFILE, O_CONC, O_CTIMEOUT, O_CLTIMEOUT,
    O_DEADLINE, O_NOSRC, O_JSON, O_CHECK, O_ROOMS, O_ROOMRATE, O_RFACTOR,
    O_PORTS, O_PIDFILES, O_EXTRAPID, O_HELP
};

static const struct option long_opts[] = {
    { "host", 1, 0, O_HOST }, { "port", 1, 0, O_PORT },
    { "members", 1, 0, O_MEMBERS }, { "publishers", 1, 0, O_PUBLISHERS },
    { "rate", 1, 0, O_RATE }, { "bytes", 1, 0, O_BYTES },
    { "duration", 1, 0, O_DURATION }, { "ramp", 0, 0, O_RAMP },
    { "slo-ms", 1, 0, O_SLO }, { "max-steps", 1, 0, O_MAXSTEPS },
    { "room", 1, 0, O_ROOM }, { "drain", 1, 0, O_DRAIN },
    { "conns", 1, 0, O_CONNS }, { "hold", 1, 0, O_HOLD },
    { "text", 0, 0, O_TEXT }, { "server-pid", 1, 0, O_SPID },
    { "pid-file", 1, 0, O_PIDFILE }, { "concurrency", 1, 0, O_CONC },
    { "connect-timeout", 1, 0, O_CTIMEOUT },
    { "close-timeout", 1, 0, O_CLTIMEOUT }, { "deadline", 1, 0, O_DEADLINE },
    { "no-src-bind", 0, 0, O_NOSRC }, { "json", 0, 0, O_JSON },
    { "check", 0, 0, O_CHECK }, { "rooms", 1, 0, O_ROOMS },
    { "room-rate", 1, 0, O_ROOMRATE }, { "ramp-factor", 1, 0, O_RFACTOR },
    { "ports", 1, 0, O_PORTS }, { "pid-files", 1, 0, O_PIDFILES },
    { "extra-pid", 1, 0, O_EXTRAPID },
    { "help", 0, 0, O_HELP },
    { 0, 0, 0, 0 }
};

static int num_arg(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static void set_defaults(struct wsb_opts *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->host, sizeof o->host, "127.0.0.1");
    o->port = 8000;
    o->members = 100;
    o->publishers = 10;
    o->conns = 100;
    o->rooms = 100;
    o->room_rate = 1;
    o->concurrency = 256;
    o->rate = 250;
    o->bytes = 100;
    o->duration = 5;
    o->drain = 5;
    o->hold = 3;
    o->connect_timeout = 10;
    o->close_timeout = 3;
    o->slo_ms = 100;
    o->max_steps = 10;
    o->ramp_factor = 2;
    o->src_bind = 1;
}

/* "F1,F2,...": split a copy (kept for the run) into o->pid_files. */
static int set_pid_files(struct wsb_opts *o, const char *a)
{
    char *copy = strdup(a);
    if (!copy)
        return -1;
    o->npid_files = 0;
    for (char *s = copy;;) {
        char *comma = strchr(s, ',');
        if (comma)
            *comma = '\0';
        if (*s == '\0' || o->npid_files >= WSB_MAX_PORTS)
            return -1;
        o->pid_files[o->npid_files++] = s;
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

static int port_given;       /* --port seen: --ports is the other way */

/* Apply one option; -1 on a bad value. */
static int apply_opt(struct wsb_opts *o, int c, const char *a)
{
    double v = 0;
    switch (c) {
    case O_PORTS:
        o->nports = wsb_parse_ports(a, o->ports, WSB_MAX_PORTS);
        return o->nports > 0 ? 0 : -1;
    case O_PIDFILES: return set_pid_files(o, a);
    case O_HOST:
        if (strlen(a) >= sizeof o->host) return -1;
        snprintf(o->host, sizeof o->host, "%s", a);
        return 0;
    case O_ROOM:
        if (strlen(a) >= sizeof o->room) return -1;
        snprintf(o->room, sizeof o->room, "%s", a);
        return 0;
    case O_PIDFILE: o->pid_file = a; return 0;
    case O_RAMP: o->ramp = 1; return 0;
    case O_TEXT: o->text = 1; return 0;
    case O_NOSRC: o->src_bind = 0; return 0;
    case O_JSON: o->json = 1; return 0;
    case O_CHECK: o->check = 1; return 0;
    }
    if (num_arg(a, 0, 1e9, &v) < 0)
        return -1;
    switch (c) {
    case O_PORT:       if (v < 1 || v > 65535) return -1;
                       o->port = (uint16_t)v; port_given = 1; break;
    case O_EXTRAPID:   if (v < 1) return -1;
                       o->extra_pid = (pid_t)v; break;
    case O_MEMBERS:    o->members = (int)v; break;
    case O_PUBLISHERS: o->publishers = (int)v; break;
    case O_RATE:       o->rate = v; break;
    case O_BYTES:      if (v > 16 * 1024 * 1024) return -1;
                       o->bytes = (size_t)v; break;
    case O_DURATION:   o->duration = v; break;
    case O_SLO:        o->slo_ms = v; break;
    case O_MAXSTEPS:   o->max_steps = (int)v; break;
    case O_DRAIN:      o->drain = v; break;
    case O_CONNS:      o->conns = (int)v; break;
    case O_HOLD:       o->hold = v; break;
    case O_SPID:       o->server_pid = (pid_t)v; break;
    case O_CONC:       o->concurrency = (int)v; break;
    case O_CTIMEOUT:   o->connect_timeout = v; break;
    case O_CLTIMEOUT:  o->close_timeout = v; break;
    case O_DEADLINE:   o->deadline = v; break;
    case O_ROOMS:      o->rooms = (int)v; break;
    case O_ROOMRATE:   o->room_rate = v; break;
    case O_RFACTOR:    if (v < 1.01 || v > 10) return -1;
                       o->ramp_factor = v; break;
    default:           return -1;
    }
    return 0;
}

static int validate(struct wsb_opts *o)
{
    struct in_addr a;
    if (inet_pton(AF_INET, o->host, &a) != 1 ||
        (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "wsbench: --host must be an IPv4 address in "
                "127.0.0.0/8\n");
        return -1;
    }
    if (o->members < 1 || o->conns < 1 || o->publishers < 1 ||
        o->rooms < 1 || o->room_rate <= 0 || o->rate <= 0 ||
        o->duration <= 0 || o->concurrency < 1 || o->max_steps < 1 ||
        o->connect_timeout <= 0) {
        fprintf(stderr, "wsbench: counts, rate, duration and timeouts must "
                "be positive\n");
        return -1;
    }
    if (o->nports > 0 && port_given) {
        fprintf(stderr, "wsbench: give --port or --ports, not both\n");
        return -1;
    }
    if (o->nports == 0) {
        o->ports[0] = o->port;
        o->nports = 1;
    } else {
        o->port = o->ports[0];
    }
    if (o->npid_files > 0 && o->npid_files != o->nports) {
        fprintf(stderr, "wsbench: --pid-files needs one file per port\n");
        return -1;
    }
    if (o->publishers > o->members)
        o->publishers = o->members;
    return 0;
}

/* Connections a scenario opens. */
static int scenario_conns(const struct wsb_opts *o)
{
    if (strcmp(o->scenario, "fanout") == 0)
        return o->members;
    if (strcmp(o->scenario, "rooms") == 0)
        return 2 * o->rooms;
    return o->conns;
}

/* A deadline that any run that is progressing finishes well before. */
static double auto_deadline(const struct wsb_opts *o)
{
    int n = scenario_conns(o);
    double open = o->connect_timeout + n / 1000.0;
    double steps = strcmp(o->scenario, "fanout") == 0 && o->ramp
                       ? o->max_steps : 1;
    return open + steps * (o->duration + o->drain + 2) + o->hold +
           o->close_timeout + 30;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(0x7F000001u);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        perror("wsbench: freeport");
        return 2;
    }
    printf("%u\n", ntohs(sa.sin_port));
    close(fd);
    return 0;
}

static int run(struct wsb_opts *o)
{
    long nofile = wsb_raise_nofile();
    int need = scenario_conns(o) + 32;
    if (nofile > 0 && need > nofile) {
        fprintf(stderr, "wsbench: need %d fds, RLIMIT_NOFILE hard limit "
                "is %ld\n", need, nofile);
        return 2;
    }
    if (o->deadline <= 0)
        o->deadline = auto_deadline(o);
    g_deadline_ns = wsb_now_ns() + (uint64_t)(o->deadline * 1e9);
    /* Backstop if a bug ever stops the loops from checking the clock:
     * SIGALRM's default action ends the process. */
    alarm((unsigned)o->deadline + 30);

    wsb_json_open(NULL);
    wsb_json_str("scenario", o->scenario);
    wsb_json_str("target", o->host);
    wsb_json_int("port", o->port);
    if (o->nports > 1) {
        wsb_json_array("ports");
        for (int i = 0; i < o->nports; i++)
            wsb_json_int(NULL, o->ports[i]);
        wsb_json_array_end();
    }
    int rc;
    if (strcmp(o->scenario, "fanout") == 0)
        rc = wsb_fanout_run(o);
    else if (strcmp(o->scenario, "echo") == 0)
        rc = wsb_echo_run(o);
    else if (strcmp(o->scenario, "rooms") == 0)
        rc = wsb_rooms_run(o);
    else
        rc = wsb_conns_run(o);
    int late = wsb_deadline_passed();
    wsb_json_int("deadline_hit", late);
    wsb_json_int("exit", late ? 3 : rc == 1 && !o->check ? 0 : rc);
    wsb_json_close();
    if (o->json)
        putchar('\n');
    fflush(stdout);
    if (late) {
        fprintf(stderr, "wsbench: global deadline (%.0f s) reached\n",
                o->deadline);
        return 3;
    }
    return rc == 1 && !o->check ? 0 : rc;
}

int main(int argc, char **argv)
{
    struct wsb_opts *o = &g_opts;
    set_defaults(o);
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "freeport") == 0)
        return free_port();
    if (strcmp(argv[1], "selftest") == 0)
        return wsb_selftest();
    o->scenario = argv[1];
    if (strcmp(o->scenario, "fanout") && strcmp(o->scenario, "echo") &&
        strcmp(o->scenario, "conns") && strcmp(o->scenario, "join") &&
        strcmp(o->scenario, "rooms")) {
        fprintf(stderr, "wsbench: unknown scenario '%s'\n", o->scenario);
        usage(stderr);
        return 2;
    }
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (c == O_HELP) {
            usage(stdout);
            return 0;
        }
        if (c == '?' || apply_opt(o, c, optarg) < 0) {
            if (c != '?')
                fprintf(stderr, "wsbench: bad value '%s'\n", optarg);
            return 2;
        }
    }
    if (optind < argc || validate(o) < 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    return run(o);
}
