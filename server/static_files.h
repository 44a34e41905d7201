/*
 * static_files: GET/HEAD of files under web_root (the browser client).
 * Never reads outside web_root: the request path is decoded, normalised and
 * checked, and the opened file is verified to live under the root.
 */
#ifndef WSM_STATIC_FILES_H
#define WSM_STATIC_FILES_H

#include <stddef.h>

struct worker;
struct conn;
struct http_request;

/*
 * Answer REQ for PATH (the raw path part of the target). Returns 0 when a
 * response was queued on C, or the HTTP status of the error to send.
 * KEEP says whether the connection stays open afterwards.
 */
int static_files_serve(struct worker *w, struct conn *c, const struct http_request *req,
                       const char *path, size_t path_len, int head_only, int keep);

#endif
