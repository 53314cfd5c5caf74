/*
 * test_subscription.c: durable subscriptions in one process: everything is
 * delivered, in order per stream across lanes, also while handlers fail at
 * random; subscriptions progress independently; transactional effects happen
 * once across restarts; retry state survives a restart; the inbox dedupes;
 * a database error under the reader is reported; the backlog counts what is
 * read and unfinished, and ages with its oldest event.
 */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "recorder.h"
#include "support.h"

static td_store *store;
static recorder rec;

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("subs");
    recorder_init(&rec);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    return 0;
}

static td_subscription_status status_of(const char *name);

static void append_round_robin(int streams, int per_stream, const char *prefix)
{
    char name[32];
    for (int v = 0; v < per_stream; v++)
        for (int s = 0; s < streams; s++) {
            snprintf(name, sizeof name, "%s-%d", prefix, s);
            tt_append(store, name, "Tick", v);
        }
}

/* Every stream's records are versions 1..n, each once, in order. */
static void assert_in_order_once(int streams, int per_stream, const char *prefix)
{
    char name[32];
    int64_t versions[1024];
    for (int s = 0; s < streams; s++) {
        snprintf(name, sizeof name, "%s-%d", prefix, s);
        int n = recorder_stream(&rec, name, versions, 1024);
        assert_int_equal(n, per_stream);
        for (int i = 0; i < n; i++)
            assert_int_equal(versions[i], i + 1);
    }
}

static int record_all(td_delivery *d, const td_event *ev, void *payload)
{
    recorder_add(payload, ev, td_delivery_attempt(d));
    return 0;
}

static td_subscription *start(const char *name, unsigned lanes, td_handler_fn fn, void *payload)
{
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *sub = NULL;
    opts.name = name;
    opts.lanes = lanes;
    opts.backoff_initial_ms = 1;
    opts.backoff_max_ms = 4;
    assert_td_ok(td_subscription_new(&sub, store, &opts, fn, payload));
    assert_td_ok(td_subscription_start(sub));
    return sub;
}

static int64_t head(void)
{
    int64_t h = 0;
    assert_td_ok(td_store_head(store, &h));
    return h;
}

static void test_delivers_everything_in_stream_order(void **state)
{
    (void)state;
    append_round_robin(20, 10, "order"); /* before start */
    td_subscription *sub = start("everything", 4, record_all, &rec);
    append_round_robin(20, 10, "cart"); /* while running */
    assert_td_ok(td_subscription_wait_until(sub, head(), 20000));
    assert_int_equal(recorder_count(&rec), 400);
    assert_in_order_once(20, 10, "order");
    assert_in_order_once(20, 10, "cart");
    assert_td_ok(td_subscription_stop(sub));
    td_subscription_free(sub);
}

typedef struct flaky {
    recorder *rec;
    unsigned seed;
    pthread_mutex_t lock;
    int failures;
} flaky;

static int fail_at_random(td_delivery *d, const td_event *ev, void *payload)
{
    flaky *f = payload;
    pthread_mutex_lock(&f->lock);
    int fail = rand_r(&f->seed) % 10 < 3;
    f->failures += fail;
    pthread_mutex_unlock(&f->lock);
    if (fail)
        return td_delivery_fail(d, TD_EIO, "random failure");
    recorder_add(f->rec, ev, td_delivery_attempt(d));
    return 0;
}

static void test_order_holds_with_eight_lanes_and_random_failures(void **state)
{
    (void)state;
    flaky f = {&rec, 12345, PTHREAD_MUTEX_INITIALIZER, 0};
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *sub = NULL;
    opts.name = "flaky";
    opts.lanes = 8;
    opts.immediate_retries = 1;
    opts.max_attempts = 100;
    opts.backoff_initial_ms = 1;
    opts.backoff_max_ms = 3;
    assert_td_ok(td_subscription_new(&sub, store, &opts, fail_at_random, &f));
    assert_td_ok(td_subscription_start(sub));
    append_round_robin(16, 15, "acct");
    assert_td_ok(td_subscription_wait_until(sub, head(), 30000));
    td_subscription_free(sub);
    assert_true(f.failures > 20); /* the failures did happen */
    assert_int_equal(recorder_count(&rec), 16 * 15);
    assert_in_order_once(16, 15, "acct");
    assert_int_equal(status_of("flaky").dead_letters, 0);
}

typedef struct status_seen {
    const char *name;
    td_subscription_status status;
    int found;
} status_seen;

static int find_status(const char *name, const td_subscription_status *st, void *payload)
{
    status_seen *s = payload;
    if (strcmp(name, s->name) == 0) {
        s->status = *st;
        s->found = 1;
    }
    return 0;
}

static td_subscription_status status_of(const char *name)
{
    status_seen s = {name, {0}, 0};
    assert_td_ok(td_subscriptions_list(store, find_status, &s));
    assert_true(s.found);
    return s.status;
}

static void test_subscriptions_progress_independently(void **state)
{
    (void)state;
    recorder other;
    recorder_init(&other);
    td_subscription *a = start("fast", 2, record_all, &rec);
    td_subscription *b = start("slow", 2, record_all, &other);
    append_round_robin(5, 4, "order");
    assert_td_ok(td_subscription_wait_until(b, head(), 10000));
    assert_td_ok(td_subscription_stop(b));
    td_subscription_free(b);
    append_round_robin(5, 4, "user"); /* b is stopped; a goes on */
    assert_td_ok(td_subscription_wait_until(a, head(), 10000));
    assert_int_equal(recorder_count(&rec), 40);
    assert_int_equal(recorder_count(&other), 20);
    td_subscription_status st = status_of("slow");
    assert_int_equal(st.position, 20);
    assert_int_equal(st.lag_events, 20);
    b = start("slow", 2, record_all, &other); /* catches up from its checkpoint */
    assert_td_ok(td_subscription_wait_until(b, head(), 10000));
    assert_int_equal(recorder_count(&other), 40); /* nothing twice */
    td_subscription_free(b);                      /* stopping persists the checkpoint */
    assert_int_equal(status_of("slow").lag_events, 0);
    td_subscription_free(a);
}

static int count_in_unit(td_delivery *d, const td_event *ev, void *payload)
{
    td_txn *txn = td_delivery_txn(d);
    char *doc = NULL, body[32];
    int n = 0;
    (void)payload;
    assert_non_null(txn);
    if (td_txn_doc_get(txn, "counts", ev->stream, &doc, NULL) == 0)
        sscanf(doc, "{\"n\":%d}", &n);
    td_free(doc);
    snprintf(body, sizeof body, "{\"n\":%d}", n + 1);
    return td_txn_doc_put(txn, "counts", ev->stream, body, 0);
}

static void test_transactional_effects_once_across_restarts(void **state)
{
    (void)state;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    opts.name = "counter";
    opts.lanes = 3;
    opts.transactional = true;
    for (int round = 0; round < 4; round++) {
        td_subscription *sub = NULL;
        assert_td_ok(td_subscription_new(&sub, store, &opts, count_in_unit, NULL));
        assert_td_ok(td_subscription_start(sub));
        append_round_robin(6, 5, "stock");
        td_subscription_free(sub); /* stop at once, mid-way or not */
    }
    td_subscription *sub = NULL;
    assert_td_ok(td_subscription_new(&sub, store, &opts, count_in_unit, NULL));
    assert_td_ok(td_subscription_start(sub));
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    td_subscription_free(sub);
    for (int s = 0; s < 6; s++) {
        char name[32], *doc = NULL;
        snprintf(name, sizeof name, "stock-%d", s);
        assert_td_ok(td_store_doc_get(store, "counts", name, &doc, NULL));
        assert_string_equal(doc, "{\"n\":20}");
        td_free(doc);
    }
}

static int fail_first(td_delivery *d, const td_event *ev, void *payload)
{
    recorder_add(payload, ev, td_delivery_attempt(d));
    return td_delivery_attempt(d) == 1 ? td_delivery_fail(d, TD_EIO, "not yet") : 0;
}

static void test_retry_state_survives_restart(void **state)
{
    (void)state;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *sub = NULL;
    opts.name = "patient";
    opts.immediate_retries = 0;
    opts.backoff_initial_ms = 400;
    opts.backoff_max_ms = 400;
    tt_append(store, "order-1", "T", 1);
    assert_td_ok(td_subscription_new(&sub, store, &opts, fail_first, &rec));
    assert_td_ok(td_subscription_start(sub));
    recorder_wait(&rec, 1, 5000);
    td_subscription_free(sub); /* stopped while the retry waits */
    assert_int_equal(status_of("patient").in_retry, 1);
    assert_td_ok(td_subscription_new(&sub, store, &opts, fail_first, &rec));
    assert_td_ok(td_subscription_start(sub));
    assert_td_ok(td_subscription_wait_until(sub, 1, 10000));
    td_subscription_free(sub);
    assert_int_equal(recorder_count(&rec), 2);
    assert_int_equal(rec.entries[1].attempt, 2); /* the count went on */
    assert_int_equal(status_of("patient").in_retry, 0);
}

static int claim_once(td_txn *txn, void *payload)
{
    return td_inbox_claim(txn, "mailer", payload);
}

static void test_inbox_claims_once(void **state)
{
    (void)state;
    td_uuid id;
    bool seen = true;
    assert_td_ok(td_uuid_v7(&id));
    assert_td_ok(td_inbox_seen(store, "mailer", &id, &seen));
    assert_false(seen);
    assert_int_equal(td_transact(store, claim_once, &id), 0);
    assert_td_ok(td_inbox_seen(store, "mailer", &id, &seen));
    assert_true(seen);
    assert_td_code(td_inbox_claim(NULL, "bad name!", &id), TD_EINVAL);
}

static void test_bad_options(void **state)
{
    (void)state;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *sub = NULL;
    assert_td_code(td_subscription_new(&sub, store, &opts, record_all, NULL), TD_EINVAL);
    opts.name = "has space";
    assert_td_code(td_subscription_new(&sub, store, &opts, record_all, NULL), TD_EINVAL);
    opts.name = "ok";
    opts.match.type = "bad type";
    assert_td_code(td_subscription_new(&sub, store, &opts, record_all, NULL), TD_EINVAL);
    assert_null(sub);
}

static int try_start(const char *name, td_subscription **out)
{
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    opts.name = name;
    assert_td_ok(td_subscription_new(out, store, &opts, record_all, &rec));
    return td_subscription_start(*out);
}

/* A second instance of a running name is refused, in this process or
 * another, until the first stops. */
static void test_one_runner_per_name(void **state)
{
    (void)state;
    td_subscription *first = NULL, *second = NULL;
    assert_td_ok(try_start("leased", &first));
    assert_int_equal(try_start("leased", &second), TD_EBUSY);
    assert_non_null(strstr(td_error_last(), "runs in another process"));
    tt_append(store, "cart-1", "Added", 1);
    assert_td_ok(td_subscription_wait_until(first, head(), 10000));
    td_subscription_free(first);
    assert_td_ok(td_subscription_start(second)); /* released by the stop */
    td_subscription_free(second);
    assert_int_equal(recorder_count(&rec), 1);
}

typedef struct lease_doc {
    const char *host;
    long long pid, expires_at;
} lease_doc;

static int put_lease(td_txn *txn, void *payload)
{
    lease_doc *l = payload;
    char body[512];
    snprintf(body, sizeof body,
             "{\"owner\":\"someone-else\",\"pid\":%lld,\"host\":\"%s\",\"expires_at\":%lld}",
             l->pid, l->host, l->expires_at);
    return td_txn_doc_put(txn, "tidings_leases", "leased", body, 0);
}

/* A lease left by a process that is gone (this host) or that expired is
 * taken over at once; one held elsewhere and still valid is not. */
static void test_stale_leases_are_taken_over(void **state)
{
    (void)state;
    char host[256] = "";
    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    assert_int_equal(waitpid(gone, NULL, 0), gone);
    long long later = td_time_now() + 60 * 1000000LL;
    td_subscription *sub = NULL;

    lease_doc elsewhere = {"elsewhere.example", 1, later};
    assert_td_ok(td_transact(store, put_lease, &elsewhere));
    assert_int_equal(try_start("leased", &sub), TD_EBUSY);
    assert_non_null(strstr(td_error_last(), "elsewhere.example"));
    td_subscription_free(sub);

    lease_doc expired = {"elsewhere.example", 1, td_time_now() - 1};
    assert_td_ok(td_transact(store, put_lease, &expired));
    assert_td_ok(try_start("leased", &sub));
    td_subscription_free(sub);

    lease_doc crashed = {host, gone, later};
    assert_td_ok(td_transact(store, put_lease, &crashed));
    assert_td_ok(try_start("leased", &sub));
    td_subscription_free(sub);
    char *doc = NULL; /* released at the stop */
    assert_int_equal(td_store_doc_get(store, "tidings_leases", "leased", &doc, NULL), TD_ENOTFOUND);
}

/* A running subscription whose lease another process took over (it was
 * stalled past the lease, say) hands out nothing more and says why; started
 * again once the other holder is gone, it carries on from its checkpoint. */
static void test_a_lost_lease_stops_delivery_and_says_so(void **state)
{
    (void)state;
    td_subscription *sub = NULL;
    assert_td_ok(try_start("leased", &sub));
    assert_int_equal(td_subscription_check(sub), 0);
    tt_append(store, "cart-1", "Added", 1);
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    lease_doc taken = {"elsewhere.example", 1, td_time_now() + 60 * 1000000LL};
    assert_td_ok(td_transact(store, put_lease, &taken));
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) { /* renewed every 3 s */
        usleep(100000);
        rc = td_subscription_check(sub);
    }
    assert_int_equal(rc, TD_EBUSY);
    assert_non_null(strstr(td_error_last(), "lost its lease"));
    tt_append(store, "cart-2", "Added", 1);
    usleep(300000);
    assert_int_equal(recorder_count(&rec), 1); /* the second event was not handed out */
    assert_int_equal(td_subscription_stop(sub), TD_EBUSY);
    char *doc = NULL; /* the other holder's lease stays */
    assert_td_ok(td_store_doc_get(store, "tidings_leases", "leased", &doc, NULL));
    assert_non_null(strstr(doc, "elsewhere.example"));
    td_free(doc);
    /* while the other holds it, the same subscription cannot start again;
     * once its lease has expired, it does, and carries on where it was */
    assert_int_equal(td_subscription_start(sub), TD_EBUSY);
    lease_doc expired = {"elsewhere.example", 1, td_time_now() - 1};
    assert_td_ok(td_transact(store, put_lease, &expired));
    assert_td_ok(td_subscription_start(sub));
    assert_int_equal(td_subscription_check(sub), 0); /* a new run */
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    assert_int_equal(recorder_count(&rec), 2); /* cart-2 now, and cart-1 not again */
    td_subscription_free(sub);
}

/* Runs sql on the fixture's store through a connection of the test's own
 * (sqlite3 or libpq, the store's backend): another client changing the
 * database under the store. */
static void outside_exec(const char *sql)
{
    if (tt_postgres()) {
        PGconn *pg = PQconnectdb(tt_fixture_url());
        assert_int_equal(PQstatus(pg), CONNECTION_OK);
        PGresult *res = PQexec(pg, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            fail_msg("%s: %s", sql, PQerrorMessage(pg));
        PQclear(res);
        PQfinish(pg);
        return;
    }
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(tt_fixture_url() + strlen("sqlite:"), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* A database error under the reader with no code of its own (TD_ERROR:
 * here the events table taken away by another connection) stops the run
 * and is reported by td_subscription_check, rather than retried in silence.
 * (Which read meets it first, the head's or the page's, is up to timing; the
 * page read's own mix-up of TD_ERROR with "lanes full" is kept out by
 * read_more's separate outcome, which this test cannot single out.) */
static void test_read_errors_are_reported(void **state)
{
    (void)state;
    td_subscription *sub = start("reader", 1, record_all, &rec);
    outside_exec("ALTER TABLE events RENAME TO events_away");
    int rc = 0;
    for (int i = 0; i < 1000 && (rc = td_subscription_check(sub)) == 0; i++)
        usleep(10 * 1000); /* polls what it waits for: the reported error */
    assert_td_code(rc, TD_ERROR);
    outside_exec("ALTER TABLE events_away RENAME TO events");
    td_subscription_free(sub);
}

/* A gate the handlers wait at until it opens. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t opened;
    bool open;
} gate;

static int wait_at_gate(td_delivery *d, const td_event *ev, void *payload)
{
    (void)d;
    (void)ev;
    gate *g = payload;
    pthread_mutex_lock(&g->lock);
    while (!g->open)
        pthread_cond_wait(&g->opened, &g->lock);
    pthread_mutex_unlock(&g->lock);
    return 0;
}

static void test_backlog_counts_unfinished_events(void **state)
{
    (void)state;
    td_backlog none = td_subscription_backlog(NULL);
    assert_true(none.events == 0 && none.age == 0);
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    td_subscription *sub = start("gated", 4, wait_at_gate, &g);
    td_backlog idle = td_subscription_backlog(sub);
    assert_true(idle.events == 0 && idle.age == 0);
    append_round_robin(10, 1, "gated");
    td_backlog held = {0, 0};
    for (int i = 0; i < 2000 && held.events < 10; i++) { /* the reader takes all ten */
        usleep(1000);
        held = td_subscription_backlog(sub);
    }
    assert_int_equal(held.events, 10);
    assert_true(held.age > 0);
    usleep(30000);
    td_backlog older = td_subscription_backlog(sub);
    assert_int_equal(older.events, 10);
    assert_true(older.age >= held.age + 30000); /* the oldest event is still the same */
    pthread_mutex_lock(&g.lock);
    g.open = true;
    pthread_cond_broadcast(&g.opened);
    pthread_mutex_unlock(&g.lock);
    assert_td_ok(td_subscription_wait_until(sub, head(), 20000));
    td_backlog after = td_subscription_backlog(sub);
    assert_true(after.events == 0 && after.age == 0);
    assert_td_ok(td_subscription_stop(sub));
    td_subscription_free(sub);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_delivers_everything_in_stream_order),
        T(test_order_holds_with_eight_lanes_and_random_failures),
        T(test_subscriptions_progress_independently),
        T(test_transactional_effects_once_across_restarts),
        T(test_retry_state_survives_restart),
        T(test_one_runner_per_name),
        T(test_stale_leases_are_taken_over),
        T(test_a_lost_lease_stops_delivery_and_says_so),
        T(test_inbox_claims_once),
        T(test_bad_options),
        T(test_read_errors_are_reported),
        T(test_backlog_counts_unfinished_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
