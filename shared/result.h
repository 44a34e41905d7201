/*
 * result: the one return convention of wschat's C code, stated once.
 *
 *  - A function that can fail returns int (or ssize_t when success carries a
 *    length): >= 0 is success, < 0 is failure.
 *      0          plain success;
 *      > 0        success with a count the function's comment names (bytes
 *                 consumed, a head's length, LOCK_RECOVERED...);
 *      -errno     failure for a system reason (-ENOMEM, -ENOSPC for "does
 *                 not fit", -EINVAL for bad input, -EAGAIN...);
 *      -CODE      a codec's own negative enum where the failure needs more
 *                 than errno can say (HTTP_ERR_*, RING_*, -<close code> from
 *                 the frame parser), documented next to the function.
 *    An incremental parser returns 0 for "need more bytes".
 *  - A function returning a pointer returns NULL on failure.
 *  - Predicates (names that read as a question: *_valid, *_is_*, has_*)
 *    return 1 or 0 and cannot fail.
 *  - A function that fails has released what it took; its caller acts on
 *    every failure (no result is silently dropped).
 *  - Connection handlers: a failure on a connection marks it closed
 *    (worker_close()); the struct stays valid until the end of the loop
 *    pass, so a caller only has to stop using it, never to guess whether it
 *    was freed.
 *
 * This header has no code: it is included by the headers that refer to it.
 */
#ifndef WSM_RESULT_H
#define WSM_RESULT_H

#include <errno.h>

#endif
