/*
 * cluster: the bridge process (see cluster.h).
 *
 * Two links: `publish` carries the outbox batches and the presence
 * exchange, `stream` the tail load and the blocking reads, so a read
 * waiting for new entries never holds a publish back. One batch is in
 * flight at a time: a batch that fails is sent again before anything after
 * it, so the stream keeps the outbox's order.
 */
#include "cluster.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "chat_publish.h"
#include "cluster_gate.h"
#include "config.h"
#include "lock.h"
#include "log.h"
#include "notify.h"
#include "redis_link.h"
#include "ring.h"
#include "room_table.h"
#include "shm.h"
#include "worker.h"

#define BATCH_MAX        256            /* events per script call */
#define BATCH_HEAD       10             /* EVAL, script, key count, 3 keys, 4 ARGV */
#define BATCH_BYTES      (1u << 20)     /* their bytes, about */
#define READ_COUNT       512            /* stream entries per read */
#define BLOCK_MS         1000           /* a blocking read's wait */
#define LOAD_PAGE        512            /* entries per page of the tail load */
#define LINK_OUT         (4u << 20)
#define LINK_TOKENS      (READ_COUNT * 16 + 64)
#define BACKOFF_BASE_MS  100
#define BACKOFF_CAP_MS   5000
#define STOP_MS          3000           /* to send the rest of the outbox on a stop */
#define NODE_TTL_MS      (7 * 24 * 3600 * 1000ull)   /* a node's dedup key */
#define KEY_MAX          (CONFIG_PREFIX_MAX + 48)

/* Tags of the bridge's commands. */
enum { T_PING, T_EPOCH, T_BATCH, T_BUMP, T_PRESENCE, T_TOP, T_LOAD, T_READ };

/*
 * One batch: keep the events of node ARGV[3]'s outbox after the last one
 * appended before (KEYS[3]), number them on from the counter (KEYS[2]),
 * which starts at the clock x 1000 when missing (a new cluster, or a Redis
 * that lost its data: ids still rise) and never below the node's newest id
 * (ARGV[2]), and append them to the stream (KEYS[1]) with one Redis time.
 * Returns how many were appended.
 */
static const char BATCH_LUA[] =
    "local done = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
    "local t = redis.call('TIME')\n"
    "local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local c = redis.call('GET', KEYS[2])\n"
    "if c then c = tonumber(c) else c = ts * 1000 end\n"
    "if c < tonumber(ARGV[2]) then c = tonumber(ARGV[2]) end\n"
    "local last, n = done, 0\n"
    "for i = 5, #ARGV, 5 do\n"
    "  local oid = tonumber(ARGV[i])\n"
    "  if oid > done then\n"
    "    c = c + 1\n"
    "    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], string.format('%d-0', c),\n"
    "               'k', ARGV[i+1], 'r', ARGV[i+2], 't', ARGV[i+3], 'b', ARGV[i+4], 'ts', ts)\n"
    "    last, n = oid, n + 1\n"
    "  end\n"
    "end\n"
    "if n > 0 then\n"
    "  redis.call('SET', KEYS[2], string.format('%d', c))\n"
    "  redis.call('SET', KEYS[3], string.format('%d', last), 'PX', ARGV[4])\n"
    "end\n"
    "return n\n";

/*
 * After the stream went backwards: the counter goes on above every id this
 * node saw, and a missing one from the clock as in a batch, so that every
 * node sees the ids jump (a gap) rather than go on as if nothing was lost.
 */
static const char BUMP_LUA[] =
    "local c = redis.call('GET', KEYS[1])\n"
    "if not c then\n"
    "  local t = redis.call('TIME')\n"
    "  c = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1000\n"
    "else c = tonumber(c) end\n"
    "if c < tonumber(ARGV[1]) then c = tonumber(ARGV[1]) end\n"
    "redis.call('SET', KEYS[1], string.format('%d', c))\n"
    "return c\n";

/*
 * The cluster's epoch: a random value the first node sets; a Redis that
 * lost its data has none (or another's), whichever link notices first.
 * Returns {1 if it was there, the value}.
 */
static const char EPOCH_LUA[] =
    "local e = redis.call('GET', KEYS[1])\n"
    "if e then return {1, e} end\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "return {0, ARGV[1]}\n";

/*
 * Presence: replace this node's counts (KEYS[1], pairs from ARGV[4]), keep
 * it alive in the node set (KEYS[2]) for ARGV[2] ms, and return the other
 * live nodes' counts summed per room (their hashes are ARGV[3] .. node).
 */
static const char PRESENCE_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local ttl = tonumber(ARGV[2])\n"
    "redis.call('DEL', KEYS[1])\n"
    "for i = 4, #ARGV, 2000 do\n"
    "  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 1999, #ARGV)))\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "redis.call('ZADD', KEYS[2], now, ARGV[1])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)\n"
    "local sums, rooms = {}, {}\n"
    "for _, node in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n"
    "  if node ~= ARGV[1] then\n"
    "    local kv = redis.call('HGETALL', ARGV[3] .. node)\n"
    "    for j = 1, #kv, 2 do\n"
    "      if sums[kv[j]] == nil then rooms[#rooms + 1] = kv[j]; sums[kv[j]] = 0 end\n"
    "      sums[kv[j]] = sums[kv[j]] + tonumber(kv[j + 1])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local out = {}\n"
    "for _, r in ipairs(rooms) do out[#out + 1] = r; out[#out + 1] = sums[r] end\n"
    "return out\n";

/* One stream entry as read, its values pointing into the link's input. */
struct entry {
    uint64_t id;
    int64_t ts;
    int kind;
    const char *room, *type, *body;
    size_t room_len, type_len, body_len;
};

/* An entry of the tail load, copied: the page it came in is gone by the time it is written. */
struct held {
    uint64_t id;
    int64_t ts;
    int kind;
    char room[RING_ROOM_MAX];
    uint8_t room_len;
    char type[16];
    char *body;
    size_t body_len;
};

struct bridge {
    const struct config *cfg;
    struct shm_segment *seg;
    const int *eventfds;
    struct redis_link pub, sub;
    struct backoff pub_bo, sub_bo;
    uint64_t pub_retry_ms, sub_retry_ms;
    int pub_ready;              /* the publish link answered its first PING */
    int pub_lost, sub_lost;     /* down since it was up: log the recovery */
    char k_log[KEY_MAX], k_seq[KEY_MAX], k_node[KEY_MAX], k_nodes[KEY_MAX];
    char k_online[KEY_MAX], k_online_me[KEY_MAX], k_epoch[KEY_MAX];
    char epoch[24];             /* the cluster's epoch as this node first saw it, "" */
    int loss_told;              /* this outage's data loss is logged at alert (once) */
    char node[17];
    char maxlen[24];
    /* outbox */
    struct ring *obox;
    uint64_t out_sent;          /* outbox position after the batch in flight */
    int batch_inflight;
    uint8_t *bbuf;              /* the batch's event bytes */
    size_t bbuf_cap;
    /* stream */
    uint64_t last_id;           /* newest id in this node's ring from the stream */
    int reading;                /* a read, top check or load page is outstanding */
    int loaded;                 /* the tail load is done (once per process life) */
    int backwards;              /* the stream went below last_id: drop ids up to it */
    uint64_t load_newest;       /* the tail load's newest id */
    struct held *held;
    size_t nheld, held_cap;
    uint64_t held_bytes;
    /* presence */
    uint64_t presence_due_ms;
    int presence_inflight;
    uint8_t *mark;              /* room table entries the last exchange named (cap bytes) */
    char (*pnames)[24];         /* count texts of one presence exchange */
    const char **pargv;
    size_t *plens;
    size_t pcap;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t random64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v)
        v = wall_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    return v;
}

static void stat_add(uint64_t *c, uint64_t n)
{
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

uint64_t cluster_outbox_bytes(const struct config *cfg)
{
    /* Eight of the largest events (every text byte escaped six times) at least. */
    uint64_t need = 8 * (cfg->max_text * 6 + 8192);
    return need < (4u << 20) ? (4u << 20) : need > ((uint64_t)1 << 32) ? (uint64_t)1 << 32 : need;
}

void cluster_prepare(const struct config *cfg, struct shm_segment *seg)
{
    (void)cfg;
    seg->cluster.on = 1;
}

/* ---- parsing replies -------------------------------------------------------- */

static int is_value(const struct resp_event *t)
{
    return t->kind == RESP_EV_VALUE;
}

static int value_is(const struct resp_event *t, const char *s)
{
    size_t n = strlen(s);
    return is_value(t) && t->len == n && memcmp(t->data, s, n) == 0;
}

/* "123-0" (or "123") into *ID: 0 or -1. */
static int parse_id(const char *s, size_t n, uint64_t *id)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0 || (i < n && s[i] != '-'))
        return -1;
    *id = v;
    return 0;
}

static int64_t parse_i64(const char *s, size_t n)
{
    int64_t v = 0;
    for (size_t i = 0; i < n && s[i] >= '0' && s[i] <= '9' && v < INT64_MAX / 10; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/*
 * The stream entry whose two-element header is TOK[*I]: its id and fields.
 * *I moves past it. 0, or -1 for something this bridge did not write.
 */
static int parse_entry(const struct resp_event *tok, size_t ntok, size_t *i, struct entry *e)
{
    size_t k = *i;
    memset(e, 0, sizeof *e);
    if (k + 2 >= ntok || tok[k].kind != RESP_EV_BEGIN || tok[k].integer != 2 ||
        !is_value(&tok[k + 1]) || tok[k + 2].kind != RESP_EV_BEGIN)
        return -1;
    int bad = parse_id(tok[k + 1].data, tok[k + 1].len, &e->id) < 0;
    int64_t nf = tok[k + 2].integer;
    k += 3;
    if (nf < 0 || (size_t)nf > ntok - k)
        return -1;
    for (int64_t f = 0; f + 1 < nf; f += 2, k += 2) {
        const struct resp_event *name = &tok[k], *val = &tok[k + 1];
        if (!is_value(name) || !is_value(val))
            return -1;
        if (value_is(name, "k"))
            e->kind = (int)parse_i64(val->data, val->len);
        else if (value_is(name, "r")) {
            e->room = val->data;
            e->room_len = val->len;
        } else if (value_is(name, "t")) {
            e->type = val->data;
            e->type_len = val->len;
        } else if (value_is(name, "b")) {
            e->body = val->data;
            e->body_len = val->len;
        } else if (value_is(name, "ts"))
            e->ts = parse_i64(val->data, val->len);
    }
    if (nf % 2)
        k++;
    *i = k;
    if (bad || e->type == NULL || e->type_len == 0 || e->type_len >= 16 || e->body == NULL ||
        e->room_len > RING_ROOM_MAX)
        return -1;
    return 0;
}

/* ---- the stream: into the ring -------------------------------------------------- */

static void wake_workers(struct bridge *b)
{
    notify_all_except(b->seg, b->eventfds, -1);
}

static void write_event(struct bridge *b, uint64_t id, int64_t ts, int kind, const char *room,
                        size_t room_len, const char *type, size_t type_len, const char *body,
                        size_t body_len)
{
    char t[16];
    memcpy(t, type, type_len);
    t[type_len] = '\0';
    const struct chat_remote_event ev = {
        .kind = kind, .room = room, .room_len = room_len, .type = t,
        .body = body, .body_len = body_len, .id = id, .ts_ms = ts,
    };
    int64_t rc = chat_publish_remote(b->seg, &ev);
    if (rc < 0)
        log_write(LOG_LVL_ALERT, (int)-rc, "cluster: event %llu (%zu bytes) not put into the ring",
                  (unsigned long long)id, body_len);
}

/* Entry E came next from the stream: into the ring, after a gap entry if ids were skipped. */
static void take_entry(struct bridge *b, const struct entry *e)
{
    if (e->id <= b->last_id) {
        if (b->backwards) {
            /* The stream went below what this node holds: these ids mean other events now. */
            stat_add(&b->seg->cluster.gaps, 1);
            return;
        }
        return;     /* already taken (a read that overlapped) */
    }
    if (b->last_id != 0 && e->id > b->last_id + 1) {
        log_write(LOG_LVL_WARN, 0, "cluster: ids %llu..%llu are not in the stream: gap",
                  (unsigned long long)b->last_id + 1, (unsigned long long)e->id - 1);
        stat_add(&b->seg->cluster.gaps, 1);
        if (chat_publish_gap(b->seg, e->id - 1) < 0)
            log_write(LOG_LVL_ALERT, 0, "cluster: gap entry %llu not written",
                      (unsigned long long)e->id - 1);
    }
    b->backwards = 0;
    write_event(b, e->id, e->ts, e->kind, e->room, e->room_len, e->type, e->type_len, e->body,
                e->body_len);
    b->last_id = e->id;
    __atomic_store_n(&b->seg->cluster.last_id, e->id, __ATOMIC_RELAXED);
    int64_t lag = (int64_t)wall_ms() - e->ts;
    __atomic_store_n(&b->seg->cluster.lag_ms, lag < 0 ? 0 : lag, __ATOMIC_RELAXED);
    stat_add(&b->seg->cluster.received, 1);
}

static void send_read(struct bridge *b, uint64_t now)
{
    char count[12], block[12], from[24];
    snprintf(count, sizeof count, "%d", READ_COUNT);
    snprintf(block, sizeof block, "%d", BLOCK_MS);
    snprintf(from, sizeof from, "%llu-0", (unsigned long long)b->last_id);
    const char *argv[] = { "XREAD", "COUNT", count, "BLOCK", block, "STREAMS", b->k_log, from };
    size_t lens[8];
    for (int i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    /* The tag's argument is when it was sent: a reply that reaches the end dates from then. */
    if (redis_link_command(&b->sub, 8, argv, lens, T_READ, now, BLOCK_MS, now) == 0)
        b->reading = 1;
}

/* A page of the tail load: entries below BEFORE (0: from the newest). */
static void send_load(struct bridge *b, uint64_t before, uint64_t now)
{
    char end[28], count[12];
    if (before == 0)
        snprintf(end, sizeof end, "+");
    else
        snprintf(end, sizeof end, "(%llu-0", (unsigned long long)before);
    snprintf(count, sizeof count, "%d", LOAD_PAGE);
    const char *argv[] = { "XREVRANGE", b->k_log, end, "-", "COUNT", count };
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    if (redis_link_command(&b->sub, 6, argv, lens, T_LOAD, before, 0, now) == 0)
        b->reading = 1;
}

static void hold_clear(struct bridge *b)
{
    for (size_t i = 0; i < b->nheld; i++)
        free(b->held[i].body);
    b->nheld = 0;
    b->held_bytes = 0;
}

static int hold(struct bridge *b, const struct entry *e)
{
    if (b->nheld == b->held_cap) {
        size_t cap = b->held_cap ? b->held_cap * 2 : 1024;
        struct held *h = realloc(b->held, cap * sizeof *h);
        if (h == NULL)
            return -ENOMEM;
        b->held = h;
        b->held_cap = cap;
    }
    struct held *h = &b->held[b->nheld];
    h->body = malloc(e->body_len ? e->body_len : 1);
    if (h->body == NULL)
        return -ENOMEM;
    memcpy(h->body, e->body, e->body_len);
    h->body_len = e->body_len;
    h->id = e->id;
    h->ts = e->ts;
    h->kind = e->kind;
    memcpy(h->room, e->room, e->room_len);
    h->room_len = (uint8_t)e->room_len;
    memcpy(h->type, e->type, e->type_len);
    h->type[e->type_len] = '\0';
    b->nheld++;
    b->held_bytes += e->body_len + 128;
    return 0;
}

/* The tail is loaded: into the ring, oldest first; /chat may be served from now on. */
static void finish_load(struct bridge *b, uint64_t now)
{
    uint64_t newest = b->load_newest;
    for (size_t i = b->nheld; i-- > 0;) {
        const struct held *h = &b->held[i];
        if (h->kind == RING_KIND_MESSAGE)
            write_event(b, h->id, h->ts, h->kind, h->room, h->room_len, h->type,
                        strlen(h->type), h->body, h->body_len);
    }
    log_write(LOG_LVL_NOTICE, 0, "cluster: loaded %zu events of history from %s (up to id %llu)",
              b->nheld, b->k_log, (unsigned long long)newest);
    hold_clear(b);
    if (newest > b->last_id)
        b->last_id = newest;
    __atomic_store_n(&b->seg->cluster.last_id, b->last_id, __ATOMIC_RELAXED);
    b->loaded = 1;
    __atomic_store_n(&b->seg->cluster.synced, 1u, __ATOMIC_RELEASE);
    wake_workers(b);
    send_read(b, now);
}

static void on_load(struct bridge *b, const struct resp_event *tok, size_t ntok, uint64_t now)
{
    if (ntok == 0 || tok[0].kind != RESP_EV_BEGIN) {
        if (ntok > 0 && tok[0].type == RESP_ERROR)
            log_write(LOG_LVL_ALERT, 0, "cluster: XREVRANGE failed: %.*s", (int)tok[0].len,
                      tok[0].data);
        redis_link_down(&b->sub, "XREVRANGE failed");
        return;
    }
    int64_t n = tok[0].integer;
    size_t i = 1;
    uint64_t oldest = 0;
    for (int64_t k = 0; k < n; k++) {
        struct entry e;
        if (parse_entry(tok, ntok, &i, &e) < 0) {
            redis_link_down(&b->sub, "an entry of the stream this bridge did not write");
            return;
        }
        oldest = e.id;
        /* The newest id of all, presence included: the read goes on after it. */
        if (e.id > b->load_newest)
            b->load_newest = e.id;
        if (e.kind == RING_KIND_MESSAGE && hold(b, &e) < 0) {
            redis_link_down(&b->sub, "out of memory loading the stream's tail");
            return;
        }
    }
    if (n < LOAD_PAGE || b->held_bytes >= b->seg->ring.capacity)
        finish_load(b, now);
    else
        send_load(b, oldest, now);
}

/* The counter past this node's newest id (BUMP_LUA). */
static void send_bump(struct bridge *b, uint64_t now)
{
    char floor[24];
    snprintf(floor, sizeof floor, "%llu", (unsigned long long)b->last_id);
    const char *argv[] = { "EVAL", BUMP_LUA, "1", b->k_seq, floor };
    size_t lens[5];
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    redis_link_command(&b->pub, 5, argv, lens, T_BUMP, 0, 0, now);
}

static void on_top(struct bridge *b, const struct resp_event *tok, size_t ntok, uint64_t now)
{
    uint64_t top = 0;
    if (ntok == 0 || tok[0].kind != RESP_EV_BEGIN) {
        redis_link_down(&b->sub, "XREVRANGE failed");
        return;
    }
    if (tok[0].integer > 0) {
        size_t i = 1;
        struct entry e;
        if (parse_entry(tok, ntok, &i, &e) == 0)
            top = e.id;
    }
    if (top < b->last_id) {
        log_write(b->loss_told ? LOG_LVL_WARN : LOG_LVL_ALERT, 0, "cluster: Redis lost data: "
                  "the stream %s ends at id %llu, below the %llu this node has; members get "
                  "a gap", b->k_log, (unsigned long long)top, (unsigned long long)b->last_id);
        b->loss_told = 1;
        stat_add(&b->seg->cluster.gaps, 1);
        /* Ids go on above what this node saw; read everything after what Redis kept. */
        send_bump(b, now);
        b->backwards = 1;
        uint64_t keep = b->last_id;
        b->last_id = top;
        send_read(b, now);
        b->last_id = keep;
        return;
    }
    send_read(b, now);
}

static void on_read(struct bridge *b, const struct resp_event *tok, size_t ntok, uint64_t sent,
                    uint64_t now)
{
    if (ntok == 1 && tok[0].type == RESP_ERROR) {
        log_write(LOG_LVL_ALERT, 0, "cluster: XREAD failed: %.*s", (int)tok[0].len, tok[0].data);
        redis_link_down(&b->sub, "XREAD failed");
        return;
    }
    /* [[key, [entry...]]], or a null when the wait ended with nothing new. */
    if (ntok >= 4 && tok[0].kind == RESP_EV_BEGIN && tok[1].kind == RESP_EV_BEGIN &&
        tok[3].kind == RESP_EV_BEGIN) {
        int64_t n = tok[3].integer;
        size_t i = 4;
        for (int64_t k = 0; k < n; k++) {
            struct entry e;
            if (parse_entry(tok, ntok, &i, &e) < 0) {
                log_write(LOG_LVL_ALERT, 0, "cluster: an entry of %s this bridge did not write",
                          b->k_log);
                continue;
            }
            take_entry(b, &e);
        }
        if (n > 0)
            wake_workers(b);
        if (n < READ_COUNT)
            __atomic_store_n(&b->seg->cluster.read_all_ms, sent, __ATOMIC_RELEASE);
    } else if (ntok == 1 && tok[0].type == RESP_NULL) {
        __atomic_store_n(&b->seg->cluster.read_all_ms, sent, __ATOMIC_RELEASE);
    }
    send_read(b, now);
}

/* ---- the outbox: to the stream ----------------------------------------------------- */

/* Send the next batch of the outbox, if there is one and none is in flight. */
static void send_batch(struct bridge *b, uint64_t now)
{
    if (b->batch_inflight || !b->pub_ready || b->pub.state != REDIS_LINK_UP)
        return;
    struct ring *r = b->obox;
    uint64_t head = ring_head(r);
    if (b->out_sent >= head)
        return;
    /* BATCH_HEAD arguments before the events, five per event. */
    static const char *argv[BATCH_HEAD + 5 * BATCH_MAX];
    static size_t lens[BATCH_HEAD + 5 * BATCH_MAX];
    static char nums[BATCH_MAX][2][24];
    static char rooms[BATCH_MAX][RING_ROOM_MAX];
    char floor[24], ttl[24];
    snprintf(floor, sizeof floor, "%llu", (unsigned long long)b->last_id);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)NODE_TTL_MS);
    size_t argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = BATCH_LUA;
    argv[argc++] = "3";
    argv[argc++] = b->k_log;
    argv[argc++] = b->k_seq;
    argv[argc++] = b->k_node;
    argv[argc++] = b->maxlen;
    argv[argc++] = floor;
    /* ARGV[3] is unused, ARGV[4] the dedup key's life: keeps the per-event args at i % 5 == 0. */
    argv[argc++] = "";
    argv[argc++] = ttl;
    assert(argc == BATCH_HEAD);
    for (int i = 0; i < (int)argc; i++)
        lens[i] = strlen(argv[i]);
    uint64_t pos = b->out_sent;
    size_t used = 0;
    int n = 0;
    while (n < BATCH_MAX && pos < head && used < BATCH_BYTES) {
        struct ring_entry meta;
        uint64_t at = pos;
        ssize_t len = ring_read(r, &at, &meta, b->bbuf + used, b->bbuf_cap - used);
        if (len == RING_TOO_SMALL && n > 0)
            break;
        if (len == RING_LAPPED) {
            log_write(LOG_LVL_ALERT, 0, "cluster: outbox overwritten before it was sent");
            pos = ring_tail(r);
            continue;
        }
        if (len < 0)
            break;
        const char *type, *body;
        size_t type_len, body_len;
        if (cluster_gate_split(b->bbuf + used, (size_t)len, &type, &type_len, &body,
                               &body_len) < 0) {
            log_write(LOG_LVL_ALERT, 0, "cluster: a malformed outbox entry skipped");
            pos = at;
            continue;
        }
        snprintf(nums[n][0], sizeof nums[n][0], "%llu", (unsigned long long)meta.id);
        snprintf(nums[n][1], sizeof nums[n][1], "%d", meta.kind);
        argv[argc] = nums[n][0];
        lens[argc++] = strlen(nums[n][0]);
        argv[argc] = nums[n][1];
        lens[argc++] = strlen(nums[n][1]);
        memcpy(rooms[n], meta.room, meta.room_len);
        argv[argc] = rooms[n];
        lens[argc++] = meta.room_len;
        argv[argc] = type;
        lens[argc++] = type_len;
        argv[argc] = body;
        lens[argc++] = body_len;
        used += (size_t)len;
        pos = at;
        n++;
    }
    if (n == 0) {
        if (pos > b->out_sent) {
            b->out_sent = pos;
            __atomic_store_n(&b->seg->cluster.out_done, pos, __ATOMIC_RELEASE);
        }
        return;
    }
    int rc = redis_link_command(&b->pub, argc, argv, lens, T_BATCH, pos, 0, now);
    if (rc < 0)
        return;     /* the output is full: the next pass tries again */
    b->batch_inflight = 1;
    b->out_sent = pos;
}

static void on_batch(struct bridge *b, uint64_t end, const struct resp_event *tok, size_t ntok)
{
    b->batch_inflight = 0;
    if (ntok == 1 && tok[0].type == RESP_INTEGER) {
        stat_add(&b->seg->cluster.published, (uint64_t)tok[0].integer);
        __atomic_store_n(&b->seg->cluster.out_done, end, __ATOMIC_RELEASE);
        return;
    }
    stat_add(&b->seg->cluster.publish_errors, 1);
    log_write(LOG_LVL_ALERT, 0, "cluster: a batch was refused by Redis (sent again): %.*s",
              ntok > 0 ? (int)(tok[0].len > 200 ? 200 : tok[0].len) : 0,
              ntok > 0 ? tok[0].data : "");
    /* Send it again after a reconnect, before anything after it. */
    redis_link_down(&b->pub, "a batch was refused");
}

/* ---- presence -------------------------------------------------------------------- */

static int presence_room(struct bridge *b, size_t need)
{
    if (need <= b->pcap)
        return 0;
    size_t cap = need * 2;
    const char **a = realloc(b->pargv, cap * sizeof *a);
    if (a != NULL)
        b->pargv = a;
    size_t *l = realloc(b->plens, cap * sizeof *l);
    if (l != NULL)
        b->plens = l;
    char (*n)[24] = realloc(b->pnames, cap * sizeof *n);
    if (n != NULL)
        b->pnames = n;
    if (a == NULL || l == NULL || n == NULL)
        return -ENOMEM;
    b->pcap = cap;
    return 0;
}

static void send_presence(struct bridge *b, uint64_t now)
{
    if (b->presence_inflight || !b->pub_ready || now < b->presence_due_ms)
        return;
    b->presence_due_ms = now + b->cfg->presence_interval_ms;
    struct room_table *t = shm_rooms(b->seg);
    uint32_t used = room_table_used(t);
    char ttl[24];
    uint64_t life = 3 * b->cfg->presence_interval_ms + b->cfg->cluster_timeout_ms;
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)(life < 3000 ? 3000 : life));
    if (presence_room(b, 8 + 2 * (size_t)used) < 0)
        return;
    size_t argc = 0;
    const char **argv = b->pargv;
    argv[argc++] = "EVAL";
    argv[argc++] = PRESENCE_LUA;
    argv[argc++] = "2";
    argv[argc++] = b->k_online_me;
    argv[argc++] = b->k_nodes;
    argv[argc++] = b->node;
    argv[argc++] = ttl;
    argv[argc++] = b->k_online;
    for (size_t i = 0; i < argc; i++)
        b->plens[i] = strlen(argv[i]);
    /*
     * Names are read under the lock (a reclaimed entry takes another name
     * under it), and it is held until the command has copied them.
     */
    if (chat_publish_lock(b->seg) < 0)
        return;
    for (uint32_t i = 0; i < used; i++) {
        int n = room_table_local(t, i);
        const struct room_entry *e = room_table_entry(t, i);
        if (n <= 0 || e->name_len == 0)
            continue;
        argv[argc] = e->name;
        b->plens[argc++] = e->name_len;
        snprintf(b->pnames[argc], sizeof b->pnames[0], "%d", n);
        argv[argc] = b->pnames[argc];
        b->plens[argc] = strlen(b->pnames[argc]);
        argc++;
    }
    int rc = redis_link_command(&b->pub, argc, argv, b->plens, T_PRESENCE, 0, 0, now);
    lock_release(&b->seg->lock);
    if (rc == 0)
        b->presence_inflight = 1;
}

static void on_presence(struct bridge *b, const struct resp_event *tok, size_t ntok)
{
    b->presence_inflight = 0;
    if (ntok == 0 || tok[0].kind != RESP_EV_BEGIN) {
        if (ntok > 0 && tok[0].type == RESP_ERROR)
            log_write(LOG_LVL_ALERT, 0, "cluster: the presence exchange failed: %.*s",
                      (int)(tok[0].len > 200 ? 200 : tok[0].len), tok[0].data);
        return;
    }
    struct room_table *t = shm_rooms(b->seg);
    if (b->mark == NULL && (b->mark = calloc(t->cap, 1)) == NULL)
        return;
    if (chat_publish_lock(b->seg) < 0)
        return;
    uint32_t used = room_table_used(t);
    memset(b->mark, 0, used);
    for (size_t i = 1; i + 1 < ntok; i += 2) {
        if (!is_value(&tok[i]) || tok[i + 1].type != RESP_INTEGER || tok[i].len == 0 ||
            tok[i].len > RING_ROOM_MAX)
            continue;
        /*
         * A room this node has no entry for gets one (counted 0 here, so
         * it is reclaimable): its first member here is welcomed with the
         * others' count, not with its own alone.
         */
        int idx = room_table_find(t, tok[i].data, tok[i].len);
        if (idx < 0)
            idx = room_table_join(t, tok[i].data, tok[i].len, 0, ring_tail(&b->seg->ring));
        if (idx < 0)
            continue;   /* a full table: that room's count stays this node's */
        room_table_set_remote(t, (uint32_t)idx, (int)tok[i + 1].integer);
        b->mark[idx] = 1;
    }
    for (uint32_t i = 0; i < used; i++)
        if (!b->mark[i] && room_table_online(t, i) != room_table_local(t, i))
            room_table_set_remote(t, i, 0);
    lock_release(&b->seg->lock);
}

/*
 * The epoch read at a (re)connect: another value than the one this node
 * saw first (or none, which the script replaced with ours) means Redis lost
 * the cluster's data. The counter is bumped past every id seen here, from
 * the clock when it is missing, so every node's next id jumps (its members
 * get a gap event).
 */
static void on_epoch(struct bridge *b, const struct resp_event *tok, size_t ntok, uint64_t now)
{
    if (ntok != 3 || tok[0].kind != RESP_EV_BEGIN || tok[2].kind != RESP_EV_VALUE ||
        tok[2].len == 0 || tok[2].len >= sizeof b->epoch)
        return;
    if (b->epoch[0] == '\0') {
        memcpy(b->epoch, tok[2].data, tok[2].len);
        b->epoch[tok[2].len] = '\0';
        return;
    }
    if (tok[2].len == strlen(b->epoch) && memcmp(tok[2].data, b->epoch, tok[2].len) == 0)
        return;
    memcpy(b->epoch, tok[2].data, tok[2].len);
    b->epoch[tok[2].len] = '\0';
    log_write(b->loss_told ? LOG_LVL_WARN : LOG_LVL_ALERT, 0, "cluster: Redis lost data: "
              "%s has another epoch; ids go on above %llu and members get a gap", b->k_epoch,
              (unsigned long long)b->last_id);
    b->loss_told = 1;
    stat_add(&b->seg->cluster.gaps, 1);
    send_bump(b, now);
}

/* ---- links ---------------------------------------------------------------------- */

static void on_reply(void *ctx, struct redis_link *l, int tag, uint64_t arg,
                     const struct resp_event *tok, size_t ntok)
{
    struct bridge *b = ctx;
    uint64_t now = worker_clock_ms();
    (void)l;
    switch (tag) {
    case T_PING:
        if (ntok == 1 && tok[0].type != RESP_ERROR) {
            b->pub_ready = 1;
            backoff_reset(&b->pub_bo);
            __atomic_store_n(&b->seg->cluster.up, 1u, __ATOMIC_RELEASE);
            if (b->pub_lost) {
                stat_add(&b->seg->cluster.reconnects, 1);
                log_write(LOG_LVL_WARN, 0, "cluster: the publish link to redis %s:%u is back",
                          b->cfg->cluster_url.host, (unsigned)b->cfg->cluster_url.port);
            } else {
                log_write(LOG_LVL_NOTICE, 0, "cluster: connected to redis %s:%u (prefix %s)",
                          b->cfg->cluster_url.host, (unsigned)b->cfg->cluster_url.port,
                          b->cfg->cluster_prefix);
            }
            b->pub_lost = 0;
        } else {
            redis_link_down(&b->pub, "PING refused");
        }
        break;
    case T_EPOCH:
        on_epoch(b, tok, ntok, now);
        break;
    case T_BATCH:
        on_batch(b, arg, tok, ntok);
        break;
    case T_BUMP:
        break;
    case T_PRESENCE:
        on_presence(b, tok, ntok);
        break;
    case T_TOP:
        b->reading = 0;
        backoff_reset(&b->sub_bo);
        if (b->sub_lost)
            log_write(LOG_LVL_WARN, 0, "cluster: the stream link to redis is back");
        b->sub_lost = 0;
        on_top(b, tok, ntok, now);
        break;
    case T_LOAD:
        b->reading = 0;
        backoff_reset(&b->sub_bo);
        on_load(b, tok, ntok, now);
        break;
    case T_READ:
        b->reading = 0;
        on_read(b, tok, ntok, arg, now);
        break;
    }
}

/* The link went down (or never came up): log once, and back off before the next try. */
static void link_lost(struct bridge *b, struct redis_link *l, struct backoff *bo,
                      uint64_t *retry, int *lost, uint64_t now)
{
    if (!*lost)
        log_write(LOG_LVL_WARN, 0, "cluster: the %s link to redis %s:%u is down: %s", l->name,
                  b->cfg->cluster_url.host, (unsigned)b->cfg->cluster_url.port, l->reason);
    *lost = 1;
    b->loss_told = 0;
    *retry = now + backoff_next(bo, random64());
    if (l == &b->pub) {
        b->pub_ready = 0;
        __atomic_store_n(&b->seg->cluster.up, 0u, __ATOMIC_RELEASE);
        /* Whatever was in flight is sent again; the script drops what had landed. */
        b->batch_inflight = 0;
        b->presence_inflight = 0;
        b->out_sent = __atomic_load_n(&b->seg->cluster.out_done, __ATOMIC_ACQUIRE);
    } else {
        b->reading = 0;
        b->load_newest = 0;
        hold_clear(b);
    }
}

static void connect_pub(struct bridge *b, uint64_t now)
{
    if (redis_link_connect(&b->pub, &b->cfg->cluster_url, now) < 0)
        return;
    const char *argv[] = { "PING" };
    size_t lens[] = { 4 };
    redis_link_command(&b->pub, 1, argv, lens, T_PING, 0, 0, now);
    char mine[24];
    snprintf(mine, sizeof mine, "%016llx", (unsigned long long)random64());
    const char *ev[] = { "EVAL", EPOCH_LUA, "1", b->k_epoch, mine };
    size_t el[5];
    for (int i = 0; i < 5; i++)
        el[i] = strlen(ev[i]);
    redis_link_command(&b->pub, 5, ev, el, T_EPOCH, 0, 0, now);
    b->presence_due_ms = now;
}

static void connect_sub(struct bridge *b, uint64_t now)
{
    if (redis_link_connect(&b->sub, &b->cfg->cluster_url, now) < 0)
        return;
    if (!b->loaded) {
        send_load(b, 0, now);
        return;
    }
    const char *argv[] = { "XREVRANGE", b->k_log, "+", "-", "COUNT", "1" };
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    if (redis_link_command(&b->sub, 6, argv, lens, T_TOP, 0, 0, now) == 0)
        b->reading = 1;
}

/* Each link: reconnect when due, do its I/O, notice when it fell. */
static void drive(struct bridge *b, struct redis_link *l, struct pollfd *pfd, uint64_t now)
{
    int was = l->state;
    int is_pub = l == &b->pub;
    struct backoff *bo = is_pub ? &b->pub_bo : &b->sub_bo;
    uint64_t *retry = is_pub ? &b->pub_retry_ms : &b->sub_retry_ms;
    int *lost = is_pub ? &b->pub_lost : &b->sub_lost;
    if (was == REDIS_LINK_DOWN) {
        if (now < *retry)
            return;
        if (is_pub)
            connect_pub(b, now);
        else
            connect_sub(b, now);
        if (l->state == REDIS_LINK_DOWN)
            link_lost(b, l, bo, retry, lost, now);
        return;
    }
    redis_link_io(l, pfd->revents, now);
    if (l->state == REDIS_LINK_DOWN)
        link_lost(b, l, bo, retry, lost, now);
}

static int open_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int bridge_init(struct bridge *b, const struct config *cfg, struct shm_segment *seg,
                       const int *eventfds)
{
    memset(b, 0, sizeof *b);
    b->cfg = cfg;
    b->seg = seg;
    b->eventfds = eventfds;
    b->obox = shm_outbox(seg);
    const char *p = cfg->cluster_prefix;
    snprintf(b->node, sizeof b->node, "%016llx", (unsigned long long)seg->cluster.node_id);
    snprintf(b->k_log, sizeof b->k_log, "%s:log", p);
    snprintf(b->k_seq, sizeof b->k_seq, "%s:seq", p);
    snprintf(b->k_node, sizeof b->k_node, "%s:node:%s", p, b->node);
    snprintf(b->k_nodes, sizeof b->k_nodes, "%s:nodes", p);
    snprintf(b->k_epoch, sizeof b->k_epoch, "%s:epoch", p);
    snprintf(b->k_online, sizeof b->k_online, "%s:online:", p);
    snprintf(b->k_online_me, sizeof b->k_online_me, "%s:online:%s", p, b->node);
    /* The stream keeps about one ring of events: what a fresh node loads. */
    uint64_t keep = seg->ring.capacity / 128;
    snprintf(b->maxlen, sizeof b->maxlen, "%llu", (unsigned long long)(keep < 1000 ? 1000 : keep));
    b->bbuf_cap = BATCH_BYTES + ring_max_entry(b->obox);
    b->bbuf = malloc(b->bbuf_cap);
    size_t in_cap = 2 * (size_t)ring_max_entry(&seg->ring) + (4u << 20);
    backoff_init(&b->pub_bo, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
    backoff_init(&b->sub_bo, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
    if (b->obox == NULL || b->bbuf == NULL ||
        redis_link_init(&b->pub, "publish", LINK_OUT + b->bbuf_cap, 1u << 20, LINK_TOKENS,
                        cfg->cluster_timeout_ms, on_reply, b) < 0 ||
        redis_link_init(&b->sub, "stream", 4096, in_cap, LINK_TOKENS,
                        cfg->cluster_timeout_ms, on_reply, b) < 0)
        return -ENOMEM;
    /* A respawned bridge goes on from where the last one was and re-sends the unconfirmed. */
    b->last_id = __atomic_load_n(&seg->cluster.last_id, __ATOMIC_RELAXED);
    b->loaded = __atomic_load_n(&seg->cluster.synced, __ATOMIC_ACQUIRE) != 0;
    b->out_sent = __atomic_load_n(&seg->cluster.out_done, __ATOMIC_ACQUIRE);
    __atomic_store_n(&seg->cluster.up, 0u, __ATOMIC_RELEASE);   /* until its PING is answered */
    /* A bridge killed between a wake and its read left the flag set: no worker would wake us. */
    __atomic_store_n(&seg->cluster.wake_pending, 0u, __ATOMIC_SEQ_CST);
    return 0;
}

void cluster_run(const struct config *cfg, struct shm_segment *seg, const int *eventfds,
                 int wakefd)
{
    prctl(PR_SET_NAME, CLUSTER_COMM, 0, 0, 0);
    int sigfd = open_signals();
    static struct bridge b;
    if (sigfd < 0 || bridge_init(&b, cfg, seg, eventfds) < 0) {
        log_write(LOG_LVL_ALERT, errno, "cluster bridge: cannot start");
        exit(2);
    }
    uint64_t stop_by = 0;
    for (;;) {
        uint64_t now = worker_clock_ms();
        send_batch(&b, now);
        send_presence(&b, now);
        struct pollfd pfd[4] = {
            { .fd = wakefd, .events = POLLIN },
            { .fd = sigfd, .events = POLLIN },
            { .fd = b.pub.fd, .events = redis_link_events(&b.pub) },
            { .fd = b.sub.fd, .events = redis_link_events(&b.sub) },
        };
        /* A read always outstanding while the stream link is up (one failed to queue). */
        if (b.sub.state != REDIS_LINK_DOWN && b.loaded && !b.reading)
            send_read(&b, now);
        uint64_t due = b.pub_ready && !b.presence_inflight ? b.presence_due_ms : UINT64_MAX;
        uint64_t d = redis_link_next_deadline(&b.pub);
        if (d < due)
            due = d;
        d = redis_link_next_deadline(&b.sub);
        if (d < due)
            due = d;
        if (b.pub.state == REDIS_LINK_DOWN && b.pub_retry_ms < due)
            due = b.pub_retry_ms;
        if (b.sub.state == REDIS_LINK_DOWN && b.sub_retry_ms < due)
            due = b.sub_retry_ms;
        int timeout = due <= now ? 0 : due - now > 1000 ? 1000 : (int)(due - now);
        if (stop_by != 0 && timeout > 50)
            timeout = 50;
        int rc = poll(pfd, 4, timeout);
        if (rc < 0 && errno != EINTR) {
            log_write(LOG_LVL_ALERT, errno, "cluster bridge: poll() failed");
            exit(1);
        }
        uint64_t v;
        if (read(wakefd, &v, sizeof v) < 0) { /* nothing pending */ }
        /* Re-armed before the outbox is read: a queue after this wakes us again. */
        __atomic_store_n(&seg->cluster.wake_pending, 0u, __ATOMIC_SEQ_CST);
        struct signalfd_siginfo si;
        while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
            if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGQUIT)
                && stop_by == 0)
                stop_by = worker_clock_ms() + STOP_MS;
            else if (si.ssi_signo == SIGUSR1 && log_reopen() < 0)
                log_write(LOG_LVL_ALERT, errno, "reopening the log failed");
        }
        now = worker_clock_ms();
        drive(&b, &b.pub, &pfd[2], now);
        drive(&b, &b.sub, &pfd[3], now);
        if (stop_by != 0) {
            uint64_t done = __atomic_load_n(&seg->cluster.out_done, __ATOMIC_ACQUIRE);
            if (done >= ring_head(b.obox)) {
                log_write(LOG_LVL_NOTICE, 0, "cluster bridge: outbox sent, exiting");
                exit(0);
            }
            if (worker_clock_ms() >= stop_by) {
                log_write(LOG_LVL_ALERT, 0, "cluster bridge: stopping with events not sent "
                          "to Redis (its link is down)");
                exit(1);
            }
        }
    }
}
