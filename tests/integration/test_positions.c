/*
 * test_positions.c: positions that no reader can pass. Several writer
 * processes (each with several threads) append units of random sizes to
 * shared streams, roll some back on purpose and pause inside others, while
 * a subscriber in this process follows the log with td_store_wait and
 * td_store_read from the last position it handled, as the bus does. It
 * must see every position exactly once and in order (1, 2, 3, … with no
 * gap: a position it skipped could not come back), no event of a unit that
 * rolled back, each stream's versions in order, and at every position the
 * event whose position its writer was handed.
 *
 * TD_TEST_POSITIONS_EVENTS sets the number of events (default 4000; the
 * slow tier runs 100,000 on PostgreSQL).
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "support.h"

#define PROCESSES 4
#define THREADS   4 /* per process */
#define STREAMS   8 /* shared by every writer */
#define MAX_UNIT  8 /* events in one unit */

static const char *self;

static int64_t total_events(void)
{
    const char *n = getenv("TD_TEST_POSITIONS_EVENTS");
    int64_t v = n && n[0] ? strtoll(n, NULL, 10) : 4000;
    return v < PROCESSES * THREADS ? PROCESSES * THREADS : v;
}

/* ---- the writers (children) -------------------------------------------------- */

typedef struct writer {
    td_store *store;
    pthread_mutex_t *out_lock;
    unsigned int seed;
    int64_t quota; /* events this thread must get committed */
    int failed;
} writer;

typedef struct unit_args {
    writer *w;
    int size;
    bool roll_back;
    int pause_us; /* inside the transaction, before or after the append */
    bool pause_after;
    td_event events[MAX_UNIT];
} unit_args;

static int write_unit(td_txn *txn, void *payload)
{
    unit_args *u = payload;
    char stream[32];
    snprintf(stream, sizeof stream, "shared-%u", rand_r(&u->w->seed) % STREAMS);
    for (int i = 0; i < u->size; i++)
        u->events[i] = tt_event(u->roll_back ? "RolledBack" : "Written", "{\"pad\":\"x\"}");
    if (u->pause_us && !u->pause_after)
        usleep((useconds_t)u->pause_us);
    int error = td_txn_append(txn, stream, TD_EXPECT_ANY, u->events, (size_t)u->size);
    if (error < 0)
        return error;
    if (u->pause_us && u->pause_after)
        usleep((useconds_t)u->pause_us);
    return u->roll_back ? TD_EINVAL : 0;
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    int64_t done = 0;
    while (done < w->quota && !w->failed) {
        unit_args u = {.w = w};
        unsigned int r = (unsigned int)rand_r(&w->seed);
        u.size = 1 + (int)(r % MAX_UNIT);
        if (u.size > w->quota - done)
            u.size = (int)(w->quota - done);
        u.roll_back = rand_r(&w->seed) % 8 == 0;
        if (rand_r(&w->seed) % 16 == 0) {
            u.pause_us = 200 + rand_r(&w->seed) % 1800;
            u.pause_after = rand_r(&w->seed) % 2;
        }
        int error = td_transact(w->store, write_unit, &u);
        if (u.roll_back) {
            if (error != TD_EINVAL) {
                fprintf(stderr, "writer: a unit that rolled back returned %d: %s\n", error,
                        td_error_last());
                w->failed = 1;
            }
            continue;
        }
        if (error < 0) {
            fprintf(stderr, "writer: %s\n", td_error_last());
            w->failed = 1;
            break;
        }
        /* What this writer was handed: position and id of each event. */
        pthread_mutex_lock(w->out_lock);
        for (int i = 0; i < u.size; i++) {
            char id[TD_UUID_STR_LEN + 1];
            td_uuid_format(id, &u.events[i].id);
            printf("%lld %s\n", (long long)u.events[i].position, id);
        }
        pthread_mutex_unlock(w->out_lock);
        done += u.size;
        if (rand_r(&w->seed) % 32 == 0)
            usleep(rand_r(&w->seed) % 3000); /* and now and then between units */
    }
    return NULL;
}

static int child_main(const char *url, int64_t quota, unsigned int seed)
{
    td_store *store = NULL;
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.pipelined_commits = strcmp(tt_backend(), "sqlite-pipelined") == 0;
    opts.busy_timeout_ms = 30000;
    if (td_store_open(&store, url, &opts) < 0) {
        fprintf(stderr, "child: %s\n", td_error_last());
        return 2;
    }
    pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
    writer w[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (writer){.store = store, .out_lock = &out_lock, .seed = seed * 31 + (unsigned)t};
        w[t].quota = quota / THREADS + (t < quota % THREADS ? 1 : 0);
        pthread_create(&threads[t], NULL, writer_main, &w[t]);
    }
    int failed = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        failed |= w[t].failed;
    }
    fflush(stdout);
    td_store_free(store);
    return failed ? 3 : 0;
}

/* ---- the subscriber (this process) ------------------------------------------- */

typedef struct follower {
    td_store *store;
    int64_t total;
    int64_t last;      /* the last position handled */
    td_uuid *ids;      /* by position - 1 */
    int64_t *versions; /* each stream's last version seen */
    int out_of_order;  /* a position other than last + 1 */
    int rolled_back;   /* an event of a unit that rolled back */
    int version_skips; /* a stream's version other than its last + 1 */
    char problem[256];
    int error;
} follower;

static int follow_event(const td_event *ev, void *payload)
{
    follower *f = payload;
    if (ev->position != f->last + 1) {
        if (f->out_of_order++ == 0)
            snprintf(f->problem, sizeof f->problem, "after position %lld came %lld",
                     (long long)f->last, (long long)ev->position);
    }
    if (strcmp(ev->type, "Written") != 0)
        f->rolled_back++;
    unsigned int s = 0;
    if (sscanf(ev->stream, "shared-%u", &s) == 1 && s < STREAMS) {
        if (ev->version != f->versions[s] + 1)
            f->version_skips++;
        f->versions[s] = ev->version;
    }
    if (ev->position >= 1 && ev->position <= f->total)
        f->ids[ev->position - 1] = ev->id;
    if (ev->position > f->last)
        f->last = ev->position;
    return 0;
}

static void *follower_main(void *arg)
{
    follower *f = arg;
    time_t give_up = time(NULL) + 600;
    while (f->last < f->total && time(NULL) < give_up) {
        int64_t head = 0;
        int error = td_store_wait(f->store, f->last, 1000, &head);
        if (error == 0) {
            td_read_query q = TD_READ_QUERY_INIT;
            q.after_position = f->last;
            error = td_store_read(f->store, &q, follow_event, f);
        }
        if (error < 0) {
            f->error = error;
            snprintf(f->problem, sizeof f->problem, "%s", td_error_last());
            break;
        }
    }
    return NULL;
}

/* Reads the children's reports ("POSITION ID" lines) from every pipe
 * until each closes, into handed (by position - 1); counts them. */
static int64_t collect(int fds[PROCESSES], td_uuid *handed, int64_t total, int *bad)
{
    char buf[PROCESSES][8192];
    size_t used[PROCESSES] = {0};
    int open_count = PROCESSES;
    int64_t count = 0;
    while (open_count > 0) {
        struct pollfd p[PROCESSES];
        for (int i = 0; i < PROCESSES; i++)
            p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(p, PROCESSES, -1) < 0)
            continue;
        for (int i = 0; i < PROCESSES; i++) {
            if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            ssize_t n = read(fds[i], buf[i] + used[i], sizeof buf[i] - 1 - used[i]);
            if (n <= 0) {
                close(fds[i]);
                fds[i] = -1;
                open_count--;
                continue;
            }
            used[i] += (size_t)n;
            buf[i][used[i]] = '\0';
            char *line = buf[i], *nl;
            while ((nl = strchr(line, '\n')) != NULL) {
                *nl = '\0';
                long long pos = 0;
                char id[64] = "";
                td_uuid u;
                if (sscanf(line, "%lld %63s", &pos, id) != 2 || pos < 1 || pos > total ||
                    td_uuid_parse(&u, id) < 0) {
                    (*bad)++;
                } else {
                    handed[pos - 1] = u;
                    count++;
                }
                line = nl + 1;
            }
            used[i] = strlen(line);
            memmove(buf[i], line, used[i]);
        }
    }
    return count;
}

static void test_no_reader_passes_a_position(void **state)
{
    (void)state;
    int64_t total = total_events();
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "positions");
    td_store *store = tt_open(url); /* made before the race; the subscriber's handle */
    follower f = {.store = store, .total = total};
    f.ids = calloc((size_t)total, sizeof *f.ids);
    f.versions = calloc(STREAMS, sizeof *f.versions);
    td_uuid *handed = calloc((size_t)total, sizeof *handed);
    assert_non_null(f.ids);
    assert_non_null(f.versions);
    assert_non_null(handed);
    pthread_t follower_thread;
    assert_int_equal(pthread_create(&follower_thread, NULL, follower_main, &f), 0);

    pid_t pids[PROCESSES];
    int fds[PROCESSES];
    char quota[PROCESSES][24], seed[PROCESSES][24];
    unsigned int base = (unsigned int)time(NULL);
    print_message("%lld events, seed %u\n", (long long)total, base);
    for (int p = 0; p < PROCESSES; p++) {
        snprintf(quota[p], sizeof quota[p], "%lld",
                 (long long)(total / PROCESSES + (p < total % PROCESSES ? 1 : 0)));
        snprintf(seed[p], sizeof seed[p], "%u", base + (unsigned)p * 7919u);
        const char *args[] = {url, quota[p], seed[p], NULL};
        pids[p] = tt_spawn(self, args, &fds[p]);
    }
    int bad_lines = 0;
    int64_t acknowledged = collect(fds, handed, total, &bad_lines);
    for (int p = 0; p < PROCESSES; p++)
        assert_int_equal(tt_wait(pids[p]), 0);
    pthread_join(follower_thread, NULL);

    if (f.error || f.out_of_order)
        fail_msg("the subscriber: %s", f.problem);
    assert_int_equal(bad_lines, 0);
    assert_int_equal(acknowledged, total);
    assert_int_equal(f.last, total); /* every position, none twice (last + 1 each) */
    assert_int_equal(f.rolled_back, 0);
    assert_int_equal(f.version_skips, 0);
    int64_t mismatched = 0;
    for (int64_t i = 0; i < total; i++)
        if (memcmp(&f.ids[i], &handed[i], sizeof handed[i]) != 0)
            mismatched++;
    assert_int_equal(mismatched, 0); /* the position handed over is the one read */

    /* Nothing more came after the last. */
    int64_t head = 0;
    assert_td_ok(td_store_head(store, &head));
    assert_int_equal(head, total);
    free(handed);
    free(f.ids);
    free(f.versions);
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], strtoll(argv[3], NULL, 10),
                          (unsigned int)strtoul(argv[4], NULL, 10));
    self = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_reader_passes_a_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
