/*
 * config: turn the text of wschat.conf into a validated struct config.
 *
 * The parser works line by line on a private copy of each line (at most
 * CONF_LINE_MAX bytes), splits it into tokens in place and dispatches on a
 * table of directives that knows each value's type, range and field. Nothing
 * is logged or printed: every failure becomes "FILE:LINE: message" in the
 * caller's buffer. Relative paths are kept as written until the whole file
 * is read, then anchored to the config file's directory, so the defaults
 * ("../web", "../run/wschat.pid") follow the file wherever it lives.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "room_table.h"

#include "access_log.h"
#include "log.h"

#define CONF_LINE_MAX   4096
#define CONF_FILE_MAX   (1024 * 1024)
/* The directive name, every origin or address, and a lone ";" left for stripping. */
#define CONF_TOKENS_MAX ((CONFIG_MAX_ORIGINS > CIDR_MAX ? CONFIG_MAX_ORIGINS : CIDR_MAX) + 2)
/* How much of a bad value is quoted back in an error message. */
#define CONF_ECHO_MAX   80

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define SEC ((uint64_t)1000)
#define HOUR (3600 * SEC)

enum dtype {
    D_LISTEN, D_WORKERS, D_INT, D_U32, D_SIZE, D_DURATION,
    D_PATH, D_LOG_LEVEL, D_ORIGINS, D_FLAG, D_AUTH, D_DURATION_OFF,
    D_CIDR, D_FSYNC, D_CLUSTER, D_PREFIX
};

struct directive {
    const char *name;
    enum dtype  type;
    size_t      off;            /* field in struct config */
    uint64_t    min, max;       /* inclusive, for numeric types */
};

#define F(field) offsetof(struct config, field)

static const struct directive directives[] = {
    { "listen",                  D_LISTEN,    0, 0, 0 },
    { "workers",                 D_WORKERS,   F(workers), 1, CONFIG_MAX_WORKERS },
    { "max_connections",         D_INT,       F(max_connections), 1, 1000000 },
    { "max_connections_per_ip",  D_U32,       F(max_connections_per_ip), 0, 10000000 },
    { "ip_publish_rate",         D_SIZE,      F(ip_publish_rate), 0, GIB },
    { "web_root",                D_PATH,      F(web_root), 0, 0 },
    { "pid_file",                D_PATH,      F(pid_file), 0, 0 },
    { "error_log",               D_PATH,      F(error_log), 0, 0 },
    { "access_log",              D_PATH,      F(access_log), 0, 0 },
    { "log_level",               D_LOG_LEVEL, F(log_level), 0, 0 },
    { "handshake_timeout",       D_DURATION,  F(handshake_timeout_ms), 1, 24 * HOUR },
    { "idle_timeout",            D_DURATION,  F(idle_timeout_ms), SEC, 24 * HOUR },
    { "close_timeout",           D_DURATION,  F(close_timeout_ms), 1, 24 * HOUR },
    { "worker_shutdown_timeout", D_DURATION,  F(shutdown_timeout_ms), 1, 24 * HOUR },
    { "max_request_head",        D_SIZE,      F(max_request_head), KIB, MIB },
    { "max_message",             D_SIZE,      F(max_message), 1, GIB },
    { "max_reassembly_memory",   D_SIZE,      F(max_reassembly_memory), KIB, 64 * GIB },
    { "message_timeout",         D_DURATION,  F(message_timeout_ms), SEC, 24 * HOUR },
    { "max_send_queue",          D_SIZE,      F(max_send_queue), 64 * KIB, GIB },
    { "max_text",                D_SIZE,      F(max_text), 1, MIB },
    { "history_size",            D_U32,       F(history_size), 0, 100000 },
    { "rate_limit",              D_U32,       F(rate_limit), 0, 1000000 },
    { "presence_events_max",     D_U32,       F(presence_events_max), 0, 10000000 },
    { "max_rooms",               D_U32,       F(max_rooms), 1, ROOM_TABLE_MAX },
    { "auth",                    D_AUTH,      F(auth), 0, 0 },
    { "auth_secret_file",        D_PATH,      F(auth_secret_file), 0, 0 },
    { "auth_leeway",             D_DURATION,  F(auth_leeway_ms), 0, 24 * HOUR },
    { "worker_watchdog",         D_DURATION_OFF, F(worker_watchdog_ms), SEC, HOUR },
    { "presence_interval",       D_DURATION,  F(presence_interval_ms), 10, 24 * HOUR },
    { "rate_limit_burst",        D_U32,       F(rate_limit_burst), 1, 1000000 },
    { "ring_size",               D_SIZE,      F(ring_size), MIB, 4 * GIB },
    { "origins",                 D_ORIGINS,   0, 0, 0 },
    { "reload_handoff",          D_FLAG,      F(reload_handoff), 0, 1 },
    { "real_ip_from",            D_CIDR,      F(real_ip_from), 0, 0 },
    { "stats_allow",             D_CIDR,      F(stats_allow), 0, 0 },
    { "api_key_file",            D_PATH,      F(api_key_file), 0, 0 },
    { "api_allow",               D_CIDR,      F(api_allow), 0, 0 },
    { "max_api_body",            D_SIZE,      F(max_api_body), KIB, 4 * MIB },
    { "history_file",            D_PATH,      F(history_file), 0, 0 },
    { "history_fsync",           D_FSYNC,     F(history_fsync), 0, 0 },
    { "history_keep",            D_SIZE,      F(history_keep), 4 * MIB, 1024 * GIB },
    { "cluster",                 D_CLUSTER,   0, 0, 0 },
    { "cluster_password_file",   D_PATH,      F(cluster_password_file), 0, 0 },
    { "cluster_prefix",          D_PREFIX,    F(cluster_prefix), 0, 0 },
    { "cluster_timeout",         D_DURATION,  F(cluster_timeout_ms), 100, 10 * 60 * SEC },
};

#define NDIRECTIVES (sizeof(directives) / sizeof(directives[0]))

struct parser {
    struct config *cfg;
    const char    *file;
    char          *err;
    size_t         errlen;
    unsigned       seen[NDIRECTIVES];   /* line of each directive, 0 = absent */
};

struct line {
    char  buf[CONF_LINE_MAX + 1];
    char *tok[CONF_TOKENS_MAX];
    int   ntok;                         /* may exceed CONF_TOKENS_MAX */
};

/* Write "FILE:LINE: msg" (line 0: "FILE: msg") and return -1. */
__attribute__((format(printf, 3, 4)))
static int fail(struct parser *p, unsigned line, const char *fmt, ...)
{
    if (p->err == NULL || p->errlen == 0)
        return -1;
    int n = line ? snprintf(p->err, p->errlen, "%s:%u: ", p->file, line)
                 : snprintf(p->err, p->errlen, "%s: ", p->file);
    if (n < 0 || (size_t)n >= p->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Digits only, no sign or blanks: 0, -1 malformed, -2 overflow. */
static int parse_digits(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static size_t digit_run(const char *s)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

static int scale(uint64_t v, uint64_t unit, uint64_t *out)
{
    if (v > UINT64_MAX / unit)
        return -2;
    *out = v * unit;
    return 0;
}

/* Like config_parse_size, but tells overflow (-2) from malformed (-1). */
static int size_parse(const char *s, uint64_t *out)
{
    size_t n = digit_run(s);
    uint64_t v, unit;
    switch (s[n]) {
    case '\0':           unit = 1;   break;
    case 'k': case 'K':  unit = KIB; break;
    case 'm': case 'M':  unit = MIB; break;
    case 'g': case 'G':  unit = GIB; break;
    default:             return -1;
    }
    if (s[n] != '\0' && s[n + 1] != '\0')
        return -1;
    int rc = parse_digits(s, n, &v);
    return rc < 0 ? rc : scale(v, unit, out);
}

static int duration_parse(const char *s, uint64_t *out_ms)
{
    size_t n = digit_run(s);
    const char *suf = s + n;
    uint64_t v, unit;
    if (strcmp(suf, "") == 0 || strcmp(suf, "s") == 0)
        unit = SEC;
    else if (strcmp(suf, "ms") == 0)
        unit = 1;
    else if (strcmp(suf, "m") == 0)
        unit = 60 * SEC;
    else if (strcmp(suf, "h") == 0)
        unit = HOUR;
    else
        return -1;
    int rc = parse_digits(s, n, &v);
    return rc < 0 ? rc : scale(v, unit, out_ms);
}

int config_parse_size(const char *s, uint64_t *out)
{
    return size_parse(s, out) == 0 ? 0 : -1;
}

int config_parse_duration(const char *s, uint64_t *out_ms)
{
    return duration_parse(s, out_ms) == 0 ? 0 : -1;
}

/* Render a limit the way a user would write it: 65536 → "64k", 1000 → "1s". */
static void format_size(char *buf, size_t len, uint64_t v)
{
    if (v >= GIB && v % GIB == 0)
        snprintf(buf, len, "%llug", (unsigned long long)(v / GIB));
    else if (v >= MIB && v % MIB == 0)
        snprintf(buf, len, "%llum", (unsigned long long)(v / MIB));
    else if (v >= KIB && v % KIB == 0)
        snprintf(buf, len, "%lluk", (unsigned long long)(v / KIB));
    else
        snprintf(buf, len, "%llu", (unsigned long long)v);
}

static void format_duration(char *buf, size_t len, uint64_t ms)
{
    if (ms >= HOUR && ms % HOUR == 0)
        snprintf(buf, len, "%lluh", (unsigned long long)(ms / HOUR));
    else if (ms >= 60 * SEC && ms % (60 * SEC) == 0)
        snprintf(buf, len, "%llum", (unsigned long long)(ms / (60 * SEC)));
    else if (ms >= SEC && ms % SEC == 0)
        snprintf(buf, len, "%llus", (unsigned long long)(ms / SEC));
    else
        snprintf(buf, len, "%llums", (unsigned long long)ms);
}

static int out_of_range(struct parser *p, unsigned line,
                        const struct directive *d, const char *value)
{
    char lo[32], hi[32];
    if (d->type == D_SIZE) {
        format_size(lo, sizeof(lo), d->min);
        format_size(hi, sizeof(hi), d->max);
    } else if (d->type == D_DURATION || d->type == D_DURATION_OFF) {
        format_duration(lo, sizeof(lo), d->min);
        format_duration(hi, sizeof(hi), d->max);
    } else {
        snprintf(lo, sizeof(lo), "%llu", (unsigned long long)d->min);
        snprintf(hi, sizeof(hi), "%llu", (unsigned long long)d->max);
    }
    return fail(p, line, "\"%s\" must be between %s and %s%s, not \"%.*s\"",
                d->name, lo, hi, d->type == D_WORKERS ? " or auto" : d->type == D_DURATION_OFF ? " or off" : "",
                CONF_ECHO_MAX, value);
}

/* One numeric value (count, size or duration) into its field, range-checked. */
static int set_number(struct parser *p, unsigned line,
                      const struct directive *d, const char *value)
{
    uint64_t v = 0;
    int rc;
    const char *kind;
    if (d->type == D_SIZE) {
        rc = size_parse(value, &v);
        kind = "size";
    } else if (d->type == D_DURATION || d->type == D_DURATION_OFF) {
        rc = duration_parse(value, &v);
        kind = "duration";
    } else {
        rc = parse_digits(value, strlen(value), &v);
        kind = "number";
    }
    if (rc == -1)
        return fail(p, line, "invalid %s \"%.*s\" in \"%s\" directive",
                    kind, CONF_ECHO_MAX, value, d->name);
    if (rc == -2 || v < d->min || v > d->max)
        return out_of_range(p, line, d, value);

    char *field = (char *)p->cfg + d->off;
    if (d->type == D_INT || d->type == D_WORKERS)
        *(int *)(void *)field = (int)v;
    else if (d->type == D_U32)
        *(uint32_t *)(void *)field = (uint32_t)v;
    else
        *(uint64_t *)(void *)field = v;
    return 0;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (int)n;
}

/*
 * Split "host:port" into a config_listen. Accepted: "8000" and "*:8000"
 * (0.0.0.0), "1.2.3.4:8000", "[::1]:8000". The host is stored in inet_ntop
 * form, so two spellings of one address compare equal.
 */
static int parse_listen(struct parser *p, unsigned line, const char *value)
{
    struct config *cfg = p->cfg;
    char host[64];
    const char *port;
    int family = AF_INET;
    const char *why;

    if (digit_run(value) == strlen(value)) {
        strcpy(host, "0.0.0.0");
        port = value;
    } else if (value[0] == '[') {
        const char *end = strchr(value, ']');
        why = "missing \"]\"";
        if (end == NULL)
            goto bad;
        why = "expected \":port\" after \"]\"";
        if (end[1] != ':')
            goto bad;
        why = "host must be a numeric IPv4 or IPv6 address";
        if ((size_t)(end - value - 1) >= sizeof(host))
            goto bad;
        memcpy(host, value + 1, (size_t)(end - value - 1));
        host[end - value - 1] = '\0';
        family = AF_INET6;
        port = end + 2;
    } else {
        const char *colon = strrchr(value, ':');
        why = "missing port";
        if (colon == NULL)
            goto bad;
        why = "IPv6 addresses must be written in brackets, as [::1]:8000";
        if (memchr(value, ':', (size_t)(colon - value)) != NULL)
            goto bad;
        why = "host must be a numeric IPv4 or IPv6 address";
        if ((size_t)(colon - value) >= sizeof(host))
            goto bad;
        memcpy(host, value, (size_t)(colon - value));
        host[colon - value] = '\0';
        if (strcmp(host, "*") == 0)
            strcpy(host, "0.0.0.0");
        port = colon + 1;
    }

    unsigned char addr[16];
    why = "host must be a numeric IPv4 or IPv6 address";
    if (inet_pton(family, host, addr) != 1)
        goto bad;
    uint64_t portnum;
    why = "missing port";
    if (*port == '\0')
        goto bad;
    why = "port must be a number from 0 to 65535";
    if (parse_digits(port, strlen(port), &portnum) != 0 || portnum > 65535)
        goto bad;

    struct config_listen l = { .family = family, .port = (uint16_t)portnum };
    if (inet_ntop(family, addr, l.host, sizeof(l.host)) == NULL)
        goto bad;
    for (int i = 0; i < cfg->nlisten; i++) {
        if (cfg->listen[i].family == l.family && cfg->listen[i].port == l.port
            && strcmp(cfg->listen[i].host, l.host) == 0)
            return fail(p, line, "duplicate listen address \"%.*s\"",
                        CONF_ECHO_MAX, value);
    }
    if (cfg->nlisten == CONFIG_MAX_LISTEN)
        return fail(p, line, "too many \"listen\" directives (at most %d)",
                    CONFIG_MAX_LISTEN);
    cfg->listen[cfg->nlisten++] = l;
    return 0;

bad:
    return fail(p, line, "invalid listen address \"%.*s\": %s",
                CONF_ECHO_MAX, value, why);
}

/*
 * An address list: the values joined with blanks (one may be a quoted list
 * itself) for cidr_parse_list, or the single word `none` for an empty list.
 */
static int set_cidr(struct parser *p, unsigned line, const struct directive *d,
                    char **val, int nval)
{
    struct cidr_list *l = (struct cidr_list *)(void *)((char *)p->cfg + d->off);
    char text[CONF_LINE_MAX + 1], why[128];
    size_t n = 0;
    if (nval == 1 && strcmp(val[0], "none") == 0) {
        l->n = 0;
        return 0;
    }
    for (int i = 0; i < nval; i++) {
        size_t k = strlen(val[i]);
        if (n + k + 1 > sizeof(text))
            return fail(p, line, "\"%s\" address list is too long", d->name);
        memcpy(text + n, val[i], k);
        n += k;
        text[n++] = ' ';
    }
    if (cidr_parse_list(l, text, n, why, sizeof(why)) < 0)
        return fail(p, line, "invalid \"%s\" address list: %s", d->name, why);
    return 0;
}

static int set_value(struct parser *p, unsigned line,
                     const struct directive *d, char **val, int nval)
{
    struct config *cfg = p->cfg;
    char *field = (char *)cfg + d->off;

    switch (d->type) {
    case D_LISTEN:
        return parse_listen(p, line, val[0]);
    case D_WORKERS:
        if (strcmp(val[0], "auto") == 0) {
            cfg->workers = online_cpus();
            cfg->workers_auto = 1;
            return 0;
        }
        cfg->workers_auto = 0;
        return set_number(p, line, d, val[0]);
    case D_DURATION_OFF:
        if (strcmp(val[0], "off") == 0) {
            *(uint64_t *)(void *)field = 0;
            return 0;
        }
        return set_number(p, line, d, val[0]);
    case D_INT: case D_U32: case D_SIZE: case D_DURATION:
        return set_number(p, line, d, val[0]);
    case D_PATH:
        if (val[0][0] == '\0')
            return fail(p, line, "empty path in \"%s\" directive", d->name);
        if (strlen(val[0]) >= PATH_MAX)
            return fail(p, line, "path in \"%s\" directive is too long", d->name);
        strcpy(field, val[0]);
        return 0;
    case D_LOG_LEVEL:
        if (log_level_parse(val[0]) >= 0) {
            cfg->log_level = log_level_parse(val[0]);
            return 0;
        }
        return fail(p, line, "invalid log level \"%.*s\" (expected alert, crit, "
                    "error, warn, notice, info or debug)", CONF_ECHO_MAX, val[0]);
    case D_FLAG:
        if (strcmp(val[0], "on") == 0 || strcmp(val[0], "off") == 0) {
            *(int *)(void *)field = val[0][1] == 'n';
            return 0;
        }
        return fail(p, line, "\"%s\" takes on or off, not \"%.*s\"", d->name,
                    CONF_ECHO_MAX, val[0]);
    case D_FSYNC:
        for (int k = CONFIG_FSYNC_NO; k <= CONFIG_FSYNC_ALWAYS; k++) {
            static const char *const names[] = { "no", "everysec", "always" };
            if (strcmp(val[0], names[k]) == 0) {
                cfg->history_fsync = k;
                return 0;
            }
        }
        return fail(p, line, "\"history_fsync\" takes always, everysec or no, not \"%.*s\"",
                    CONF_ECHO_MAX, val[0]);
    case D_AUTH:
        for (int k = CONFIG_AUTH_OFF; k <= CONFIG_AUTH_REQUIRED; k++) {
            static const char *const names[] = { "off", "optional", "required" };
            if (strcmp(val[0], names[k]) == 0) {
                cfg->auth = k;
                return 0;
            }
        }
        return fail(p, line, "\"auth\" takes off, optional or required, not \"%.*s\"",
                    CONF_ECHO_MAX, val[0]);
    case D_ORIGINS:
        for (int i = 0; i < nval; i++) {
            size_t n = strlen(val[i]);
            if (n == 0)
                return fail(p, line, "empty origin in \"origins\" directive");
            if (n >= sizeof(cfg->origins[0]))
                return fail(p, line, "origin \"%.*s...\" is longer than %zu bytes",
                            CONF_ECHO_MAX, val[i], sizeof(cfg->origins[0]) - 1);
            memcpy(cfg->origins[i], val[i], n + 1);
        }
        cfg->norigins = nval;
        return 0;
    case D_CIDR:
        return set_cidr(p, line, d, val, nval);
    case D_CLUSTER: {
        const char *why = NULL;
        if (strcmp(val[0], "off") == 0) {
            cfg->cluster = 0;
            return 0;
        }
        if (redis_url_parse(&cfg->cluster_url, val[0], strlen(val[0]), &why) < 0)
            return fail(p, line, "invalid \"cluster\" URL \"%.*s\": %s", CONF_ECHO_MAX, val[0],
                        why);
        cfg->cluster = 1;
        return 0;
    }
    case D_PREFIX: {
        size_t n = strlen(val[0]);
        if (n == 0)
            return fail(p, line, "\"%s\" must not be empty", d->name);
        if (n > CONFIG_PREFIX_MAX)
            return fail(p, line, "\"%s\" is longer than %d bytes", d->name, CONFIG_PREFIX_MAX);
        for (size_t i = 0; i < n; i++) {
            char c = val[0][i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("_-.:", c) != NULL))
                return fail(p, line, "\"%s\" takes letters, digits and _-.: only, not \"%.*s\"",
                            d->name, CONF_ECHO_MAX, val[0]);
        }
        memcpy(field, val[0], n + 1);
        return 0;
    }
    }
    return fail(p, line, "internal error: directive \"%s\"", d->name);
}

static int apply_directive(struct parser *p, unsigned line, struct line *l)
{
    const struct directive *d = NULL;
    size_t idx;
    for (idx = 0; idx < NDIRECTIVES; idx++) {
        if (strcmp(l->tok[0], directives[idx].name) == 0) {
            d = &directives[idx];
            break;
        }
    }
    if (d == NULL)
        return fail(p, line, "unknown directive \"%.*s\"", CONF_ECHO_MAX, l->tok[0]);
    if (d->type != D_LISTEN && p->seen[idx] != 0)
        return fail(p, line, "\"%s\" directive is duplicate (first on line %u)",
                    d->name, p->seen[idx]);
    p->seen[idx] = line;

    int nval = l->ntok - 1;
    int maxval = d->type == D_ORIGINS ? CONFIG_MAX_ORIGINS : d->type == D_CIDR ? CIDR_MAX : 1;
    if (nval == 0)
        return fail(p, line, "\"%s\" directive needs a value", d->name);
    if (nval > maxval) {
        if (maxval == 1)
            return fail(p, line, "\"%s\" directive takes one value, got %d",
                        d->name, nval);
        return fail(p, line, "\"%s\" directive takes at most %d values, got %d",
                    d->name, maxval, nval);
    }
    return set_value(p, line, d, l->tok + 1, nval);
}

/*
 * Split l->buf (NUL-terminated, no newline) into tokens in place. Blanks
 * separate tokens, '#' outside quotes ends the line, "..." is one token with
 * no escapes, and one trailing ';' on the last unquoted token is dropped.
 */
static int tokenize(struct parser *p, unsigned line, struct line *l)
{
    char *s = l->buf;
    char *last = NULL;
    int last_quoted = 0, done = 0;

    l->ntok = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\r')
            s++;
        if (*s == '\0' || *s == '#')
            break;
        char *tok;
        if (*s == '"') {
            tok = ++s;
            char *end = strchr(s, '"');
            if (end == NULL)
                return fail(p, line, "unterminated quoted string");
            *end = '\0';
            s = end + 1;
            if (*s != '\0' && *s != ' ' && *s != '\t' && *s != '\r'
                && *s != ';' && *s != '#')
                return fail(p, line, "unexpected \"%c\" after a quoted string", *s);
            last_quoted = 1;
        } else {
            tok = s;
            while (*s != '\0' && *s != ' ' && *s != '\t' && *s != '\r' && *s != '#')
                s++;
            /* A '#' right after a value ("4#note") still starts a comment. */
            done = *s == '\0' || *s == '#';
            *s++ = '\0';
            last_quoted = 0;
        }
        if (l->ntok < CONF_TOKENS_MAX)
            l->tok[l->ntok] = tok;
        l->ntok++;
        last = tok;
        if (done)
            break;
    }
    if (last != NULL && !last_quoted) {
        size_t n = strlen(last);
        if (n > 0 && last[n - 1] == ';') {
            last[n - 1] = '\0';
            if (n == 1)
                l->ntok--;
        }
    }
    return 0;
}

/* Directory of `file` as an absolute path; *canonical when realpath worked. */
static int anchor_dir(struct parser *p, char *dir, const char **base, int *canonical)
{
    char tmp[PATH_MAX];
    const char *slash = strrchr(p->file, '/');

    if (slash == NULL) {
        strcpy(tmp, ".");
        *base = p->file;
    } else if (slash == p->file) {
        strcpy(tmp, "/");
        *base = slash + 1;
    } else {
        if ((size_t)(slash - p->file) >= sizeof(tmp))
            return fail(p, 0, "path is too long");
        memcpy(tmp, p->file, (size_t)(slash - p->file));
        tmp[slash - p->file] = '\0';
        *base = slash + 1;
    }
    if (realpath(tmp, dir) != NULL) {
        *canonical = 1;
        return 0;
    }
    /* A file that only exists in memory (tests): anchor it without resolving. */
    *canonical = 0;
    if (tmp[0] == '/') {
        strcpy(dir, tmp);
        return 0;
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return fail(p, 0, "getcwd() failed: %s", strerror(errno));
    if (snprintf(dir, PATH_MAX, "%s/%s", cwd, tmp) >= PATH_MAX)
        return fail(p, 0, "path is too long");
    return 0;
}

/*
 * Make `path` (a PATH_MAX field) absolute against dir. When dir is canonical
 * (realpath, so no symlinks), leading "." and ".." of path are folded into
 * it lexically: that equals what the kernel would do. Later components are
 * kept, since a symlink there could make ".." mean something else.
 */
static int resolve(struct parser *p, unsigned line, const char *name,
                   char *path, const char *dir, int canonical)
{
    char out[PATH_MAX];
    const char *rel = path;

    if (path[0] == '/')
        return 0;
    strcpy(out, dir);
    while (canonical) {
        if (rel[0] == '.' && (rel[1] == '/' || rel[1] == '\0')) {
            rel += 1;
        } else if (rel[0] == '.' && rel[1] == '.' && (rel[2] == '/' || rel[2] == '\0')) {
            char *cut = strrchr(out, '/');
            if (cut == out)
                out[1] = '\0';
            else if (cut != NULL)
                *cut = '\0';
            rel += 2;
        } else {
            break;
        }
        while (*rel == '/')
            rel++;
    }
    size_t n = strlen(out);
    int w = snprintf(out + n, sizeof(out) - n, "%s%s",
                     (*rel == '\0' || out[n - 1] == '/') ? "" : "/", rel);
    if (w < 0 || (size_t)w >= sizeof(out) - n)
        return fail(p, line, "\"%s\" path is too long once made absolute", name);
    strcpy(path, out);
    return 0;
}

static unsigned seen_line(struct parser *p, const char *name)
{
    for (size_t i = 0; i < NDIRECTIVES; i++)
        if (strcmp(directives[i].name, name) == 0)
            return p->seen[i];
    return 0;
}

/* Checks that need the whole file: defaults, paths, cross-field limits. */
/*
 * A secret (the token key, the API key): the file's bytes, one trailing
 * newline stripped (what `echo` or an editor leaves), into KEY[0..cap),
 * at least MIN bytes. A file other users can read is refused: a leaked key
 * lets anyone sign tokens or call the API.
 */
static int load_secret(struct parser *p, unsigned line, const char *path, uint8_t *key,
                       size_t cap, size_t *key_len, size_t min)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return fail(p, line, "\"%s\": %s", path,
                    strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = fail(p, line, "\"%s\": %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = fail(p, line, "\"%s\" is not a regular file", path);
    else if (st.st_mode & S_IROTH)
        rc = fail(p, line, "\"%s\" is world-readable (chmod o-r it)",
                  path);
    size_t len = 0;
    while (rc == 0 && len < cap) {
        ssize_t r = read(fd, key + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = fail(p, line, "\"%s\": %s", path,
                      strerror(errno));
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    char extra;
    if (rc == 0 && len == cap && read(fd, &extra, 1) > 0)
        rc = fail(p, line, "\"%s\" is longer than %zu bytes",
                  path, cap);
    close(fd);
    if (rc < 0)
        return rc;
    if (len > 0 && key[len - 1] == '\n')
        len--;
    if (len == 0)
        return fail(p, line, "\"%s\" is empty", path);
    if (len < min)
        return fail(p, line, "\"%s\" holds %zu bytes; the key needs at least %zu", path,
                    len, min);
    *key_len = len;
    return 0;
}

static int finish(struct parser *p)
{
    struct config *cfg = p->cfg;
    char dir[PATH_MAX];
    const char *base = "";
    int canonical;

    if (anchor_dir(p, dir, &base, &canonical) < 0)
        return -1;
    size_t n = strlen(dir);
    if (snprintf(cfg->path, sizeof(cfg->path), "%s%s%s", dir,
                 dir[n - 1] == '/' ? "" : "/", base) >= (int)sizeof(cfg->path))
        return fail(p, 0, "path is too long");

    if (resolve(p, seen_line(p, "web_root"), "web_root", cfg->web_root, dir, canonical) < 0
        || resolve(p, seen_line(p, "pid_file"), "pid_file", cfg->pid_file, dir, canonical) < 0)
        return -1;
    if (strcmp(cfg->error_log, "stderr") != 0
        && resolve(p, seen_line(p, "error_log"), "error_log", cfg->error_log, dir, canonical) < 0)
        return -1;
    /* Cluster mode keeps history in Redis: no local journal (README "Scaling out"). */
    if (strcmp(cfg->history_file, "off") == 0 || cfg->cluster)
        cfg->history_file[0] = '\0';
    else if (resolve(p, seen_line(p, "history_file"), "history_file", cfg->history_file, dir,
                     canonical) < 0)
        return -1;
    if (strcmp(cfg->access_log, "off") == 0)
        cfg->access_log[0] = '\0';
    if (cfg->access_log[0] != '\0') {
        unsigned line = seen_line(p, "access_log");
        if (resolve(p, line, "access_log", cfg->access_log, dir, canonical) < 0)
            return -1;
        /* Opened (and created) here, as the workers will, so -t and a reload catch it. */
        int fd = access_log_open(cfg->access_log);
        if (fd < 0)
            return fail(p, line, "\"access_log\" \"%s\": %s", cfg->access_log, strerror(-fd));
        close(fd);
    }
    if (cfg->auth != CONFIG_AUTH_OFF) {
        unsigned line = seen_line(p, "auth_secret_file");
        if (cfg->auth_secret_file[0] == '\0')
            return fail(p, seen_line(p, "auth"), "\"auth\" needs \"auth_secret_file\"");
        if (resolve(p, line, "auth_secret_file", cfg->auth_secret_file, dir, canonical) < 0 ||
            load_secret(p, line, cfg->auth_secret_file, cfg->auth_key, sizeof cfg->auth_key,
                        &cfg->auth_key_len, CONFIG_AUTH_KEY_MIN) < 0)
            return -1;
    }
    if (cfg->api_key_file[0] != '\0') {
        unsigned line = seen_line(p, "api_key_file");
        if (resolve(p, line, "api_key_file", cfg->api_key_file, dir, canonical) < 0 ||
            load_secret(p, line, cfg->api_key_file, cfg->api_key, sizeof cfg->api_key,
                        &cfg->api_key_len, CONFIG_API_KEY_MIN) < 0)
            return -1;
    }

    if (cfg->cluster_password_file[0] != '\0') {
        unsigned line = seen_line(p, "cluster_password_file");
        if (!cfg->cluster)
            return fail(p, line, "\"cluster_password_file\" needs \"cluster\"");
        struct redis_url *u = &cfg->cluster_url;
        if (resolve(p, line, "cluster_password_file", cfg->cluster_password_file, dir,
                    canonical) < 0 ||
            load_secret(p, line, cfg->cluster_password_file, (uint8_t *)u->password,
                        REDIS_URL_SECRET_MAX, &u->password_len, 1) < 0)
            return -1;
        u->password[u->password_len] = '\0';
    }

    if (cfg->nlisten == 0) {
        cfg->listen[0] = (struct config_listen){ .family = AF_INET, .port = 8000 };
        strcpy(cfg->listen[0].host, "127.0.0.1");
        cfg->nlisten = 1;
    }

    if (cfg->max_text > cfg->max_message) {
        unsigned a = seen_line(p, "max_text"), b = seen_line(p, "max_message");
        char t[32], m[32];
        format_size(t, sizeof(t), cfg->max_text);
        format_size(m, sizeof(m), cfg->max_message);
        return fail(p, a > b ? a : b, "\"max_text\" (%s) must not exceed "
                    "\"max_message\" (%s)", t, m);
    }
    return 0;
}

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    /* Left empty: listen (127.0.0.1:8000 is added only when the file has none). */
    cfg->workers = online_cpus();
    cfg->workers_auto = 1;
    cfg->max_connections = 10000;
    cfg->max_connections_per_ip = 256;
    cfg->ip_publish_rate = 64 * KIB;
    /* Relative on purpose: config_parse anchors them to the file's folder. */
    strcpy(cfg->web_root, "../web");
    strcpy(cfg->pid_file, "../run/wschat.pid");
    strcpy(cfg->error_log, "stderr");
    cfg->log_level = LOG_LVL_INFO;
    cfg->handshake_timeout_ms = 10 * SEC;
    cfg->idle_timeout_ms = 60 * SEC;
    cfg->close_timeout_ms = 5 * SEC;
    cfg->shutdown_timeout_ms = 10 * SEC;
    cfg->max_request_head = 8 * KIB;
    cfg->max_message = MIB;
    cfg->max_reassembly_memory = 64 * MIB;
    cfg->message_timeout_ms = 30 * SEC;
    cfg->max_send_queue = 4 * MIB;
    cfg->max_text = 4 * KIB;
    cfg->history_size = 100;
    cfg->rate_limit = 20;
    cfg->presence_events_max = 100;
    cfg->max_rooms = 65536;
    cfg->presence_interval_ms = 1000;
    cfg->rate_limit_burst = 40;
    cfg->ring_size = 16 * MIB;
    cfg->reload_handoff = 1;
    cfg->auth = CONFIG_AUTH_OFF;
    cfg->auth_leeway_ms = 30 * SEC;
    cfg->worker_watchdog_ms = 10 * SEC;
    /* real_ip_from stays empty: no proxy is trusted. */
    static const char stats_allow[] = "127.0.0.1/32 ::1/128";
    cidr_parse_list(&cfg->stats_allow, stats_allow, sizeof stats_allow - 1, NULL, 0);
    cfg->api_allow = cfg->stats_allow;
    cfg->max_api_body = 64 * KIB;
    strcpy(cfg->history_file, "../data/history");
    cfg->history_fsync = CONFIG_FSYNC_EVERYSEC;
    cfg->history_keep = 256 * MIB;
    strcpy(cfg->cluster_prefix, "wschat");
    cfg->cluster_timeout_ms = 2 * SEC;
}

int config_parse(struct config *cfg, const char *text, size_t len,
                 const char *file, char *err, size_t errlen)
{
    struct parser p = { .cfg = cfg, .file = file ? file : "(config)",
                        .err = err, .errlen = errlen };
    struct line *l = malloc(sizeof(*l));
    if (l == NULL)
        return fail(&p, 0, "out of memory");
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    config_defaults(cfg);

    /* Editors on some systems save a UTF-8 byte order mark; it is not text. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        text += 3;
        len -= 3;
    }
    int rc = 0;
    unsigned lineno = 0;
    size_t pos = 0;
    while (rc == 0 && pos < len) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl != NULL);
        lineno++;
        if (n > 0 && start[n - 1] == '\r')
            n--;
        if (n > CONF_LINE_MAX)
            rc = fail(&p, lineno, "line is longer than %d bytes", CONF_LINE_MAX);
        else if (memchr(start, '\0', n) != NULL)
            rc = fail(&p, lineno, "line contains a NUL byte");
        if (rc < 0)
            break;
        memcpy(l->buf, start, n);
        l->buf[n] = '\0';
        rc = tokenize(&p, lineno, l);
        if (rc == 0 && l->ntok > 0)
            rc = apply_directive(&p, lineno, l);
    }
    free(l);
    return rc < 0 ? -1 : finish(&p);
}

int config_load(struct config *cfg, const char *file, char *err, size_t errlen)
{
    struct parser p = { .cfg = cfg, .file = file, .err = err, .errlen = errlen };
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(&p, 0, "%s", strerror(errno));

    /* Read to EOF rather than trusting st_size: /proc files and pipes lie. */
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : fail(&p, 0, "out of memory");
    while (rc == 0) {
        if (len == cap) {
            /* One spare byte past the limit tells "exactly 1 MiB" from more. */
            size_t ncap = cap * 2 > CONF_FILE_MAX ? CONF_FILE_MAX + 1 : cap * 2;
            if (cap > CONF_FILE_MAX) {
                rc = fail(&p, 0, "file is larger than %d bytes", CONF_FILE_MAX);
                break;
            }
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                rc = fail(&p, 0, "out of memory");
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = fail(&p, 0, "%s", strerror(errno));
        else if (r == 0)
            break;
        else
            len += (size_t)r;
    }
    close(fd);
    if (rc == 0)
        rc = config_parse(cfg, buf, len, file, err, errlen);
    free(buf);
    return rc;
}
