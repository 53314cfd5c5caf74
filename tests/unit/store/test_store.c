/*
 * test_store.c: the store's event API, against the public API only, so it
 * runs unchanged on every backend (TD_TEST_STORE).
 */
#include <pthread.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "support.h"

typedef struct fixture {
    char *dir;
    char *url;
    td_store *store;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tt_tmpdir();
    f->url = tt_store_url(f->dir, "store");
    f->store = tt_open(f->url);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    td_store_free(f->store);
    free(f->url);
    tt_rmdir(f->dir);
    free(f);
    return 0;
}

static int64_t count_all(td_store *store)
{
    td_read_query q = TD_READ_QUERY_INIT;
    return tt_count(store, &q);
}

typedef struct collected {
    td_event *events[64];
    size_t count;
} collected;

static int collect(const td_event *ev, void *payload)
{
    collected *c = payload;
    assert_true(c->count < 64);
    assert_td_ok(td_event_dup(&c->events[c->count++], ev));
    return 0;
}

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->count; i++)
        td_event_free(c->events[i]);
    c->count = 0;
}

static void test_append_fills_envelope(void **state)
{
    fixture *f = *state;
    td_event ev;
    collected c = {0};
    td_event_init(&ev);
    ev.type = "OrderCreated";
    ev.data = "{\"total\":1999}";
    td_time before = td_time_now();
    assert_td_ok(td_store_append(f->store, "order-1", TD_EXPECT_NO_STREAM, &ev, 1));
    assert_int_equal(ev.position, 1);
    assert_int_equal(ev.version, 1);
    assert_false(td_uuid_is_nil(&ev.id));
    assert_true(ev.occurred_at >= before);
    assert_int_equal(ev.schema_version, 1);
    assert_td_ok(td_traceparent_check(ev.traceparent));

    assert_td_ok(td_store_read_event(f->store, &ev.id, collect, &c));
    assert_int_equal(c.count, 1);
    td_event *got = c.events[0];
    assert_string_equal(got->stream, "order-1");
    assert_string_equal(got->type, "OrderCreated");
    assert_string_equal(got->source, "order"); /* defaults to the category */
    assert_string_equal(got->data, "{\"total\":1999}");
    assert_string_equal(got->metadata, "{}");
    assert_string_equal(got->traceparent, ev.traceparent);
    assert_int_equal(got->occurred_at, ev.occurred_at);
    assert_null(got->correlation_id);
    collected_free(&c);
}

static void test_expected_versions(void **state)
{
    fixture *f = *state;
    int64_t version = -1;
    tt_append(f->store, "order-2", "A", 1);
    td_event ev = tt_event("B", "{}");
    assert_td_code(td_store_append(f->store, "order-2", TD_EXPECT_NO_STREAM, &ev, 1), TD_ECONFLICT);
    assert_non_null(strstr(td_error_last(), "version 1"));
    assert_td_code(td_store_append(f->store, "order-2", 2, &ev, 1), TD_ECONFLICT);
    assert_td_code(td_store_append(f->store, "order-2", -7, &ev, 1), TD_EINVAL);
    assert_int_equal(count_all(f->store), 1);
    assert_td_ok(td_store_append(f->store, "order-2", 1, &ev, 1));
    assert_int_equal(ev.version, 2);
    assert_td_ok(td_store_stream_version(f->store, "order-2", &version));
    assert_int_equal(version, 2);
    assert_td_ok(td_store_stream_version(f->store, "order-none", &version));
    assert_int_equal(version, 0);
}

static void test_batch_is_atomic(void **state)
{
    fixture *f = *state;
    td_event evs[3];
    for (int i = 0; i < 3; i++) {
        td_event_init(&evs[i]);
        evs[i].type = "Line";
        evs[i].data = "{\"ok\":true}";
    }
    evs[1].data = "[1,2]"; /* not an object: the whole batch is refused */
    assert_td_code(td_store_append(f->store, "cart-1", TD_EXPECT_ANY, evs, 3), TD_EINVAL);
    assert_int_equal(count_all(f->store), 0);
    evs[1].data = "{\"ok\":true}";
    tt_append(f->store, "other-1", "X", 0);
    assert_td_ok(td_store_append(f->store, "cart-1", TD_EXPECT_NO_STREAM, evs, 3));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(evs[i].version, i + 1);
        assert_int_equal(evs[i].position, i + 2);
    }
    assert_true(td_uuid_compare(&evs[0].id, &evs[1].id) < 0);
}

static void test_bad_input_writes_nothing(void **state)
{
    fixture *f = *state;
    td_event ev = tt_event("T", "{}");
    assert_td_code(td_store_append(f->store, "nodash", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    assert_td_code(td_store_append(f->store, "order-1", TD_EXPECT_ANY, &ev, 0), TD_EINVAL);
    assert_td_code(td_store_append(f->store, "order-1", TD_EXPECT_ANY, NULL, 1), TD_EINVAL);
    ev.data = "{\"a\":1,\"a\":2}";
    assert_td_code(td_store_append(f->store, "order-1", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    ev.data = "{\"a\":\"\\u0000\"}";
    assert_td_code(td_store_append(f->store, "order-1", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    ev.data = "{\"a\":\"\xff\"}";
    assert_td_code(td_store_append(f->store, "order-1", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    ev.data = "{}";
    ev.metadata = "\"string\"";
    assert_td_code(td_store_append(f->store, "order-1", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    ev.metadata = NULL;
    ev.type = "bad type";
    assert_td_code(td_store_append(f->store, "order-1", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    ev.type = "T";
    ev.correlation_id = "has space";
    assert_td_code(td_store_append(f->store, "order-1", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    ev.correlation_id = NULL;
    strcpy(ev.traceparent, "00-xyz");
    assert_td_code(td_store_append(f->store, "order-1", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    ev.traceparent[0] = '\0';
    ev.kind = (td_event_kind)7;
    assert_td_code(td_store_append(f->store, "order-1", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    assert_int_equal(count_all(f->store), 0);
}

static void test_event_size_limit(void **state)
{
    fixture *f = *state;
    td_store *small = NULL;
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.max_event_bytes = 64;
    td_store_free(f->store);
    assert_td_ok(td_store_open(&small, f->url, &opts));
    f->store = small;
    char data[128];
    memset(data, 'x', sizeof data);
    memcpy(data, "{\"s\":\"", 6);
    memcpy(data + 100, "\"}", 3);
    td_event ev = tt_event("Big", data);
    assert_td_code(td_store_append(small, "blob-1", TD_EXPECT_ANY, &ev, 1), TD_ETOOBIG);
    assert_int_equal(count_all(small), 0);
    ev.data = "{\"s\":\"small\"}";
    assert_td_ok(td_store_append(small, "blob-1", TD_EXPECT_ANY, &ev, 1));
}

/* The nice value of this process's thread named name, or 99 if none. */
static int nice_of_thread(const char *name)
{
    DIR *dir = opendir("/proc/self/task");
    struct dirent *e;
    int nice = 99;
    while (dir && (e = readdir(dir)) != NULL && nice == 99) {
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = e->d_name[0] == '.' ? NULL : fopen(path, "r");
        if (f && fgets(comm, sizeof comm, f))
            comm[strcspn(comm, "\n")] = '\0';
        if (f)
            fclose(f);
        if (strcmp(comm, name) == 0) /* Linux: a thread id names the thread alone */
            nice = getpriority(PRIO_PROCESS, (id_t)atoi(e->d_name));
    }
    if (dir)
        closedir(dir);
    return nice;
}

/* writer_nice sets the writer thread's priority, and only that thread's. */
static void test_writer_nice(void **state)
{
    fixture *f = *state;
    td_store *niced = NULL;
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.writer_nice = 7; /* raising it needs no privilege */
    td_store_free(f->store);
    assert_td_ok(td_store_open(&niced, f->url, &opts));
    f->store = niced;
    tt_append(niced, "order-1", "OrderCreated", 1); /* the writer has run */
    assert_int_equal(nice_of_thread("td-writer"), 7);
    assert_int_equal(getpriority(PRIO_PROCESS, 0), 0); /* this thread: unchanged */
    opts.version = 1;                                  /* a caller built against the old layout */
    td_store *old = NULL;
    assert_td_code(td_store_open(&old, f->url, &opts), TD_EINVAL);
    assert_null(old);
}

/* td_store_destroy closes the store and leaves none of its files. */
static void test_destroy(void **state)
{
    (void)state;
    char *tmp = tt_tmpdir();
    char *url = tt_store_url(tmp, "gone");
    td_store *store = tt_open(url);
    tt_append(store, "order-1", "OrderCreated", 3);
    assert_td_ok(td_store_destroy(store));
    DIR *dir = opendir(tmp);
    struct dirent *e;
    int left = 0;
    while (dir && (e = readdir(dir)) != NULL)
        left += e->d_name[0] != '.';
    if (dir)
        closedir(dir);
    assert_int_equal(left, 0); /* not the file, nor its -wal or -shm */
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.create = false;
    td_store *again = NULL;
    assert_td_code(td_store_open(&again, url, &opts), TD_ENOTFOUND);
    assert_td_ok(td_store_destroy(NULL));
    free(url);
    tt_rmdir(tmp);
}

static void test_reads_and_filters(void **state)
{
    fixture *f = *state;
    td_time t0 = td_time_now();
    tt_append(f->store, "order-1", "OrderCreated", 1);   /* 1 */
    tt_append(f->store, "user-1", "UserRegistered", 2);  /* 2 */
    tt_append(f->store, "order-1", "OrderShipped", 3);   /* 3 */
    tt_append(f->store, "order-2", "OrderCreated", 4);   /* 4 */
    tt_append(f->store, "order-1", "OrderDelivered", 5); /* 5 */
    td_read_query q = TD_READ_QUERY_INIT;
    q.type = "OrderCreated";
    assert_int_equal(tt_count(f->store, &q), 2);
    q.type = NULL;
    q.category = "order";
    assert_int_equal(tt_count(f->store, &q), 4);
    q.category = NULL;
    q.stream = "order-1";
    q.after_position = 1;
    assert_int_equal(tt_count(f->store, &q), 2);
    q.stream = NULL;
    q.after_position = 0;
    q.limit = 3;
    assert_int_equal(tt_count(f->store, &q), 3);
    q.limit = 0;
    q.since = t0;
    assert_int_equal(tt_count(f->store, &q), 5);
    q.since = td_time_now() + 1000000;
    assert_int_equal(tt_count(f->store, &q), 0);

    collected c = {0};
    assert_td_ok(td_store_read_stream(f->store, "order-1", 2, 0, collect, &c));
    assert_int_equal(c.count, 2);
    assert_int_equal(c.events[0]->version, 2);
    assert_string_equal(c.events[0]->type, "OrderShipped");
    assert_int_equal(c.events[1]->position, 5);
    collected_free(&c);

    td_read_query bad = TD_READ_QUERY_INIT;
    bad.category = "or der";
    assert_td_code(td_store_read(f->store, &bad, collect, &c), TD_EINVAL);
    bad.category = NULL;
    bad.after_position = -1;
    assert_td_code(td_store_read(f->store, &bad, collect, &c), TD_EINVAL);
    td_uuid missing;
    assert_td_ok(td_uuid_v7(&missing));
    assert_td_code(td_store_read_event(f->store, &missing, collect, &c), TD_ENOTFOUND);
    int64_t head = 0;
    assert_td_ok(td_store_head(f->store, &head));
    assert_int_equal(head, 5);
}

static int stop_after_two(const td_event *ev, void *payload)
{
    (void)ev;
    return ++*(int *)payload == 2 ? 1 : 0;
}

static int fail_at_first(const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    return TD_ECORRUPT;
}

static void test_read_callback_controls(void **state)
{
    fixture *f = *state;
    int seen = 0;
    for (int i = 0; i < 5; i++)
        tt_append(f->store, "order-1", "T", i);
    td_read_query q = TD_READ_QUERY_INIT;
    assert_td_ok(td_store_read(f->store, &q, stop_after_two, &seen));
    assert_int_equal(seen, 2);
    assert_int_equal(td_store_read(f->store, &q, fail_at_first, NULL), TD_ECORRUPT);
}

/* ---- units of work ----------------------------------------------------------- */

static int unit_append_then_fail(td_txn *txn, void *payload)
{
    (void)payload;
    td_event ev = tt_event("T", "{}");
    assert_td_ok(td_txn_append(txn, "order-9", TD_EXPECT_ANY, &ev, 1));
    assert_td_ok(td_txn_doc_put(txn, "orders", "9", "{\"x\":1}", 0));
    return TD_ECONFLICT;
}

static int unit_two_streams(td_txn *txn, void *payload)
{
    (void)payload;
    td_event a, b;
    td_event_init(&a);
    td_event_init(&b);
    a.type = b.type = "T";
    a.data = b.data = "{}";
    int rc = td_txn_append(txn, "order-1", TD_EXPECT_NO_STREAM, &a, 1);
    if (rc == 0)
        rc = td_txn_append(txn, "payment-1", TD_EXPECT_NO_STREAM, &b, 1);
    if (rc == 0)
        assert_int_equal(b.position, a.position + 1);
    return rc;
}

static void test_unit_commits_or_rolls_back_whole(void **state)
{
    fixture *f = *state;
    char *doc = NULL;
    assert_td_code(td_transact(f->store, unit_append_then_fail, NULL), TD_ECONFLICT);
    assert_int_equal(count_all(f->store), 0);
    assert_td_code(td_store_doc_get(f->store, "orders", "9", &doc, NULL), TD_ENOTFOUND);
    assert_td_ok(td_transact(f->store, unit_two_streams, NULL));
    assert_int_equal(count_all(f->store), 2);
    /* Run again: the first append conflicts, so the unit writes nothing. */
    assert_td_code(td_transact(f->store, unit_two_streams, NULL), TD_ECONFLICT);
    assert_int_equal(count_all(f->store), 2);
}

static int unit_recovers_from_failed_append(td_txn *txn, void *payload)
{
    td_event evs[2];
    td_uuid *dup = payload;
    for (int i = 0; i < 2; i++) {
        td_event_init(&evs[i]);
        evs[i].type = "T";
        evs[i].data = "{}";
    }
    evs[1].id = *dup; /* stored already: the second insert fails */
    assert_td_code(td_txn_append(txn, "order-5", TD_EXPECT_ANY, evs, 2), TD_EEXISTS);
    td_event ok = tt_event("Recovered", "{}");
    return td_txn_append(txn, "order-5", TD_EXPECT_NO_STREAM, &ok, 1);
}

static void test_failed_append_leaves_nothing_in_unit(void **state)
{
    fixture *f = *state;
    td_event first = tt_event("First", "{}");
    assert_td_ok(td_store_append(f->store, "order-4", TD_EXPECT_ANY, &first, 1));
    assert_td_ok(td_transact(f->store, unit_recovers_from_failed_append, &first.id));
    td_read_query q = TD_READ_QUERY_INIT;
    q.stream = "order-5";
    assert_int_equal(tt_count(f->store, &q), 1);
    int64_t head = 0;
    assert_td_ok(td_store_head(f->store, &head));
    assert_int_equal(head, 2); /* positions stay contiguous */
}

static int unit_reports_io_error(td_txn *txn, void *payload)
{
    (void)payload;
    td_event ev = tt_event("T", "{}");
    assert_td_ok(td_txn_append(txn, "order-3", TD_EXPECT_ANY, &ev, 1));
    return TD_EIO; /* e.g. a handler whose network call failed */
}

static void test_unit_error_codes_do_not_stop_the_store(void **state)
{
    fixture *f = *state;
    assert_td_code(td_transact(f->store, unit_reports_io_error, NULL), TD_EIO);
    assert_int_equal(count_all(f->store), 0);
    tt_append(f->store, "order-3", "T", 1); /* the store still takes writes */
    assert_int_equal(count_all(f->store), 1);
}

static void test_writer_stats_count_units_and_commits(void **state)
{
    fixture *f = *state;
    td_writer_stats before, after;
    assert_td_ok(td_store_writer_stats(f->store, &before));
    for (int i = 0; i < 3; i++)
        tt_append(f->store, "order-1", "T", i);
    assert_td_code(td_transact(f->store, unit_reports_io_error, NULL), TD_EIO);
    assert_td_ok(td_store_writer_stats(f->store, &after));
    assert_int_equal(after.units - before.units, 4);
    assert_int_equal(after.units_failed - before.units_failed, 1);
    assert_true(after.commits - before.commits >= 1 && after.commits - before.commits <= 4);
    assert_true(after.commit_seconds > before.commit_seconds);
    assert_true(after.busy_seconds - before.busy_seconds >=
                after.commit_seconds - before.commit_seconds);
}

static int unit_nested(td_txn *txn, void *payload)
{
    (void)txn;
    return td_transact(payload, unit_two_streams, NULL);
}

static int unit_write_while_reading_cb(const td_event *ev, void *payload)
{
    (void)ev;
    td_txn *txn = payload;
    return td_txn_doc_put(txn, "x", "k", "{}", 0);
}

static int unit_write_while_reading(td_txn *txn, void *payload)
{
    (void)payload;
    return td_txn_read_stream(txn, "order-1", 1, 0, unit_write_while_reading_cb, txn);
}

static void test_misuse_is_refused(void **state)
{
    fixture *f = *state;
    assert_td_code(td_transact(f->store, unit_nested, f->store), TD_EINVAL);
    assert_td_code(td_transact(f->store, NULL, NULL), TD_EINVAL);
    tt_append(f->store, "order-1", "T", 1);
    assert_td_code(td_transact(f->store, unit_write_while_reading, NULL), TD_EINVAL);
    assert_int_equal(count_all(f->store), 1);
}

static void test_reopen_and_read_only(void **state)
{
    fixture *f = *state;
    tt_append(f->store, "order-1", "T", 1);
    td_store_free(f->store);
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.read_only = true;
    assert_td_ok(td_store_open(&f->store, f->url, &opts));
    assert_int_equal(count_all(f->store), 1);
    td_event ev = tt_event("T", "{}");
    assert_td_code(td_store_append(f->store, "order-1", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    td_writer_stats none;
    assert_td_ok(td_store_writer_stats(f->store, &none));
    assert_int_equal(none.units + none.commits, 0); /* no writer */
}

/* ---- import --------------------------------------------------------------- */

typedef struct import_args {
    td_event *event;
    int result;
} import_args;

static int unit_import(td_txn *txn, void *payload)
{
    import_args *a = payload;
    a->result = td_txn_import(txn, a->event);
    return a->result < 0 ? a->result : 0;
}

static void test_import_keeps_identity(void **state)
{
    fixture *f = *state;
    td_event ev;
    td_event_init(&ev);
    assert_td_ok(td_uuid_v7(&ev.id));
    ev.stream = "order-1";
    ev.version = 1;
    ev.position = 10;
    ev.type = "T";
    ev.schema_version = 1;
    ev.source = "orders";
    ev.occurred_at = 1000000;
    strcpy(ev.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    ev.data = "{}";
    import_args a = {&ev, 0};
    assert_td_ok(td_transact(f->store, unit_import, &a));
    assert_int_equal(a.result, 0);
    assert_td_ok(td_transact(f->store, unit_import, &a)); /* the same again: skipped */
    assert_int_equal(a.result, 1);
    assert_int_equal(count_all(f->store), 1);
    int64_t head = 0;
    assert_td_ok(td_store_head(f->store, &head));
    assert_int_equal(head, 10);

    td_event clash = ev; /* same id, other position */
    clash.position = 11;
    a.event = &clash;
    assert_td_code(td_transact(f->store, unit_import, &a), TD_EEXISTS);
    assert_td_ok(td_uuid_v7(&clash.id));
    clash.version = 3; /* the stream is at 1 */
    assert_td_code(td_transact(f->store, unit_import, &a), TD_ECONFLICT);
    clash.version = 2;
    clash.position = 5; /* below the head */
    assert_td_code(td_transact(f->store, unit_import, &a), TD_ECONFLICT);
    assert_int_equal(count_all(f->store), 1);
    /* Appends continue after the imported position. */
    assert_int_equal(tt_append(f->store, "order-1", "T", 2), 11);
}

/* ---- the audit chain ------------------------------------------------------- */

static void test_audit_chain_survives_rollbacks(void **state)
{
    fixture *f = *state;
    int64_t bad = -1, checked = 0;
    tt_append(f->store, "order-1", "T", 1);
    assert_td_code(td_transact(f->store, unit_append_then_fail, NULL), TD_ECONFLICT);
    tt_append(f->store, "order-1", "T", 2);
    td_event first = tt_event("First", "{}");
    assert_td_ok(td_store_append(f->store, "order-4", TD_EXPECT_ANY, &first, 1));
    assert_td_ok(td_transact(f->store, unit_recovers_from_failed_append, &first.id));
    td_event batch[3] = {tt_event("A", "{}"), tt_event("B", "{\"x\":[1,2]}"), tt_event("C", "{}")};
    assert_td_ok(td_store_append(f->store, "cart-1", TD_EXPECT_ANY, batch, 3));
    assert_td_ok(td_store_audit_verify(f->store, 0, 0, &bad, &checked));
    assert_int_equal(bad, 0);
    assert_int_equal(checked, 7); /* the rolled-back work left no broken link */
    assert_td_ok(td_store_audit_verify(f->store, 3, 5, &bad, &checked));
    assert_int_equal(checked, 3);
    uint8_t zero[TD_HASH_LEN] = {0}, before[TD_HASH_LEN];
    assert_td_ok(td_store_hash_before(f->store, 1, before));
    assert_memory_equal(before, zero, TD_HASH_LEN);
    assert_td_code(td_store_audit_verify(f->store, 5, 2, &bad, &checked), TD_EINVAL);
}

/* ---- waiting -------------------------------------------------------------- */

static void *append_later(void *arg)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    tt_append(arg, "order-1", "Late", 1);
    return NULL;
}

static void test_wait_wakes_on_commit(void **state)
{
    fixture *f = *state;
    int64_t head = -1;
    assert_td_ok(td_store_wait(f->store, 0, 10, &head));
    assert_int_equal(head, 0); /* timed out, nothing new */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, append_later, f->store), 0);
    assert_td_ok(td_store_wait(f->store, 0, 10000, &head));
    assert_int_equal(head, 1);
    pthread_join(t, NULL);
}

/* The known head follows this handle's commits at once, and another
 * handle's (another process's) only once a wait has polled the database. */
static void test_known_head(void **state)
{
    fixture *f = *state;
    assert_int_equal(td_store_known_head(f->store), 0);
    for (int i = 0; i < 3; i++)
        tt_append(f->store, "order-1", "T", i);
    assert_int_equal(td_store_known_head(f->store), 3);
    td_store *other = tt_open(f->url);
    assert_int_equal(td_store_known_head(other), 3); /* read when opened */
    tt_append(f->store, "order-1", "T", 3);
    tt_append(f->store, "order-1", "T", 4);
    assert_int_equal(td_store_known_head(other), 3);
    int64_t head = 0;
    assert_td_ok(td_store_wait(other, 3, 5000, &head));
    assert_int_equal(head, 5);
    assert_int_equal(td_store_known_head(other), 5);
    td_store_free(other);
}

/* A part of a unit rolled back after appending the highest positions of
 * its transaction: another handle (another process) must neither be told
 * of a head past what committed, nor be able to make this handle append a
 * stream version twice. On PostgreSQL the writer once kept the rolled-back
 * positions as its head: its NOTIFY announced them, so a filtered reader
 * elsewhere could take a later real event at such a position as seen, and
 * its cache of stream versions stayed trusted once another writer brought
 * the head up to that number, so its next append to such a stream collided
 * ("an event with this id is stored already"). */
static int append_two_then_fail(td_txn *txn, void *payload)
{
    (void)payload;
    td_event two[2] = {tt_event("Undone", "{}"), tt_event("Undone", "{}")};
    int error = td_txn_append(txn, "other-1", TD_EXPECT_ANY, two, 2);
    return error < 0 ? error : TD_EINVAL;
}

static int undone_part_then_append(td_txn *txn, void *payload)
{
    (void)payload;
    assert_td_code(td_txn_try(txn, append_two_then_fail, NULL), TD_EINVAL);
    td_event ev = tt_event("Kept", "{}");
    return td_txn_append(txn, "shared-1", TD_EXPECT_ANY, &ev, 1);
}

static void test_rolled_back_positions_are_not_the_head(void **state)
{
    fixture *f = *state;
    tt_append(f->store, "shared-1", "T", 1); /* position 1, shared-1 at 1 */
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.poll_interval_ms = 3600 * 1000; /* it learns of commits only as they are told */
    td_store *other = NULL;
    assert_td_ok(td_store_open(&other, f->url, &opts));
    int64_t head = 0;
    if (tt_postgres()) { /* until its watch hears commits: a probe's NOTIFY */
        assert_td_ok(td_store_wait(other, 1, 1, &head)); /* starts the watch */
        bool heard = false;
        for (int probe = 0; !heard && probe < 50; probe++) {
            tt_append(f->store, "probe-1", "T", 1);
            for (int i = 0; !heard && i < 20; i++) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
                heard = td_store_known_head(other) == td_store_known_head(f->store);
            }
        }
        assert_true(heard);
    }
    tt_append(f->store, "shared-1", "T", 1); /* shared-1 at 2, at the head h */
    int64_t h = td_store_known_head(f->store);
    assert_td_ok(td_transact(f->store, undone_part_then_append, NULL)); /* h+1; h+1..h+2 undone */
    assert_td_ok(td_store_head(f->store, &head));
    assert_int_equal(head, h + 1);
    if (tt_postgres()) { /* what the commit told: h + 1, not h + 2 */
        for (int i = 0; td_store_known_head(other) < h + 1; i++) {
            assert_true(i < 1000);
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        assert_int_equal(td_store_known_head(other), h + 1);
    }
    tt_append(other, "shared-1", "T", 1); /* h+2, where the undone part reached; shared-1 at 4 */
    td_event next = tt_event("Next", "{}");
    assert_td_ok(td_store_append(f->store, "shared-1", TD_EXPECT_ANY, &next, 1));
    assert_int_equal(next.version, 5);
    assert_int_equal(next.position, h + 3);
    td_store_free(other);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_append_fills_envelope),
        T(test_expected_versions),
        T(test_batch_is_atomic),
        T(test_bad_input_writes_nothing),
        T(test_event_size_limit),
        T(test_writer_nice),
        T(test_destroy),
        T(test_reads_and_filters),
        T(test_read_callback_controls),
        T(test_unit_commits_or_rolls_back_whole),
        T(test_failed_append_leaves_nothing_in_unit),
        T(test_unit_error_codes_do_not_stop_the_store),
        T(test_writer_stats_count_units_and_commits),
        T(test_misuse_is_refused),
        T(test_reopen_and_read_only),
        T(test_import_keeps_identity),
        T(test_audit_chain_survives_rollbacks),
        T(test_wait_wakes_on_commit),
        T(test_known_head),
        T(test_rolled_back_positions_are_not_the_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
