/*
 * config: parse wschat.conf into an immutable struct config.
 *
 * Format: one directive per line, `name value...`, `#` starts a comment (to
 * end of line), an optional trailing `;` is accepted. Sizes take k/m/g
 * suffixes (powers of 1024), durations ms/s/m/h (bare number = seconds).
 * Relative paths resolve against the directory holding the config file.
 * Every error is reported as "FILE:LINE: what is wrong" in the caller's
 * buffer; nothing is printed from here. The master parses once per
 * generation (start, SIGHUP); workers only read the result.
 */
#ifndef WSM_CONFIG_H
#define WSM_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <limits.h>

#include "cidr.h"
#include "redis_url.h"

#define CONFIG_MAX_LISTEN   8
#define CONFIG_MAX_ORIGINS  32
#define CONFIG_MAX_WORKERS  64
#define CONFIG_ERR_LEN      (PATH_MAX + 256)

struct config_listen {
    int      family;            /* AF_INET or AF_INET6 */
    char     host[64];          /* numeric address without brackets */
    uint16_t port;              /* 0 = kernel picks (tests) */
};

/* Who may join /chat: anyone, a valid token when one is given, a valid token only. */
enum config_auth { CONFIG_AUTH_OFF = 0, CONFIG_AUTH_OPTIONAL = 1, CONFIG_AUTH_REQUIRED = 2 };
/* history_fsync, in Redis's appendfsync terms. */
enum config_fsync { CONFIG_FSYNC_NO = 0, CONFIG_FSYNC_EVERYSEC = 1, CONFIG_FSYNC_ALWAYS = 2 };
#define CONFIG_AUTH_KEY_MAX 1024
#define CONFIG_AUTH_KEY_MIN 32      /* HS256 wants a key of at least the hash's size */
#define CONFIG_API_KEY_MIN  16      /* a bearer key: long enough not to be guessed */
#define CONFIG_PREFIX_MAX   64

struct config {
    char     path[PATH_MAX];    /* the file this was read from (absolute) */
    struct config_listen listen[CONFIG_MAX_LISTEN];
    int      nlisten;
    int      workers;           /* resolved: "auto" becomes online CPUs */
    int      workers_auto;      /* 1 when the file said "auto" */
    int      max_connections;   /* per worker */
    uint32_t max_connections_per_ip;  /* server-wide per client address, 0 = off */
    uint64_t ip_publish_rate;   /* bytes/s one address may publish into the ring, 0 = off */
    char     web_root[PATH_MAX];
    char     pid_file[PATH_MAX];
    char     error_log[PATH_MAX];   /* absolute path, or "stderr" */
    char     access_log[PATH_MAX];  /* absolute path, or "" (off) */
    int      log_level;         /* enum log_level (log.h) */
    uint64_t handshake_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t close_timeout_ms;      /* wait for the peer's close reply */
    uint64_t shutdown_timeout_ms;   /* drain period of an old worker */
    uint64_t max_request_head;      /* bytes of request line + headers */
    uint64_t max_message;           /* reassembled WebSocket message */
    uint64_t max_reassembly_memory; /* every open message of a worker, summed */
    uint64_t message_timeout_ms;    /* to finish a fragmented message */
    uint64_t max_send_queue;        /* bytes queued per connection */
    uint64_t max_text;              /* chat message text */
    uint32_t history_size;          /* messages replayed on join */
    uint32_t rate_limit;            /* chat inputs per second per connection, 0 = off */
    uint32_t presence_events_max;   /* rooms up to this size get join/leave events */
    uint32_t max_rooms;             /* entries of the shared room table */
    uint64_t presence_interval_ms;  /* larger rooms: a presence count at most this often */
    uint32_t rate_limit_burst;      /* inputs allowed at once above the rate */
    uint64_t ring_size;             /* bytes of the shared ring */
    char     origins[CONFIG_MAX_ORIGINS][256];
    int      norigins;              /* 0 = any origin accepted */
    int      reload_handoff;        /* pass live WebSockets to new workers on reload */
    int      auth;                  /* enum config_auth */
    char     auth_secret_file[PATH_MAX];
    uint8_t  auth_key[CONFIG_AUTH_KEY_MAX];  /* the file's bytes, read at load */
    size_t   auth_key_len;
    uint64_t auth_leeway_ms;        /* accepted past a token's exp */
    uint64_t worker_watchdog_ms;    /* kill a worker whose loop stalls this long, 0 = off */
    struct cidr_list real_ip_from;  /* trusted proxies (n == 0: none): the client
                                       of their requests is X-Forwarded-For's */
    struct cidr_list stats_allow;   /* client addresses /stats and /metrics answer */
    char     api_key_file[PATH_MAX];    /* "": no /api/ */
    uint8_t  api_key[CONFIG_AUTH_KEY_MAX];
    size_t   api_key_len;
    struct cidr_list api_allow;     /* client addresses /api/ answers */
    uint64_t max_api_body;          /* bytes of an /api/ request body */
    char     history_file[PATH_MAX];    /* the journal's folder, absolute; "": off */
    int      history_fsync;         /* enum config_fsync */
    uint64_t history_keep;          /* bytes of journal segments kept */
    /* Cluster mode (cluster.h): rooms shared with other nodes through Redis. */
    int      cluster;               /* 1: on (history_file is then not used) */
    struct redis_url cluster_url;   /* password from the URL or cluster_password_file */
    char     cluster_password_file[PATH_MAX];
    char     cluster_prefix[CONFIG_PREFIX_MAX + 1];    /* the Redis key namespace */
    uint64_t cluster_timeout_ms;    /* connect or reply later than this: the link is down */
};

/* Fill every field with its documented default (see conf/wschat.conf). */
void config_defaults(struct config *cfg);

/*
 * Read and validate FILE. Returns 0 and a complete cfg, or -1 with
 * "FILE:LINE: message" (or "FILE: message" when no line applies) in err.
 * cfg is unspecified after a failure.
 */
int config_load(struct config *cfg, const char *file, char *err, size_t errlen);

/*
 * Same as config_load on an in-memory text; `file` names it in errors and
 * its directory anchors relative paths. Used by config_load and the tests.
 */
int config_parse(struct config *cfg, const char *text, size_t len,
                 const char *file, char *err, size_t errlen);

/* "16k" → 16384; returns 0, or -1 on a malformed or overflowing value. */
int config_parse_size(const char *s, uint64_t *out);
/* "1500ms", "30s", "5m", "1h", "10" (seconds) → milliseconds; 0 or -1. */
int config_parse_duration(const char *s, uint64_t *out_ms);

#endif
