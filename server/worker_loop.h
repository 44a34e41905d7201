/*
 * worker_loop: the event loop of one worker process. Waits on epoll, reads
 * each ready connection once per pass and hands the bytes to http_conn or
 * ws_conn by state, accepts, sweeps timers, takes signals (stop, graceful
 * stop, retire after a reload, reopen logs) and connections handed over by
 * a retiring worker, then releases what closed during the pass.
 */
#ifndef WSM_WORKER_LOOP_H
#define WSM_WORKER_LOOP_H

struct worker_ctx;

/* Run the loop; never returns (exits 0 after a stop, 2 if it cannot start). */
void worker_loop_run(const struct worker_ctx *ctx) __attribute__((noreturn));

#endif
