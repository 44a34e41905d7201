/*
 * endpoints: see endpoints.h.
 */
#include "endpoints.h"

#include <string.h>

#include "ws_conn.h"

/*
 * The table: one row per endpoint, NAME being defined as `NAME_endpoint` in
 * server/NAME.c. Order is the hand-over record's numbering, which only
 * matters between a retiring worker and its successor (the same binary
 * after a reload, or a new one that kept the order).
 */
#define WS_ENDPOINTS(ROW) \
    ROW(echo)             \
    ROW(chat)

#define DECLARE(name) extern const struct ws_endpoint name##_endpoint;
WS_ENDPOINTS(DECLARE)
#undef DECLARE

#define ENTRY(name) &name##_endpoint,
static const struct ws_endpoint *const table[] = { WS_ENDPOINTS(ENTRY) };
#undef ENTRY

#define NENDPOINTS (sizeof table / sizeof table[0])

const struct ws_endpoint *endpoints_route(const char *path, size_t len,
                                          const char **sub, size_t *sub_len)
{
    for (size_t i = 0; i < NENDPOINTS; i++) {
        const struct ws_endpoint *ep = table[i];
        size_t n = strlen(ep->path);
        if (len < n || memcmp(path, ep->path, n) != 0)
            continue;
        if (len == n) {
            *sub = NULL;
            *sub_len = 0;
            return ep;
        }
        if (ep->subpaths && path[n] == '/') {
            *sub = path + n + 1;
            *sub_len = len - n - 1;
            return ep;
        }
    }
    return NULL;
}

unsigned endpoints_index(const struct ws_endpoint *ep)
{
    for (size_t i = 0; i < NENDPOINTS; i++)
        if (table[i] == ep)
            return (unsigned)i;
    return (unsigned)NENDPOINTS;
}

const struct ws_endpoint *endpoints_at(unsigned idx)
{
    return idx < NENDPOINTS ? table[idx] : NULL;
}

unsigned endpoints_count(void)
{
    return (unsigned)NENDPOINTS;
}

int endpoints_init(struct worker *w)
{
    for (size_t i = 0; i < NENDPOINTS; i++) {
        int rc = table[i]->init != NULL ? table[i]->init(w) : 0;
        if (rc < 0)
            return rc;
    }
    return 0;
}

void endpoints_wake(struct worker *w)
{
    for (size_t i = 0; i < NENDPOINTS; i++)
        if (table[i]->wake != NULL)
            table[i]->wake(w);
}

void endpoints_pass_end(struct worker *w)
{
    for (size_t i = 0; i < NENDPOINTS; i++)
        if (table[i]->pass_end != NULL)
            table[i]->pass_end(w);
}
