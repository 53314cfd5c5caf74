/*
 * test_pg_reconnect.c: the PostgreSQL backend when the server ends its
 * connections (pg_terminate_backend, as a server restart or an operator
 * would). Each test's store has an application_name of its own, so only
 * its connections are ended, not those of other tests on the server.
 *
 *   - after its connections were ended, the store's next write connects
 *     again and succeeds: a batch that failed before anything of it ran
 *     is tried again, since it provably did not commit;
 *   - a unit whose connection is ended half way is reported failed
 *     (TD_EUNAVAILABLE), nothing of it is stored, the store says it is
 *     unavailable, and the next write succeeds and clears that;
 *   - a waiter whose LISTEN connection was ended still learns of commits
 *     (polling while it connects again, then notified again);
 *   - readers reconnect too;
 *   - two writers taking turns on one stream see each other's versions
 *     (the writer's remembered stream versions are dropped when another
 *     committed);
 *   - a transactional subscription through an outage of its server handles
 *     every event once, parks none and has not failed;
 *   - a subscription whose lease lock went with its session takes it again
 *     when no one has; another process that tries meanwhile is refused, the
 *     holder's process being alive; and when its lease had run out (it
 *     stalled past it) and another process took it over, it stops handing
 *     out events at its next renewal;
 *   - a renewal that finds the server away (its lock gone with the session
 *     and not to be taken again yet) is tried again, not a failure.
 */
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "child.h"
#include "support.h"

/* The store's URL, its connections named `app`. */
static char *store_url(const char *name, char *app, size_t app_size)
{
    char *base = tt_pg_schema_url(name);
    snprintf(app, app_size, "td_rc_%ld_%s", (long)getpid(), name);
    char *url = malloc(strlen(base) + strlen(app) + 32);
    assert_non_null(url);
    sprintf(url, "%s&application_name=%s", base, app);
    free(base);
    return url; /* freed by the test */
}

/* Ends every connection named app; how many. */
static int terminate(const char *app)
{
    PGconn *pg = PQconnectdb(tt_pg_server_url());
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    const char *values[1] = {app};
    PGresult *res = PQexecParams(pg,
                                 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE application_name = $1 AND pid <> pg_backend_pid()",
                                 1, NULL, values, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    int n = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(pg);
    return n;
}

/* Connections named app the server still has. */
static int connections(const char *app)
{
    PGconn *pg = PQconnectdb(tt_pg_server_url());
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    const char *values[1] = {app};
    PGresult *res = PQexecParams(pg,
                                 "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                 "$1 AND pid <> pg_backend_pid()",
                                 1, NULL, values, NULL, NULL, 0);
    int n = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(pg);
    return n;
}

static int64_t stream_events(td_store *store, const char *stream)
{
    td_read_query q = TD_READ_QUERY_INIT;
    q.stream = stream;
    return tt_count(store, &q);
}

static void test_writes_go_on_after_the_connection_ends(void **state)
{
    (void)state;
    char app[64];
    char *url = store_url("after", app, sizeof app);
    td_store *store = tt_open(url);
    tt_append(store, "order-1", "Placed", 1);
    assert_true(terminate(app) >= 1);
    /* Nothing of the next batch reached the server before it found the
     * connection gone: tried again on a new one, and it succeeds. */
    assert_int_equal(tt_append(store, "order-1", "Paid", 2), 2);
    td_store_health h;
    td_store_health_get(store, &h);
    assert_int_equal(h.state, TD_STORE_OK);
    /* Readers' connections were ended too: they connect again. */
    assert_int_equal(stream_events(store, "order-1"), 2);
    assert_true(terminate(app) >= 1);
    assert_int_equal(stream_events(store, "order-1"), 2);
    int64_t head = 0;
    assert_td_ok(td_store_head(store, &head));
    assert_int_equal(head, 2);
    td_store_free(store);
    free(url);
}

typedef struct cut_unit {
    const char *app;
    int runs;
} cut_unit;

/* Appends, then has the server end the writer's connection, then appends
 * again: the second append (or the commit) finds it gone. */
static int cut_half_way(td_txn *txn, void *payload)
{
    cut_unit *c = payload;
    c->runs++;
    td_event a = tt_event("First", "{}"), b = tt_event("Second", "{}");
    int error = td_txn_append(txn, "cut-1", TD_EXPECT_ANY, &a, 1);
    if (error < 0)
        return error;
    if (terminate(c->app) < 1)
        return TD_ERROR; /* nothing to terminate: the test fails on the code */
    return td_txn_append(txn, "cut-1", TD_EXPECT_ANY, &b, 1);
}

static void test_a_unit_cut_half_way_fails_whole(void **state)
{
    (void)state;
    char app[64];
    char *url = store_url("cut", app, sizeof app);
    td_store *store = tt_open(url);
    tt_append(store, "order-1", "Placed", 1);
    cut_unit c = {.app = app};
    int error = td_transact(store, cut_half_way, &c);
    if (error != TD_EUNAVAILABLE)
        fail_msg("the cut unit returned %d: %s", error, td_error_last());
    assert_int_equal(c.runs, 1); /* reported, not run again behind the caller's back */
    assert_non_null(strstr(td_error_last(), "server"));
    td_store_health h;
    td_store_health_get(store, &h);
    assert_int_equal(h.state, TD_STORE_UNAVAILABLE);
    assert_int_equal(h.code, TD_EUNAVAILABLE);
    /* Nothing of it is there, and positions go on from the last commit. */
    assert_int_equal(stream_events(store, "cut-1"), 0);
    assert_int_equal(tt_append(store, "order-1", "Paid", 2), 2);
    td_store_health_get(store, &h);
    assert_int_equal(h.state, TD_STORE_OK);
    assert_td_ok(td_store_check(store));
    td_store_free(store);
    free(url);
}

static void test_waiters_hear_of_commits_after_the_connection_ends(void **state)
{
    (void)state;
    char app[64];
    char *url = store_url("watch", app, sizeof app);
    td_store *watcher = tt_open(url);
    td_store *writer = tt_open(url);
    int64_t head = 0;
    /* The first wait starts the LISTEN connection. */
    assert_int_equal(td_store_wait(watcher, 0, 50, &head), 0);
    tt_append(writer, "order-1", "Placed", 1);
    assert_td_ok(td_store_wait(watcher, 0, 10000, &head));
    assert_int_equal(head, 1);
    for (int round = 2; round <= 4; round++) {
        assert_true(terminate(app) >= 1);
        tt_append(writer, "order-1", "Again", round);
        assert_td_ok(td_store_wait(watcher, round - 1, 10000, &head));
        assert_int_equal(head, round);
    }
    /* And the watch connection is back (LISTEN again, not polling for
     * good): within a few seconds the server has it. */
    int before = connections(app);
    for (int i = 0; i < 100 && connections(app) < 2; i++)
        usleep(50 * 1000);
    assert_true(connections(app) >= 2 || before >= 2);
    td_store_free(writer);
    td_store_free(watcher);
    free(url);
}

/* Two writers (two handles: two connections, as two processes would have)
 * take turns on one stream: each must see the other's versions, whatever
 * it remembers of its own last transaction. */
static void test_writers_take_turns_on_a_stream(void **state)
{
    (void)state;
    char app[64];
    char *url = store_url("turns", app, sizeof app);
    td_store *a = tt_open(url), *b = tt_open(url);
    for (int64_t v = 1; v <= 20; v += 2) {
        td_event e = tt_event("FromA", "{}");
        assert_td_ok(td_store_append(a, "order-1", v - 1, &e, 1));
        assert_int_equal(e.version, v);
        td_event f[2] = {tt_event("FromB", "{}"), tt_event("FromB", "{}")};
        assert_td_ok(td_store_append(b, "order-1", TD_EXPECT_ANY, f, 1));
        assert_int_equal(f[0].version, v + 1);
    }
    td_event late = tt_event("FromA", "{}");
    assert_td_code(td_store_append(a, "order-1", 19, &late, 1), TD_ECONFLICT);
    assert_int_equal(stream_events(a, "order-1"), 20);
    td_store_free(b);
    td_store_free(a);
    free(url);
}

static int count_in_unit(td_delivery *d, const td_event *ev, void *payload)
{
    td_txn *txn = td_delivery_txn(d);
    char *doc = NULL, body[32];
    int n = 0;
    (void)payload;
    if (txn == NULL)
        return TD_EPERMANENT;
    if (td_txn_doc_get(txn, "counts", ev->stream, &doc, NULL) == 0)
        sscanf(doc, "{\"n\":%d}", &n);
    td_free(doc);
    snprintf(body, sizeof body, "{\"n\":%d}", n + 1);
    return td_txn_doc_put(txn, "counts", ev->stream, body, 0);
}

/* Runs sql on the test server as its owner. */
static void admin(const char *sql)
{
    PGconn *pg = PQconnectdb(tt_pg_server_url());
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    PQclear(res);
    PQfinish(pg);
}

/* The outage's end, on a thread of its own (no cmocka assertions here:
 * if it fails, the waits of the test fail). */
static void *login_again_later(void *sql)
{
    usleep(1500 * 1000);
    PGconn *pg = PQconnectdb(tt_pg_server_url());
    PQclear(PQexec(pg, sql));
    PQfinish(pg);
    return NULL;
}

static int slow_count(td_delivery *d, const td_event *ev, void *payload)
{
    usleep(2000); /* a backlog when the server goes away */
    return count_in_unit(d, ev, payload);
}

/* A subscription whose database server goes away for a while (its role
 * may not log in, every session of it ended: as a restart looks from the
 * client) and comes back: every event is handled once (its effect counted
 * once), none is parked however few attempts it is allowed, and the
 * subscription does not count as failed. */
static void test_subscriptions_ride_out_an_outage(void **state)
{
    (void)state;
    char role[64], sql[256], app[64];
    snprintf(role, sizeof role, "td_rc_%ld", (long)getpid());
    snprintf(sql, sizeof sql, "CREATE ROLE %s LOGIN; GRANT CREATE ON DATABASE tidings TO %s", role,
             role);
    admin(sql);
    /* the server's URL with the role as its user */
    const char *server = tt_pg_server_url();
    const char *at = strchr(server, '@');
    assert_non_null(at);
    char *base = tt_pg_schema_url("outage");
    char url[2048];
    snprintf(url, sizeof url, "postgres://%s%s&application_name=%s", role, strchr(base, '@'), role);
    free(base);
    snprintf(app, sizeof app, "%s", role);
    td_store *store = tt_open(url);
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    opts.name = "counter";
    opts.transactional = true;
    opts.lanes = 2;
    opts.max_attempts = 2;
    opts.immediate_retries = 0;
    td_subscription *sub = NULL;
    assert_td_ok(td_subscription_new(&sub, store, &opts, slow_count, NULL));
    assert_td_ok(td_subscription_start(sub));
    int64_t last = 0;
    for (int i = 0; i < 400; i++) {
        char stream[32];
        snprintf(stream, sizeof stream, "stock-%d", i % 4);
        last = tt_append(store, stream, "Counted", i);
    }
    /* The outage, while the handlers have a backlog: 1.5 s, timed apart
     * from the append below, which may wait for it to end. */
    snprintf(sql, sizeof sql, "ALTER ROLE %s NOLOGIN", role);
    admin(sql);
    terminate(app);
    pthread_t login;
    snprintf(sql, sizeof sql, "ALTER ROLE %s LOGIN", role);
    assert_int_equal(pthread_create(&login, NULL, login_again_later, sql), 0);
    /* Refused as unavailable; or, when the cut took the answer to a COMMIT
     * of the handlers' with it, held up while the writer asks the server
     * what became of that transaction (until the outage ends), then done. */
    td_event e = tt_event("Refused", "{}");
    int rc = td_store_append(store, "other-1", TD_EXPECT_ANY, &e, 1);
    if (rc != TD_EUNAVAILABLE && rc != 0)
        fail_msg("a write during the outage: %d %s", rc, td_error_last());
    pthread_join(login, NULL);
    assert_td_ok(td_subscription_wait_until(sub, last, 60000));
    if (td_subscription_check(sub) != 0)
        fail_msg("the subscription counts as failed: %s", td_error_last());
    for (int s = 0; s < 4; s++) {
        char name[32], *doc = NULL;
        snprintf(name, sizeof name, "stock-%d", s);
        assert_td_ok(td_store_doc_get(store, "counts", name, &doc, NULL));
        assert_string_equal(doc, "{\"n\":100}");
        td_free(doc);
    }
    assert_td_ok(td_subscription_stop(sub));
    td_subscription_free(sub);
    td_store_free(store);
}

/* Counts the events a subscription hands out: all, and those past `after`. */
typedef struct tally {
    atomic_int all, late;
    atomic_llong after;
} tally;

static int tally_event(td_delivery *d, const td_event *ev, void *payload)
{
    tally *t = payload;
    (void)d;
    atomic_fetch_add(&t->all, 1);
    if (atomic_load(&t->after) && ev->position > atomic_load(&t->after))
        atomic_fetch_add(&t->late, 1);
    return 0;
}

/* Not transactional: the lease is all that keeps it in one place. */
static int start_mailer(td_store *store, td_handler_fn fn, void *payload, td_subscription **out)
{
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    opts.name = "mailer";
    int error = td_subscription_new(out, store, &opts, fn, payload);
    return error < 0 ? error : td_subscription_start(*out);
}

static int print_position(td_delivery *d, const td_event *ev, void *payload)
{
    (void)d;
    (void)payload;
    printf("%lld\n", (long long)ev->position);
    fflush(stdout);
    return 0;
}

/* The child: the mailer on the store at url, printing "started" and then
 * the position of each event it hands out, until killed. */
static int child_main(const char *url)
{
    td_store *store = NULL;
    td_subscription *sub = NULL;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1)
        return 1; /* dies with the test, whatever happens to it */
    if (td_store_open(&store, url, NULL) < 0 ||
        start_mailer(store, print_position, NULL, &sub) < 0) {
        fprintf(stderr, "child: %s\n", td_error_last());
        td_subscription_free(sub); /* a refused start is expected: leak nothing */
        td_store_free(store);
        return 1;
    }
    printf("started\n");
    fflush(stdout);
    for (;;)
        pause();
}

static const char *self;

/* Reads the child's lines for up to timeout_ms; counts positions > after.
 * Returns whether "started" came. */
static bool read_child(FILE *in, int64_t after, int *late, int want, int timeout_ms)
{
    char line[64];
    bool started = false;
    for (int waited = 0; waited < timeout_ms && (*late < want || (want == 0 && !started));) {
        struct pollfd pfd = {fileno(in), POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0) {
            waited += 100;
            continue;
        }
        if (fgets(line, sizeof line, in) == NULL)
            break;
        if (strcmp(line, "started\n") == 0)
            started = true;
        else if (atoll(line) > after)
            ++*late;
    }
    return started;
}

static int put_lease(td_txn *txn, void *payload)
{
    const char *const *doc = payload; /* name, JSON */
    return td_txn_doc_put(txn, "tidings_leases", doc[0], doc[1], 0);
}

/* The lease of name, as if it had expired. */
static void expire_lease(td_store *store, const char *name)
{
    char *text = NULL;
    assert_td_ok(td_store_doc_get(store, "tidings_leases", name, &text, NULL));
    json_t *doc = json_loads(text, 0, NULL);
    td_free(text);
    assert_non_null(doc);
    json_object_set_new(doc, "expires_at", json_integer(td_time_now() - 1));
    char *json = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    const char *put[] = {name, json};
    assert_td_ok(td_transact(store, put_lease, (void *)put));
    free(json);
}

static void test_a_lost_lock_taken_over_stops_its_holder(void **state)
{
    (void)state;
    char app[64];
    char *url = store_url("lease_lock", app, sizeof app);
    td_store *store = tt_open(url);
    tally a = {0};
    td_subscription *first = NULL;
    assert_td_ok(start_mailer(store, tally_event, &a, &first));
    int64_t head = tt_append(store, "order-1", "Placed", 1);
    assert_td_ok(td_subscription_wait_until(first, head, 10000));

    /* Its sessions end with the lock: taken again, it goes on. */
    assert_true(terminate(app) > 0);
    sleep(4); /* past a renewal (every 3 s) */
    head = tt_append(store, "order-2", "Placed", 1);
    assert_td_ok(td_subscription_wait_until(first, head, 10000));
    if (td_subscription_check(first) != 0)
        fail_msg("a lock taken again counts as lost: %s", td_error_last());
    assert_int_equal(atomic_load(&a.all), 2);

    /* They end again, and another process tries to take over before the
     * next renewal: refused, the holder lives (its lock went, its process
     * did not); the first takes its lock back and goes on. */
    assert_true(terminate(app) > 0);
    int fd = -1, late = 0;
    pid_t pid = tt_spawn(self, (const char *const[]){url, NULL}, &fd);
    FILE *refused = fdopen(fd, "r");
    if (refused)
        setvbuf(refused, NULL, _IONBF, 0);
    bool refused_started = refused && read_child(refused, head, &late, 0, 10000);
    int refused_status = tt_wait(pid);
    if (refused)
        fclose(refused);
    assert_false(refused_started);
    assert_int_equal(refused_status, 1);
    sleep(4); /* past a renewal: the lock taken back */
    head = tt_append(store, "order-2", "Placed", 2);
    assert_td_ok(td_subscription_wait_until(first, head, 10000));
    if (td_subscription_check(first) != 0)
        fail_msg("a lock taken back counts as lost: %s", td_error_last());
    assert_int_equal(atomic_load(&a.all), 3);

    /* They end again, and another process takes lock and lease before the
     * next renewal, the lease having run out meanwhile (as if the first had
     * stalled past it): the first holder stops handing out events at it. */
    assert_true(terminate(app) > 0);
    expire_lease(store, "mailer");
    late = 0;
    pid = tt_spawn(self, (const char *const[]){url, NULL}, &fd);
    FILE *child = fdopen(fd, "r");
    if (child) /* no read-ahead: poll on its fd must see every line not yet read */
        setvbuf(child, NULL, _IONBF, 0);
    bool started = child && read_child(child, head, &late, 0, 60000);
    int rc = 0;
    for (int i = 0; started && i < 300 && rc == 0; i++) {
        usleep(100000);
        rc = td_subscription_check(first);
    }
    char why[400];
    snprintf(why, sizeof why, "%s", td_error_last());
    atomic_store(&a.after, head);
    int64_t after = head;
    for (int i = 0; started && rc == TD_EBUSY && i < 5; i++)
        head = tt_append(store, "order-3", "Placed", i + 1);
    if (started && rc == TD_EBUSY)
        read_child(child, after, &late, 5, 60000);
    usleep(300000);
    /* the child goes before any assertion, so that a failure leaves no
     * process behind holding the test's output open */
    kill(pid, SIGKILL);
    int status = tt_wait(pid);
    if (child)
        fclose(child);
    assert_true(started);
    assert_int_equal(status, 128 + SIGKILL);
    assert_int_equal(rc, TD_EBUSY);
    assert_non_null(strstr(why, "another process has taken it"));
    assert_int_equal(late, 5);                 /* the new holder has them */
    assert_int_equal(atomic_load(&a.late), 0); /* the old one handed out none */
    assert_int_equal(td_subscription_stop(first), TD_EBUSY);
    td_subscription_free(first);
    td_store_free(store);
    free(url);
}

/* A subscription whose server is away across a renewal of its lease (its
 * role may not log in and every session of it ended, for longer than
 * LEASE_RENEW_US): the lease's lock went with its session and cannot be
 * taken again until the server is back. That renewal is tried again, as
 * the reads and checkpoints of the outage are: the subscription hands out
 * what comes after and does not count as failed. (It did: the renewal
 * reported TD_ERROR for an unreachable server.) */
static void test_a_renewal_during_an_outage_is_not_a_failure(void **state)
{
    (void)state;
    char role[64], sql[256];
    snprintf(role, sizeof role, "td_rl_%ld", (long)getpid());
    snprintf(sql, sizeof sql, "CREATE ROLE %s LOGIN; GRANT CREATE ON DATABASE tidings TO %s", role,
             role);
    admin(sql);
    char *base = tt_pg_schema_url("renewal");
    char url[2048];
    snprintf(url, sizeof url, "postgres://%s%s&application_name=%s", role, strchr(base, '@'), role);
    free(base);
    td_store *store = tt_open(url);
    tally a = {0};
    td_subscription *sub = NULL;
    assert_td_ok(start_mailer(store, tally_event, &a, &sub));
    int64_t head = tt_append(store, "order-1", "Placed", 1);
    assert_td_ok(td_subscription_wait_until(sub, head, 10000));

    snprintf(sql, sizeof sql, "ALTER ROLE %s NOLOGIN", role);
    admin(sql);
    assert_true(terminate(role) > 0);
    sleep(5); /* past a renewal (every 3 s after the start) */
    snprintf(sql, sizeof sql, "ALTER ROLE %s LOGIN", role);
    admin(sql);

    head = tt_append(store, "order-2", "Placed", 1);
    assert_td_ok(td_subscription_wait_until(sub, head, 30000));
    if (td_subscription_check(sub) != 0)
        fail_msg("the subscription counts as failed: %s", td_error_last());
    assert_int_equal(atomic_load(&a.all), 2);
    assert_td_ok(td_subscription_stop(sub));
    td_subscription_free(sub);
    td_store_free(store);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2]);
    self = argv[0];
    if (!tt_postgres()) {
        print_message("PostgreSQL only (TD_TEST_STORE=postgres)\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_go_on_after_the_connection_ends),
        cmocka_unit_test(test_a_unit_cut_half_way_fails_whole),
        cmocka_unit_test(test_waiters_hear_of_commits_after_the_connection_ends),
        cmocka_unit_test(test_writers_take_turns_on_a_stream),
        cmocka_unit_test(test_subscriptions_ride_out_an_outage),
        cmocka_unit_test(test_a_lost_lock_taken_over_stops_its_holder),
        cmocka_unit_test(test_a_renewal_during_an_outage_is_not_a_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
