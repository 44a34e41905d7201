/*
 * chat_auth: see chat_auth.h.
 */
#include "chat_auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chat_proto.h"
#include "config.h"

int chat_auth_check(const struct config *cfg, const char *room, size_t room_len, int present,
                    const char *token, size_t token_len, int64_t now_s, struct jwt_claims *out)
{
    if (cfg->auth == CONFIG_AUTH_OFF)
        return 0;
    if (!present)
        return cfg->auth == CONFIG_AUTH_REQUIRED ? -401 : 0;
    int64_t leeway = (int64_t)(cfg->auth_leeway_ms / 1000);
    if (jwt_verify(token, token_len, cfg->auth_key, cfg->auth_key_len, now_s, leeway, out) < 0)
        return -401;
    /* The display name must be one the chat accepts as a nick. */
    if (!chat_nick_valid(out->name, out->name_len))
        return -401;
    return jwt_room_allowed(out, room, room_len) ? 1 : -403;
}

static struct chat_token *link_new(struct chat_tokens *list, void *owner, const char *user,
                                   size_t len, int64_t expires_s)
{
    struct chat_token *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if (len > JWT_SUB_MAX)
        len = JWT_SUB_MAX;
    memcpy(t->user, user, len);
    t->user_len = (uint8_t)len;
    t->owner = owner;
    t->expires_s = expires_s;
    t->next = list->head;
    if (list->head != NULL)
        list->head->prev = t;
    list->head = t;
    return t;
}

struct chat_token *chat_token_add(struct chat_tokens *list, void *owner,
                                  const struct jwt_claims *claims, uint64_t leeway_ms)
{
    return link_new(list, owner, claims->sub, claims->sub_len,
                    claims->exp + (int64_t)(leeway_ms / 1000));
}

struct chat_token *chat_token_restore(struct chat_tokens *list, void *owner, const char *user,
                                      size_t len, int64_t expires_s)
{
    return link_new(list, owner, user, len, expires_s);
}

void chat_token_remove(struct chat_tokens *list, struct chat_token *t)
{
    if (t == NULL)
        return;
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        list->head = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    free(t);
}

void chat_tokens_expire(struct chat_tokens *list, int64_t now_s,
                        void (*expired)(void *owner, void *ctx), void *ctx)
{
    for (struct chat_token *t = list->head, *next; t != NULL; t = next) {
        next = t->next;
        if (now_s > t->expires_s)
            expired(t->owner, ctx);
    }
}
