/*
 * test_crash.c: SIGKILL at random moments loses nothing acknowledged.
 *
 * A child process appends from four threads and reports each acknowledged
 * append (position and id) on a pipe. The parent kills it with SIGKILL after
 * a random delay, 20 times over the same store. After each kill the store
 * must open, pass the integrity check, hold every reported event at its
 * reported position, and have positions 1..head without a gap.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "support.h"

#define ROUNDS        20
#define CHILD_THREADS 4
#define MAX_ACKS      200000

typedef struct ack {
    int64_t position;
    td_uuid id;
} ack;

static td_store *child_store;

static void *child_appender(void *arg)
{
    char stream[32];
    snprintf(stream, sizeof stream, "crash-%ld-%d", (long)getpid(), (int)(intptr_t)arg);
    for (int i = 0;; i++) {
        td_event ev =
            tt_event("Appended", "{\"payload\":\"some bytes to make the row a realistic size\"}");
        if (td_store_append(child_store, stream, i, &ev, 1) < 0)
            _exit(3);
        ack a = {ev.position, ev.id};
        if (write(1, &a, sizeof a) != (ssize_t)sizeof a)
            _exit(4);
    }
    return NULL;
}

static int child_main(const char *url)
{
    pthread_t threads[CHILD_THREADS];
    if (td_store_open(&child_store, url, NULL) < 0)
        return 2;
    for (intptr_t t = 0; t < CHILD_THREADS; t++)
        pthread_create(&threads[t], NULL, child_appender, (void *)t);
    pause(); /* until killed */
    return 0;
}

typedef struct verify {
    int64_t expected;
    int gaps;
    ack *acks;
    size_t ack_count;
    size_t next_ack; /* acks sorted by position */
    int missing;
} verify;

static int verify_event(const td_event *ev, void *payload)
{
    verify *v = payload;
    if (ev->position != ++v->expected)
        v->gaps++;
    while (v->next_ack < v->ack_count && v->acks[v->next_ack].position == ev->position) {
        if (td_uuid_compare(&v->acks[v->next_ack].id, &ev->id) != 0)
            v->missing++;
        v->next_ack++;
    }
    return 0;
}

static int by_position(const void *a, const void *b)
{
    int64_t x = ((const ack *)a)->position, y = ((const ack *)b)->position;
    return (x > y) - (x < y);
}

static size_t read_acks(int fd, ack *acks, size_t have)
{
    char *buf = (char *)(acks + have);
    size_t got = 0;
    ssize_t n;
    while (have + got / sizeof(ack) < MAX_ACKS &&
           (n = read(fd, buf + got, (MAX_ACKS - have) * sizeof(ack) - got)) > 0)
        got += (size_t)n;
    return got / sizeof(ack);
}

static const char *self;

static void test_sigkill_loses_nothing_acknowledged(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "crash");
    ack *acks = malloc(MAX_ACKS * sizeof *acks);
    size_t ack_count = 0;
    unsigned seed = (unsigned)time(NULL);
    print_message("seed %u\n", seed);
    for (int round = 0; round < ROUNDS; round++) {
        int fd;
        const char *args[] = {url, NULL};
        pid_t pid = tt_spawn(self, args, &fd);
        struct timespec delay = {0, (long)(20 + rand_r(&seed) % 230) * 1000000L};
        nanosleep(&delay, NULL);
        kill(pid, SIGKILL);
        int status = tt_wait(pid);
        assert_int_equal(status, 128 + SIGKILL);
        size_t got = read_acks(fd, acks, ack_count); /* all acks sent before the kill */
        close(fd);
        ack_count += got;

        td_store *store = tt_open(url);
        assert_td_ok(td_store_check(store));
        qsort(acks, ack_count, sizeof *acks, by_position);
        verify v = {0, 0, acks, ack_count, 0, 0};
        td_read_query all = TD_READ_QUERY_INIT;
        assert_td_ok(td_store_read(store, &all, verify_event, &v));
        assert_int_equal(v.gaps, 0);
        assert_int_equal(v.missing, 0);
        assert_int_equal(v.next_ack, ack_count); /* every acknowledged event found */
        td_store_free(store);
    }
    print_message("%zu acknowledged appends across %d kills\n", ack_count, ROUNDS);
    assert_true(ack_count > ROUNDS);
    free(acks);
    free(url);
    tt_rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2]);
    self = argv[0];
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sigkill_loses_nothing_acknowledged)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
