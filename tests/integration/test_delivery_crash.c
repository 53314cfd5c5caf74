/*
 * test_delivery_crash.c: delivery across process deaths.
 *
 * - SIGKILL during delivery, again and again: afterwards every event has
 *   been handled, transactional effects exactly once, nothing skipped.
 * - A handler that aborts the process on one event: after max_attempts
 *   process deaths that event is parked and the service runs on.
 * - After a SIGKILL that no event caused, the events that were in flight
 *   are handed over again in parallel across streams (in order within
 *   each), with one durable write for the lot, not one each.
 * - A second process appending to the store wakes the subscriber.
 * - A subscription held by a live process on this host is not taken over,
 *   even with its lease expired; once that process is SIGKILLed it is, at
 *   once, while the dead process is still a zombie nobody has reaped.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "support.h"

#define STREAMS      8
#define PER_STREAM   40
#define MAX_ATTEMPTS 3

static const char *self;

static int count_in_unit(td_delivery *d, const td_event *ev, void *payload)
{
    td_txn *txn = td_delivery_txn(d);
    char *doc = NULL, body[32];
    int n = 0;
    (void)payload;
    if (strstr(ev->data, "\"poison\":true"))
        abort(); /* a handler bug that kills the process */
    if (td_txn_doc_get(txn, "counts", ev->stream, &doc, NULL) == 0)
        sscanf(doc, "{\"n\":%d}", &n);
    td_free(doc);
    snprintf(body, sizeof body, "{\"n\":%d}", n + 1);
    return td_txn_doc_put(txn, "counts", ev->stream, body, 0);
}

/* Child: runs the subscription until everything up to the head is done
 * (exit 0), or is killed. */
static int child_main(const char *url, unsigned max_attempts)
{
    td_store *store = NULL;
    td_subscription *sub = NULL;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    int64_t head = 0;
    opts.name = "counter";
    opts.lanes = 4;
    opts.transactional = true;
    opts.max_attempts = max_attempts;
    opts.batch_size = 16;
    if (td_store_open(&store, url, NULL) < 0 ||
        td_subscription_new(&sub, store, &opts, count_in_unit, NULL) < 0 ||
        td_subscription_start(sub) < 0 || td_store_head(store, &head) < 0) {
        fprintf(stderr, "child: %s\n", td_error_last());
        return 2;
    }
    int rc = td_subscription_wait_until(sub, head, 60000) == 0 ? 0 : 3;
    td_subscription_free(sub);
    td_store_free(store);
    return rc;
}

static void append_all(td_store *store, bool with_poison)
{
    char stream[32];
    for (int v = 0; v < PER_STREAM; v++)
        for (int s = 0; s < STREAMS; s++) {
            snprintf(stream, sizeof stream, "stock-%d", s);
            td_event ev =
                tt_event("Counted", s == 3 && v == 7 && with_poison ? "{\"poison\":true}"
                                                                    : "{\"poison\":false}");
            assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1));
        }
}

static int counted(td_store *store, const char *stream)
{
    char *doc = NULL;
    int n = -1;
    if (td_store_doc_get(store, "counts", stream, &doc, NULL) == 0)
        sscanf(doc, "{\"n\":%d}", &n);
    td_free(doc);
    return n;
}

static int first_entry(const td_dead_letter *e, void *payload)
{
    char *out = payload;
    snprintf(out, 256, "%s|%lld|%s", e->status, (long long)e->position, e->last_error);
    return 1;
}

static void test_sigkill_during_delivery(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "kill");
    td_store *store = tt_open(url);
    append_all(store, false);
    td_store_free(store);
    unsigned seed = (unsigned)time(NULL);
    print_message("seed %u\n", seed);
    /* Kills from outside count as crashes too (a process cannot tell), and
     * every restart replays the same in-flight event first: allow plenty, as
     * this test is about losing nothing, not about parking poison events. */
    const char *args[] = {url, "1000", NULL};
    for (int round = 0; round < 8; round++) {
        pid_t pid = tt_spawn(self, args, NULL);
        struct timespec delay = {0, (long)(5 + rand_r(&seed) % 60) * 1000000L};
        nanosleep(&delay, NULL);
        kill(pid, SIGKILL);
        tt_wait(pid);
    }
    pid_t pid = tt_spawn(self, args, NULL);
    assert_int_equal(tt_wait(pid), 0); /* the last run catches up */
    store = tt_open(url);
    assert_td_ok(td_store_check(store));
    char entry[256] = "";
    assert_td_ok(td_dlq_list(store, NULL, first_entry, entry));
    assert_string_equal(entry, ""); /* nothing parked */
    for (int s = 0; s < STREAMS; s++) {
        char stream[32];
        snprintf(stream, sizeof stream, "stock-%d", s);
        assert_int_equal(counted(store, stream), PER_STREAM); /* each exactly once */
    }
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

static void test_crashing_handler_is_parked(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "abort");
    td_store *store = tt_open(url);
    append_all(store, true);
    td_store_free(store);
    char attempts[16];
    snprintf(attempts, sizeof attempts, "%d", MAX_ATTEMPTS);
    const char *args[] = {url, attempts, NULL};
    int crashes = 0, status = -1;
    for (int run = 0; run < 10 && status != 0; run++) {
        status = tt_wait(tt_spawn(self, args, NULL));
        if (status == 128 + SIGABRT)
            crashes++;
        else
            assert_int_equal(status, 0);
    }
    assert_int_equal(status, 0);
    assert_int_equal(crashes, MAX_ATTEMPTS); /* counted across restarts */
    store = tt_open(url);
    char entry[256] = "";
    assert_td_ok(td_dlq_list(store, NULL, first_entry, entry));
    assert_non_null(strstr(entry, "dead|"));
    assert_non_null(strstr(entry, "crashed the process 3 times"));
    assert_int_equal(counted(store, "stock-3"), 7); /* stops before the poison (sequenced) */
    assert_int_equal(counted(store, "stock-2"), PER_STREAM); /* others all done */
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

static int child_append(const char *url)
{
    td_store *store = NULL;
    if (td_store_open(&store, url, NULL) < 0)
        return 2;
    td_event ev = tt_event("FromAfar", "{}");
    int rc = td_store_append(store, "remote-1", TD_EXPECT_ANY, &ev, 1) < 0 ? 3 : 0;
    td_store_free(store);
    return rc;
}

static int note(td_delivery *d, const td_event *ev, void *payload)
{
    (void)d;
    (void)ev;
    ++*(int *)payload;
    return 0;
}

static void test_other_process_wakes_subscriber(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "wake");
    td_store *store = tt_open(url);
    td_subscription *sub = NULL;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    int seen = 0;
    opts.name = "listener";
    assert_td_ok(td_subscription_new(&sub, store, &opts, note, &seen));
    assert_td_ok(td_subscription_start(sub));
    const char *args[] = {"append", url, NULL};
    assert_int_equal(tt_wait(tt_spawn(self, args, NULL)), 0);
    assert_td_ok(td_subscription_wait_until(sub, 1, 10000));
    assert_int_equal(seen, 1);
    td_subscription_free(sub);
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

/* The recovery run's handler: how many run at once, at most, and whether
 * each stream's events come in order. */
static atomic_int running, most_at_once, out_of_order;
static int64_t last_version[STREAMS];

static int watch_concurrency(td_delivery *d, const td_event *ev, void *payload)
{
    (void)d;
    (void)payload;
    int now = atomic_fetch_add(&running, 1) + 1;
    int most = atomic_load(&most_at_once);
    while (now > most && !atomic_compare_exchange_weak(&most_at_once, &most, now))
        ;
    int s = atoi(ev->stream + strlen("stock-"));
    if (s >= 0 && s < STREAMS) {
        if (ev->version < last_version[s])
            atomic_fetch_add(&out_of_order, 1);
        last_version[s] = ev->version; /* one lane at a time per stream */
    }
    usleep(2000);
    atomic_fetch_sub(&running, 1);
    return 0;
}

/* Child: "kill" runs the subscription "parallel" until a quarter of the
 * events are done, then kills itself (SIGKILL: a crash no event caused);
 * "recover" runs it again to the end and prints the most handlers that ran
 * at once, the events out of stream order and the units of work it took. */
static int child_recovery(const char *mode, const char *url)
{
    td_store *store = NULL;
    td_subscription *sub = NULL;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    int64_t head = 0;
    opts.name = "parallel";
    opts.lanes = 4;
    if (td_store_open(&store, url, NULL) < 0 || td_store_head(store, &head) < 0 ||
        td_subscription_new(&sub, store, &opts, watch_concurrency, NULL) < 0 ||
        td_subscription_start(sub) < 0)
        return 2;
    if (strcmp(mode, "kill") == 0) {
        if (td_subscription_wait_until(sub, head / 4, 60000) < 0)
            return 3;
        raise(SIGKILL);
    }
    if (td_subscription_wait_until(sub, head, 60000) < 0)
        return 3;
    td_writer_stats st;
    td_store_writer_stats(store, &st);
    printf("%d %d %lld\n", atomic_load(&most_at_once), atomic_load(&out_of_order),
           (long long)st.units);
    td_subscription_free(sub);
    td_store_free(store);
    return 0;
}

static void test_crash_recovery_is_parallel(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "parallel");
    td_store *store = tt_open(url);
    append_all(store, false);
    td_store_free(store);
    const char *kill_args[] = {"kill", url, NULL};
    assert_int_equal(tt_wait(tt_spawn(self, kill_args, NULL)), 128 + SIGKILL);
    const char *args[] = {"recover", url, NULL};
    int out = -1, most = 0, disorder = -1;
    long long units = -1;
    pid_t pid = tt_spawn(self, args, &out);
    FILE *f = fdopen(out, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d %d %lld", &most, &disorder, &units), 3);
    fclose(f);
    assert_int_equal(tt_wait(pid), 0);
    print_message("after the kill: %d handlers at once at most, %lld units of work for %d "
                  "events\n",
                  most, units, STREAMS * PER_STREAM);
    assert_true(most > 1);           /* not one at a time */
    assert_int_equal(disorder, 0);   /* but in order within a stream */
    assert_true(units < PER_STREAM); /* not a durable write per event */
    free(url);
    tt_rmdir(dir);
}

/* Child: holds the subscription "holder" until killed. */
static int child_hold(const char *url)
{
    td_store *store = NULL;
    td_subscription *sub = NULL;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    opts.name = "holder";
    if (td_store_open(&store, url, NULL) < 0 ||
        td_subscription_new(&sub, store, &opts, note, NULL) < 0 || td_subscription_start(sub) < 0)
        return 2;
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}

static int expire_lease(td_txn *txn, void *payload)
{
    char *doc = NULL, *at;
    (void)payload;
    int error = td_txn_doc_get(txn, "tidings_leases", "holder", &doc, NULL);
    if (error == 0 && (at = strstr(doc, "\"expires_at\":")) != NULL)
        snprintf(at, strlen(at) + 1, "\"expires_at\":1}");
    if (error == 0)
        error = td_txn_doc_put(txn, "tidings_leases", "holder", doc, 0);
    td_free(doc);
    return error;
}

static char process_state(pid_t pid)
{
    char path[64], text[512], state = '?';
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f && fgets(text, sizeof text, f)) {
        char *paren = strrchr(text, ')');
        if (paren && paren[1] == ' ')
            state = paren[2];
    }
    if (f)
        fclose(f);
    return state;
}

static void test_dead_holder_is_known_by_its_lock(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    char *url = tt_store_url(dir, "lease");
    td_store *store = tt_open(url);
    const char *args[] = {"hold", url, NULL};
    int out = -1;
    char line[16] = "";
    pid_t pid = tt_spawn(self, args, &out);
    FILE *f = fdopen(out, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "ready\n");
    fclose(f);
    td_subscription *sub = NULL;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    int seen = 0;
    opts.name = "holder";
    assert_td_ok(td_subscription_new(&sub, store, &opts, note, &seen));
    assert_td_ok(td_transact(store, expire_lease, NULL)); /* stalled past it, say */
    assert_td_code(td_subscription_start(sub), TD_EBUSY); /* alive: it has the lock */
    assert_non_null(strstr(td_error_last(), "on this host holds it"));
    kill(pid, SIGKILL);
    for (int i = 0; i < 1000 && process_state(pid) != 'Z'; i++)
        usleep(1000); /* dead, not reaped */
    assert_int_equal(process_state(pid), 'Z');
    assert_td_ok(td_subscription_start(sub)); /* at once: the kernel let go of its lock */
    assert_td_ok(td_subscription_stop(sub));
    tt_wait(pid);
    td_subscription_free(sub);
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--child") == 0 && strcmp(argv[2], "hold") == 0)
        return child_hold(argv[3]);
    if (argc >= 4 && strcmp(argv[1], "--child") == 0 &&
        (strcmp(argv[2], "kill") == 0 || strcmp(argv[2], "recover") == 0))
        return child_recovery(argv[2], argv[3]);
    if (argc >= 4 && strcmp(argv[1], "--child") == 0 && strcmp(argv[2], "append") == 0)
        return child_append(argv[3]);
    if (argc >= 4 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], (unsigned)atoi(argv[3]));
    self = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_during_delivery),
        cmocka_unit_test(test_crashing_handler_is_parked),
        cmocka_unit_test(test_other_process_wakes_subscriber),
        cmocka_unit_test(test_dead_holder_is_known_by_its_lock),
        cmocka_unit_test(test_crash_recovery_is_parallel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
