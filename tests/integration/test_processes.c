/*
 * test_processes.c: several processes share one store. Writers of different
 * processes wait for each other's lock instead of failing, every append
 * lands once with positions 1..N, and a process waiting for new events
 * notices another process's commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"
#include "support.h"

#define WRITERS    3
#define PER_WRITER 150

static const char *self;

static int child_main(const char *url, const char *stream, int count)
{
    td_store *store = NULL;
    if (td_store_open(&store, url, NULL) < 0) {
        fprintf(stderr, "child: %s\n", td_error_last());
        return 2;
    }
    for (int i = 0; i < count; i++) {
        td_event ev = tt_event("FromChild", "{}");
        if (td_store_append(store, stream, i, &ev, 1) < 0) {
            fprintf(stderr, "child append: %s\n", td_error_last());
            return 3;
        }
    }
    td_store_free(store);
    return 0;
}

typedef struct tally {
    int64_t expected;
    int gaps;
    int64_t next_version[WRITERS];
    int out_of_order;
} tally;

static int tally_event(const td_event *ev, void *payload)
{
    tally *t = payload;
    int w = -1;
    if (ev->position != ++t->expected)
        t->gaps++;
    sscanf(ev->stream, "writer-%d", &w);
    assert_in_range(w, 0, WRITERS - 1);
    if (ev->version != ++t->next_version[w])
        t->out_of_order++;
    return 0;
}

static void test_concurrent_writer_processes(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "shared");
    td_store_free(tt_open(url)); /* create it before the race */
    pid_t pids[WRITERS];
    char streams[WRITERS][32], count[16];
    snprintf(count, sizeof count, "%d", PER_WRITER);
    for (int w = 0; w < WRITERS; w++) {
        snprintf(streams[w], sizeof streams[w], "writer-%d", w);
        const char *args[] = {url, streams[w], count, NULL};
        pids[w] = tt_spawn(self, args, NULL);
    }
    for (int w = 0; w < WRITERS; w++)
        assert_int_equal(tt_wait(pids[w]), 0);
    td_store *store = tt_open(url);
    tally t = {0};
    td_read_query all = TD_READ_QUERY_INIT;
    assert_td_ok(td_store_read(store, &all, tally_event, &t));
    assert_int_equal(t.expected, WRITERS * PER_WRITER);
    assert_int_equal(t.gaps, 0);
    assert_int_equal(t.out_of_order, 0);
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

static void test_wait_sees_other_process(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "watched");
    td_store *store = tt_open(url);
    int64_t head = -1;
    const char *args[] = {url, "writer-0", "1", NULL};
    pid_t pid = tt_spawn(self, args, NULL);
    assert_td_ok(td_store_wait(store, 0, 30000, &head));
    assert_int_equal(head, 1);
    assert_int_equal(tt_wait(pid), 0);
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], argv[3], atoi(argv[4]));
    self = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_writer_processes),
        cmocka_unit_test(test_wait_sees_other_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
