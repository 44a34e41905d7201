/*
 * chat_auth: who may join /chat under which name (the auth directives).
 *
 * The client's token comes as ?token= on the upgrade (a browser cannot set
 * headers on a WebSocket). chat_auth_check() decides before the 101: a
 * missing token is a guest when auth is optional and 401 when required;
 * a token that does not verify (signature, alg, exp + auth_leeway, claims)
 * is 401 in both modes; a room not in its "rooms" claim is 403. An
 * authenticated member is named by the token (its nick is "name", locked)
 * and its events carry "user":"<sub>".
 *
 * A member's token keeps mattering after the join: the worker keeps the
 * authenticated members on a list (struct chat_token) and closes one with
 * 1008 "token expired" once exp + auth_leeway has passed; the client
 * reconnects with a fresh token and resumes by id. Pure: no I/O, the
 * caller passes the clock.
 */
#ifndef WSM_CHAT_AUTH_H
#define WSM_CHAT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "jwt.h"
#include "result.h"

struct config;

/* One authenticated member. */
struct chat_token {
    struct chat_token *prev, *next;
    void    *owner;                 /* the caller's member */
    int64_t  expires_s;             /* unix seconds after which it is closed */
    uint8_t  user_len;
    char     user[JWT_SUB_MAX + 1];
};

struct chat_tokens {
    struct chat_token *head;
};

/*
 * May a client with TOKEN[0..token_len) (PRESENT: ?token= was in the query)
 * join ROOM at unix time NOW_S? 1: yes, authenticated, *OUT filled; 0:
 * yes, as a guest; or the refusal's HTTP status negated (-401, -403). With
 * auth off every client is a guest and a token is ignored.
 */
int chat_auth_check(const struct config *cfg, const char *room, size_t room_len, int present,
                    const char *token, size_t token_len, int64_t now_s, struct jwt_claims *out);

/* A token record for OWNER from verified CLAIMS, on LIST. NULL: no memory. */
struct chat_token *chat_token_add(struct chat_tokens *list, void *owner,
                                  const struct jwt_claims *claims, uint64_t leeway_ms);
/* The same from a hand-over record's fields (USER[0..len), EXPIRES_S). */
struct chat_token *chat_token_restore(struct chat_tokens *list, void *owner, const char *user,
                                      size_t len, int64_t expires_s);
/* Take T off its list and free it (NULL is allowed). */
void chat_token_remove(struct chat_tokens *list, struct chat_token *t);

/*
 * Call EXPIRED(owner, ctx) for every token past its time at NOW_S. The
 * callback may remove that token (and only that one).
 */
void chat_tokens_expire(struct chat_tokens *list, int64_t now_s,
                        void (*expired)(void *owner, void *ctx), void *ctx);

#endif
