/*
 * test_concurrency.c: 16 threads append to one shared stream (racing with
 * expected versions) and to a private stream each. Exactly one writer wins
 * each version of the shared stream, every acknowledged append is stored
 * once, nothing else is, and positions run 1..N without gaps.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define THREADS 16
#define ROUNDS  60

typedef struct worker {
    td_store *store;
    int index;
    int wins;            /* acknowledged appends to the shared stream */
    int64_t won[ROUNDS]; /* the versions it won */
    int conflicts;
    int failures;
} worker;

static int append_as(worker *w, const char *stream, int64_t expected, int round, int64_t *version)
{
    char data[64];
    td_event ev;
    td_event_init(&ev);
    snprintf(data, sizeof data, "{\"thread\":%d,\"round\":%d}", w->index, round);
    ev.type = "Tick";
    ev.data = data;
    int rc = td_store_append(w->store, stream, expected, &ev, 1);
    *version = ev.version;
    return rc;
}

static void *work(void *arg)
{
    worker *w = arg;
    char mine[32];
    snprintf(mine, sizeof mine, "private-%d", w->index);
    for (int round = 0; round < ROUNDS; round++) {
        int64_t current = 0, version = 0;
        if (td_store_stream_version(w->store, "counter-shared", &current) < 0)
            w->failures++;
        int rc = append_as(w, "counter-shared", current, round, &version);
        if (rc == 0)
            w->won[w->wins++] = version;
        else if (rc == TD_ECONFLICT)
            w->conflicts++;
        else
            w->failures++;
        if (append_as(w, mine, round, round, &version) < 0 || version != round + 1)
            w->failures++;
    }
    return NULL;
}

typedef struct audit {
    int64_t expected_position;
    int gaps;
    char winners[ROUNDS * THREADS + 1]; /* version -> thread that wrote it, +1 */
    int shared;
    int private_per_thread[THREADS];
} audit;

static int audit_event(const td_event *ev, void *payload)
{
    audit *a = payload;
    if (ev->position != ++a->expected_position)
        a->gaps++;
    int thread = -1, round = -1;
    sscanf(ev->data, "{\"thread\":%d,\"round\":%d}", &thread, &round);
    assert_in_range(thread, 0, THREADS - 1);
    if (strcmp(ev->stream, "counter-shared") == 0) {
        a->shared++;
        assert_in_range(ev->version, 1, ROUNDS * THREADS);
        assert_int_equal(a->winners[ev->version], 0);
        a->winners[ev->version] = (char)(thread + 1);
    } else {
        a->private_per_thread[thread]++;
    }
    return 0;
}

static void test_sixteen_threads(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "race");
    td_store *store = tt_open(url);
    static worker workers[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (worker){.store = store, .index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, work, &workers[i]), 0);
    }
    int wins = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(workers[i].failures, 0);
        assert_int_equal(workers[i].wins + workers[i].conflicts, ROUNDS);
        wins += workers[i].wins;
    }
    assert_true(wins >= ROUNDS); /* someone wins every round at least */

    static audit a;
    td_read_query all = TD_READ_QUERY_INIT;
    assert_td_ok(td_store_read(store, &all, audit_event, &a));
    assert_int_equal(a.gaps, 0);
    assert_int_equal(a.expected_position, wins + THREADS * ROUNDS);
    assert_int_equal(a.shared, wins);
    int64_t version = 0;
    assert_td_ok(td_store_stream_version(store, "counter-shared", &version));
    assert_int_equal(version, wins);
    /* Each version's stored writer is the thread that was told it won. */
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(a.private_per_thread[i], ROUNDS);
        for (int k = 0; k < workers[i].wins; k++)
            assert_int_equal(a.winners[workers[i].won[k]], i + 1);
    }
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sixteen_threads)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
