/* static_files: placeholder until the web client issue; every path is 404. */
#include "static_files.h"

int static_files_serve(struct worker *w, struct conn *c, const struct http_request *req,
                       const char *path, size_t path_len, int head_only, int keep)
{
    (void)w; (void)c; (void)req; (void)path; (void)path_len; (void)head_only; (void)keep;
    return 404;
}
