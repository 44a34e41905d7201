/* chat: placeholder until the chat issue lands: no /chat endpoint yet. */
#include "chat.h"

int chat_route(const char *path, size_t len, const char **room, size_t *room_len)
{
    (void)path; (void)len; (void)room; (void)room_len;
    return 0;
}
int chat_worker_init(struct worker *w) { (void)w; return 0; }
int chat_join(struct worker *w, struct conn *c, const char *room, size_t room_len,
              const char *query, size_t query_len)
{
    (void)w; (void)c; (void)room; (void)room_len; (void)query; (void)query_len;
    return 0;
}
void chat_leave(struct worker *w, struct conn *c) { (void)w; (void)c; }
void chat_on_message(struct worker *w, struct conn *c, int opcode, const uint8_t *data, size_t len)
{
    (void)w; (void)c; (void)opcode; (void)data; (void)len;
}
void chat_on_wake(struct worker *w) { (void)w; }
void chat_flush_dirty(struct worker *w) { (void)w; }
int chat_stream_iov(struct worker *w, struct conn *c, struct iovec *iov, int max)
{
    (void)w; (void)c; (void)iov; (void)max;
    return 0;
}
void chat_stream_consumed(struct worker *w, struct conn *c, size_t n) { (void)w; (void)c; (void)n; }
