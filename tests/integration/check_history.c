/*
 * history: the history journal (history_file) against the real wsmaster,
 * across full restarts of the whole process tree. A journal folder outside
 * the server's temp dir survives each srv_stop; every start reads it back.
 *
 *  - a graceful stop (SIGQUIT) and start, then a fast one (SIGTERM): the
 *    room's history replays identically
 *    (ids, texts, order), ?since= resumes with no gap and nothing twice,
 *    and new ids are above every id sent before, presence events included;
 *  - kill -9 of the whole tree under everysec, with a torn record appended:
 *    the tail is cut (warn with offset and bytes), messages older than the
 *    last sync survive;
 *  - kill -9 under always right after a message is delivered: it survives
 *    (nothing is delivered before it is on disk);
 *  - a segment of another format version: the start fails with a message;
 *    -t fails for a folder that cannot be made;
 *  - a file size limit on the journal process (disk full): under always new
 *    messages are refused as unavailable, an alert is logged once, and once
 *    the limit is lifted messages are taken again;
 *  - ?since= older than the ring: the rest is read from the journal, in
 *    order and without a gap, before and after a restart.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char jdir[64];           /* parent of the journal folder, removed at the end */
static char hist[96];           /* the journal folder */

static void journal_dir_make(void)
{
    strcpy(jdir, "/tmp/wschat-journal-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(jdir));
    snprintf(hist, sizeof hist, "%s/history", jdir);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st; (void)flag; (void)f;
    return remove(p);
}

static void journal_dir_remove(void)
{
    nftw(jdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void start(struct server *s, const char *more)
{
    char extra[1024];
    snprintf(extra, sizeof extra, "history_file %s\nrate_limit 0\n%s", hist,
             more != NULL ? more : "");
    srv_start(s, extra);
}

/* The number after "KEY": in TEXT, 0 if absent. */
static unsigned long long num_of(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p != NULL ? strtoull(p + strlen(key), NULL, 10) : 0;
}

struct seen {
    unsigned long long ids[64];
    char texts[64][32];
    int n;
    unsigned long long max_id;  /* of every event (presence too) */
    int gaps, ended;
};

/* Read events on C until one holding STOP arrives (5 s). */
static void collect(struct client *c, struct seen *sn, const char *stop)
{
    int64_t end = it_now_ms() + 5000;
    for (;;) {
        struct wsc_msg m;
        int left = (int)(end - it_now_ms());
        ck_assert_msg(left > 0 && wsc_recv(c, &m, left) == 1, "waiting for %s", stop);
        const char *t = (const char *)m.data;
        unsigned long long id = num_of(t, "\"id\":");
        if (id > sn->max_id)
            sn->max_id = id;
        if (strstr(t, "\"type\":\"gap\""))
            sn->gaps++;
        if (strstr(t, "\"type\":\"history_end\""))
            sn->ended = 1;
        const char *tx = strstr(t, "\"text\":\"");
        if (strstr(t, "\"type\":\"message\"") && tx != NULL && sn->n < 64) {
            sn->ids[sn->n] = id;
            snprintf(sn->texts[sn->n], sizeof sn->texts[0], "%.*s",
                     (int)strcspn(tx + 8, "\""), tx + 8);
            sn->n++;
        }
        int done = strstr(t, stop) != NULL;
        wsc_msg_free(&m);
        if (done)
            return;
    }
}

static void join(struct client *c, int port, const char *path, struct seen *sn)
{
    memset(sn, 0, sizeof *sn);
    ck_assert_int_eq(cli_connect(c, port), 0);
    ck_assert_int_eq(wsc_handshake(c, path, NULL, NULL, 0), 101);
    collect(c, sn, "\"type\":\"history_end\"");
}

/* Send TEXT on C and wait for its own echo (delivered: published). */
static void say(struct client *c, struct seen *sn, const char *text)
{
    char buf[128], want[64];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"message\",\"text\":\"%s\"}", text);
    ck_assert_int_eq(wsc_send(c, WS_FIN | WS_OP_TEXT, buf, (size_t)n), 0);
    snprintf(want, sizeof want, "\"text\":\"%s\"", text);
    collect(c, sn, want);
}

/* kill -9 of the server's whole process group (the master leads it), then reap. */
static void kill_all(struct server *s)
{
    ck_assert_int_eq(kill(-s->pid, SIGKILL), 0);
    ck_assert(srv_wait_exit(s, 5000));
    int64_t end = it_now_ms() + 3000;
    while (kill(-s->pid, 0) == 0 && it_now_ms() < end)
        it_sleep_ms(20);
}

/* History of a fresh member of ROOM (PATH with its query) equals EXPECT[0..n) by text, in order. */
static void expect_history(int port, const char *path, const struct seen *expect, int from,
                           struct seen *got)
{
    struct client c;
    join(&c, port, path, got);
    ck_assert_int_eq(got->gaps, 0);
    ck_assert_int_eq(got->n, expect->n - from);
    for (int i = 0; i < got->n; i++) {
        ck_assert_str_eq(got->texts[i], expect->texts[from + i]);
        ck_assert_uint_eq(got->ids[i], expect->ids[from + i]);
    }
    cli_close(&c);
}

START_TEST(restart_keeps_history_and_ids)
{
    journal_dir_make();
    struct server s;
    start(&s, NULL);
    struct client a, b;
    struct seen sa, sb, got;
    join(&a, s.port, "/chat/jr?nick=alice", &sa);
    join(&b, s.port, "/chat/jr?nick=bob", &sb);     /* a join event: an id not journaled */
    char text[16];
    for (int i = 0; i < 6; i++) {
        snprintf(text, sizeof text, "m%d", i);
        say(&a, &sa, text);
    }
    ck_assert_int_eq(sa.n, 6);
    cli_close(&b);          /* and a leave event: an id after the last message */
    collect(&a, &sa, "\"type\":\"leave\"");
    cli_close(&a);
    unsigned long long max_before = sa.max_id;
    ck_assert_uint_gt(max_before, sa.ids[5]);
    srv_stop(&s);

    start(&s, NULL);
    ck_assert_msg(WAIT_FOR(it_file_count(s.log, "6 messages restored") == 1, 5000),
                  "no restore line in %s", s.log);
    expect_history(s.port, "/chat/jr?nick=carol", &sa, 0, &got);
    /* Resume from the third message: the three after it, no gap, nothing twice. */
    char path[128];
    snprintf(path, sizeof path, "/chat/jr?nick=dave&since=%llu", sa.ids[2]);
    expect_history(s.port, path, &sa, 3, &got);
    /* Resume from the newest id any client saw (the leave): nothing, no gap. */
    snprintf(path, sizeof path, "/chat/jr?nick=erin&since=%llu", max_before);
    struct client e;
    join(&e, s.port, path, &got);
    ck_assert_int_eq(got.gaps, 0);
    ck_assert_int_eq(got.n, 0);
    /* New ids are above everything sent before the restart. */
    say(&e, &got, "after");
    ck_assert_uint_gt(got.ids[0], max_before);
    cli_close(&e);
    /* This time a fast stop (SIGTERM): the journal still writes and syncs the rest. */
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    ck_assert(srv_wait_exit(&s, 5000));
    srv_stop(&s);

    /* And once more: the message of the second run is kept too. */
    start(&s, NULL);
    ck_assert_msg(WAIT_FOR(it_file_count(s.log, "7 messages restored") == 1, 5000),
                  "no restore line in %s", s.log);
    srv_stop(&s);
    journal_dir_remove();
}
END_TEST

/* The newest segment file of the journal (its path into OUT). */
static void newest_segment(char *out, size_t cap)
{
    DIR *d = opendir(hist);
    ck_assert_ptr_nonnull(d);
    char best[256] = "";
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".wsj") != NULL && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", de->d_name);
    closedir(d);
    ck_assert_msg(best[0] != '\0', "no segment in %s", hist);
    snprintf(out, cap, "%s/%s", hist, best);
}

START_TEST(kill9_everysec_cuts_a_torn_tail_and_keeps_what_was_synced)
{
    journal_dir_make();
    struct server s;
    start(&s, "history_fsync everysec\n");
    struct client a;
    struct seen sa, got;
    join(&a, s.port, "/chat/k9?nick=alice", &sa);
    char text[16];
    for (int i = 0; i < 20; i++) {
        snprintf(text, sizeof text, "k%d", i);
        say(&a, &sa, text);
    }
    it_sleep_ms(1600);      /* past a sync: the promise is "at most about a second" */
    kill_all(&s);
    cli_close(&a);
    /* A record cut short, as a kill mid-write leaves it. */
    char seg[384];
    newest_segment(seg, sizeof seg);
    struct stat st;
    ck_assert_int_eq(stat(seg, &st), 0);
    int fd = open(seg, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    static const unsigned char torn[] = { 0x40, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 1, 2, 3 };
    ck_assert_int_eq(write(fd, torn, sizeof torn), (ssize_t)sizeof torn);
    close(fd);
    srv_stop(&s);

    start(&s, NULL);
    char want[96];
    snprintf(want, sizeof want, "at offset %lld: %zu bytes cut", (long long)st.st_size,
             sizeof torn);
    ck_assert_msg(WAIT_FOR(it_file_count(s.log, want) == 1, 5000), "no warn \"%s\" in %s",
                  want, s.log);
    expect_history(s.port, "/chat/k9?nick=bob", &sa, 0, &got);
    srv_stop(&s);
    journal_dir_remove();
}
END_TEST

START_TEST(kill9_always_keeps_every_delivered_message)
{
    journal_dir_make();
    struct server s;
    start(&s, "history_fsync always\n");
    struct client a;
    struct seen sa, got;
    join(&a, s.port, "/chat/al?nick=alice", &sa);
    char text[16];
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof text, "a%d", i);
        say(&a, &sa, text);
    }
    /* The tenth echo arrived: no sleep, kill -9 at once. */
    kill_all(&s);
    cli_close(&a);
    srv_stop(&s);
    start(&s, NULL);
    expect_history(s.port, "/chat/al?nick=bob", &sa, 0, &got);
    srv_stop(&s);
    journal_dir_remove();
}
END_TEST

START_TEST(refuses_another_version_and_an_unwritable_folder)
{
    journal_dir_make();
    ck_assert_int_eq(mkdir(hist, 0750), 0);
    /* A segment whose header says version 9. */
    char seg[160];
    snprintf(seg, sizeof seg, "%s/%020llu.wsj", hist, 1000ull);
    unsigned char head[32] = { 0x89, 'W', 'S', 'J', 'R', 'N', 'L', '\n', 9 };
    head[16] = 0xe8;
    head[17] = 0x03;
    int fd = open(seg, O_WRONLY | O_CREAT, 0640);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, head, sizeof head), (ssize_t)sizeof head);
    close(fd);
    struct server s;
    char extra[256];
    snprintf(extra, sizeof extra, "history_file %s\n", hist);
    srv_init(&s, extra);
    const char *args[] = { "-c", s.conf, NULL };
    srv_spawn(&s, args);
    ck_assert(srv_wait_exit(&s, 5000));
    ck_assert_msg(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 1, "status %d", s.status);
    ck_assert_msg(it_file_count(s.err, "version") >= 1, "no word of the version in %s", s.err);
    srv_stop(&s);

    /* -t: a folder under a regular file cannot be made. */
    snprintf(extra, sizeof extra, "history_file %s/history\n", seg);
    srv_init(&s, extra);
    const char *targs[] = { "-t", "-c", s.conf, NULL };
    ck_assert_int_eq(srv_run_sync(&s, targs), 1);
    ck_assert_msg(it_file_count(s.err, "history_file") >= 1, "-t did not name history_file");
    srv_stop(&s);
    journal_dir_remove();
}
END_TEST

/*
 * A resume from before what the ring holds: the rest comes from the
 * journal, in order, once each, with no gap; the same after a restart,
 * when the ring holds only the newest part again.
 */
#define OLD_N 400
static void expect_all_since(int port, unsigned long long since, unsigned long long first,
                             unsigned long long last)
{
    struct client c;
    char path[128];
    snprintf(path, sizeof path, "/chat/old?nick=late&since=%llu", since);
    ck_assert_int_eq(cli_connect(&c, port), 0);
    ck_assert_int_eq(wsc_handshake(&c, path, NULL, NULL, 0), 101);
    int n = 0, gaps = 0;
    unsigned long long prev = 0;
    int64_t end = it_now_ms() + 20000;
    for (;;) {
        struct wsc_msg m;
        ck_assert_msg(wsc_recv(&c, &m, (int)(end - it_now_ms())) == 1, "after %d messages", n);
        const char *t = (const char *)m.data;
        int done = strstr(t, "\"type\":\"history_end\"") != NULL;
        gaps += strstr(t, "\"type\":\"gap\"") != NULL;
        if (strstr(t, "\"type\":\"message\"")) {
            unsigned long long id = num_of(t, "\"id\":");
            char want[32];
            snprintf(want, sizeof want, "\"text\":\"o%d ", n);
            ck_assert_msg(strstr(t, want) != NULL, "message %d out of order: %.60s", n, t);
            ck_assert_uint_gt(id, prev);
            prev = id;
            if (n == 0)
                ck_assert_uint_eq(id, first);
            n++;
        }
        wsc_msg_free(&m);
        if (done)
            break;
    }
    ck_assert_int_eq(gaps, 0);
    ck_assert_int_eq(n, OLD_N);
    ck_assert_uint_eq(prev, last);
    cli_close(&c);
}

START_TEST(since_older_than_the_ring_comes_from_the_journal)
{
    journal_dir_make();
    struct server s;
    start(&s, "ring_size 1m\nworkers 1\n");
    struct client a;
    struct seen sa;
    join(&a, s.port, "/chat/old?nick=alice", &sa);
    /* 400 messages of 3.5 KiB: the 1 MiB ring turns over. */
    static char buf[4096], text[3600];
    memset(text, 'y', sizeof text - 100);
    text[sizeof text - 100] = '\0';
    unsigned long long first = 0, last = 0;
    for (int i = 0; i < OLD_N; i++) {
        int n = snprintf(buf, sizeof buf, "{\"type\":\"message\",\"text\":\"o%d %s\"}", i, text);
        ck_assert_int_eq(wsc_send(&a, WS_FIN | WS_OP_TEXT, buf, (size_t)n), 0);
        char want[32];
        snprintf(want, sizeof want, "\"text\":\"o%d ", i);
        int64_t end = it_now_ms() + 5000;
        for (;;) {
            struct wsc_msg m;
            ck_assert(wsc_recv(&a, &m, (int)(end - it_now_ms())) == 1);
            int hit = strstr((char *)m.data, want) != NULL;
            if (hit) {
                last = num_of((char *)m.data, "\"id\":");
                if (i == 0)
                    first = last;
            }
            wsc_msg_free(&m);
            if (hit)
                break;
        }
    }
    cli_close(&a);
    expect_all_since(s.port, first - 1, first, last);
    srv_stop(&s);
    start(&s, "ring_size 1m\nworkers 1\n");
    expect_all_since(s.port, first - 1, first, last);
    srv_stop(&s);
    journal_dir_remove();
}
END_TEST

/* GET PATH: the body (malloc'd). */
static char *get_body(int port, const char *path)
{
    struct client c;
    struct httpc_resp r;
    char req[256], v[32];
    ck_assert_int_eq(cli_connect(&c, port), 0);
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    ck_assert_int_eq(cli_sendstr(&c, req), 0);
    ck_assert_int_eq(httpc_read_head(&c, &r, 5000), 200);
    ck_assert_ptr_nonnull(httpc_header(&r, "Content-Length", v, sizeof v));
    size_t len = strtoul(v, NULL, 10);
    int64_t end = it_now_ms() + 5000;
    while (cli_pending(&c) < len && it_now_ms() < end && cli_fill(&c, 1000) > 0)
        ;
    ck_assert_uint_ge(cli_pending(&c), len);
    char *body = strndup((const char *)c.rx + c.off, len);
    cli_close(&c);
    return body;
}

START_TEST(disk_full_refuses_under_always_and_recovers)
{
    journal_dir_make();
    struct server s;
    start(&s, "history_fsync always\nworkers 1\n");
    snprintf(s.alert_ok, sizeof s.alert_ok, "history journal");
    pid_t jp = -1;
    ck_assert(WAIT_FOR((jp = srv_journal_pid(&s)) > 0, 5000));
    /* The disk is "full" for the journal: no file may grow past 64 KiB. */
    /* The soft limit only: raising it again needs no privilege. */
    struct rlimit was;
    ck_assert_int_eq(prlimit(jp, RLIMIT_FSIZE, NULL, &was), 0);
    struct rlimit small = { 64 * 1024, was.rlim_max }, big = was;
    ck_assert_int_eq(prlimit(jp, RLIMIT_FSIZE, &small, NULL), 0);
    struct client a;
    struct seen sa;
    join(&a, s.port, "/chat/df?nick=alice", &sa);
    char buf[2048], body[1800];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    /*
     * Send until one is refused. A message taken just before the journal
     * found it cannot write is held back, not lost: under always nobody
     * gets it before it is on disk.
     */
    int refused = 0, held = -1, delivered = 0;
    for (int i = 0; i < 200 && !refused; i++) {
        int n = snprintf(buf, sizeof buf, "{\"type\":\"message\",\"text\":\"%d %s\"}", i, body);
        ck_assert_int_eq(wsc_send(&a, WS_FIN | WS_OP_TEXT, buf, (size_t)n), 0);
        struct wsc_msg m;
        int got = wsc_recv(&a, &m, 700);
        ck_assert_int_ne(got, 0);
        if (got < 0) {
            if (held < 0)
                held = i;       /* taken, waiting for the disk */
            continue;
        }
        const char *t = (const char *)m.data;
        refused = strstr(t, "\"code\":\"unavailable\"") != NULL;
        delivered += strstr(t, "\"type\":\"message\"") != NULL;
        wsc_msg_free(&m);
    }
    ck_assert_msg(refused, "no message was refused with the journal unable to write");
    ck_assert(WAIT_FOR(it_file_count(s.log, "retrying every second") == 1, 3000));
    char *st = get_body(s.port, "/stats");
    ck_assert_msg(strstr(st, "\"failing\":true") && num_of(st, "\"write_errors\":") > 0, "%s", st);
    free(st);
    st = get_body(s.port, "/metrics");
    ck_assert_msg(strstr(st, "wschat_journal_failing 1") && strstr(st, "wschat_journal_write_errors_total "),
                  "%s", st);
    free(st);
    /* Space again: within a couple of retries messages are taken and delivered. */
    ck_assert_msg(prlimit(jp, RLIMIT_FSIZE, &big, NULL) == 0, "prlimit(%d): %s", (int)jp,
                  strerror(errno));
    ck_assert(WAIT_FOR(it_file_count(s.log, "writing again") == 1, 5000));
    say(&a, &sa, "back");
    /* What was held back came first, in order: "back" is the last message seen. */
    if (held >= 0) {
        char want[16];
        snprintf(want, sizeof want, "%d x", held);
        int found = -1;
        for (int i = 0; i < sa.n; i++)
            if (strncmp(sa.texts[i], want, strlen(want)) == 0)
                found = i;
        ck_assert_msg(found >= 0 && found < sa.n - 1, "held message %d not delivered before "
                      "\"back\"", held);
    }
    ck_assert_int_eq(it_file_count(s.log, "retrying every second"), 1);    /* once per episode */
    cli_close(&a);
    srv_stop(&s);
    journal_dir_remove();
}
END_TEST

Suite *history_suite(void)
{
    Suite *s = suite_create("history");
    TCase *tc = tcase_create("restart");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, restart_keeps_history_and_ids);
    tcase_add_test(tc, kill9_everysec_cuts_a_torn_tail_and_keeps_what_was_synced);
    tcase_add_test(tc, kill9_always_keeps_every_delivered_message);
    tcase_add_test(tc, refuses_another_version_and_an_unwritable_folder);
    tcase_add_test(tc, disk_full_refuses_under_always_and_recovers);
    tcase_add_test(tc, since_older_than_the_ring_comes_from_the_journal);
    suite_add_tcase(s, tc);
    return s;
}
