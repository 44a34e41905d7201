/*
 * static_files: GET/HEAD of files under web_root (the browser client).
 * Never reads outside web_root: the request path is decoded, normalised and
 * checked, and the opened file is verified to live under the root. Decides
 * a response; never touches a connection (http_conn queues it).
 */
#ifndef WSM_STATIC_FILES_H
#define WSM_STATIC_FILES_H

#include <stddef.h>

#include "http.h"
#include "result.h"

/*
 * Answer REQ for PATH (the raw path part of the target) from WEB_ROOT.
 * 0 with RESP filled (200, 301 or 304; RESP->owned holds a file's bytes),
 * or -STATUS: the HTTP error status to answer with, negated (403, 404,
 * 414, 500, 503...), RESP untouched.
 */
int static_files_serve(const char *web_root, const struct http_request *req,
                       const char *path, size_t path_len, int head_only,
                       struct http_response *resp);

#endif
