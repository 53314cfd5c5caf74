/*
 * test_aggregate.c: event-sourced aggregates with snapshots
 * (tidings/aggregate.h), on every backend. A load folds the snapshot and
 * what came after it; an append checks the loaded version, folds and
 * writes the snapshot in the caller's unit; events appended around the
 * aggregate (an import, another writer) are folded on the next load; the
 * state at a past version is folded from the start; bad names, bad
 * snapshots and a fold that cannot apply an event are refused and leave
 * nothing behind.
 */
#include <string.h>

#include "support.h"
#include "tidings/aggregate.h"

typedef struct fixture {
    char *dir;
    td_store *store;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = tt_tmpdir();
    char *url = tt_store_url(f->dir, "store");
    f->store = tt_open(url);
    free(url);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    td_store_free(f->store);
    tt_rmdir(f->dir);
    free(f);
    return 0;
}

/* {"n": events, "sum": the sum of their x, "last": the last type}; an
 * event of type Poison cannot be applied. */
static json_t *count_fold(json_t *state, const char *type, json_t *data)
{
    if (strcmp(type, "Poison") == 0) {
        json_decref(state);
        return NULL;
    }
    json_int_t n = 0, sum = 0;
    if (state)
        json_unpack(state, "{s:I,s:I}", "n", &n, "sum", &sum);
    json_decref(state);
    sum += json_integer_value(json_object_get(data, "x"));
    return json_pack("{s:I,s:I,s:s}", "n", n + 1, "sum", sum, "last", type);
}

static json_int_t field(const json_t *state, const char *name)
{
    return json_integer_value(json_object_get(state, name));
}

typedef struct command {
    const char *id;
    int xs[4];
    size_t count;
    const char *type; /* of every event; NULL: Added */
    int64_t version;  /* after */
    int64_t loaded;   /* before */
} command;

static int add(td_txn *txn, void *payload)
{
    command *c = payload;
    td_aggregate agg;
    int error = td_aggregate_load(txn, &agg, "counter", c->id, count_fold);
    if (error < 0)
        return error;
    c->loaded = agg.version;
    td_aggregate_event evs[4];
    json_t *data[4] = {0};
    for (size_t i = 0; i < c->count; i++) {
        data[i] = json_pack("{s:i}", "x", c->xs[i]);
        evs[i] =
            (td_aggregate_event){c->type ? c->type : "Added", "test", TD_KIND_DOMAIN, 1, data[i]};
    }
    error = td_aggregate_append(txn, &agg, evs, c->count, count_fold);
    c->version = agg.version;
    for (size_t i = 0; i < c->count; i++)
        json_decref(data[i]);
    td_aggregate_dispose(&agg);
    return error;
}

static void test_append_load_read(void **state)
{
    fixture *f = *state;
    command c = {"c-1", {1, 2, 3}, 3, NULL, 0, 0};
    assert_td_ok(td_transact(f->store, add, &c));
    assert_int_equal(c.loaded, 0); /* new: nothing to load */
    assert_int_equal(c.version, 3);
    command d = {"c-1", {10}, 1, NULL, 0, 0};
    assert_td_ok(td_transact(f->store, add, &d));
    assert_int_equal(d.loaded, 3);
    assert_int_equal(d.version, 4);
    json_t *now = NULL;
    int64_t version = 0;
    assert_td_ok(td_aggregate_read(f->store, "counter", "c-1", count_fold, &now, &version));
    assert_int_equal(version, 4);
    assert_int_equal(field(now, "n"), 4);
    assert_int_equal(field(now, "sum"), 16);
    json_decref(now);
    /* the snapshot is in the unit's documents */
    char *text = NULL;
    size_t len = 0;
    assert_td_ok(td_store_doc_get(f->store, "snap_counter", "c-1", &text, &len));
    assert_non_null(strstr(text, "\"version\":4"));
    td_free(text);
    json_t *then = NULL;
    assert_td_ok(td_aggregate_read_at(f->store, "counter", "c-1", 2, count_fold, &then));
    assert_int_equal(field(then, "n"), 2);
    assert_int_equal(field(then, "sum"), 3);
    json_decref(then);
    assert_td_code(td_aggregate_read_at(f->store, "counter", "c-1", 5, count_fold, &then),
                   TD_ENOTFOUND);
    assert_td_code(td_aggregate_read(f->store, "counter", "c-2", count_fold, &now, NULL),
                   TD_ENOTFOUND);
}

/* Events appended to the stream another way carry no snapshot: the next
 * load folds them on top, and the next append expects their version. */
static void test_events_without_snapshot_are_folded(void **state)
{
    fixture *f = *state;
    command c = {"c-1", {5}, 1, NULL, 0, 0};
    assert_td_ok(td_transact(f->store, add, &c));
    td_event ev = tt_event("Added", "{\"x\":7}");
    assert_td_ok(td_store_append(f->store, "counter-c-1", 1, &ev, 1));
    json_t *now = NULL;
    int64_t version = 0;
    assert_td_ok(td_aggregate_read(f->store, "counter", "c-1", count_fold, &now, &version));
    assert_int_equal(version, 2);
    assert_int_equal(field(now, "sum"), 12);
    json_decref(now);
    command d = {"c-1", {1}, 1, NULL, 0, 0};
    assert_td_ok(td_transact(f->store, add, &d));
    assert_int_equal(d.loaded, 2);
    assert_int_equal(d.version, 3);
}

typedef struct stale {
    td_store *store;
    int result;
} stale;

/* Loads, lets another unit append meanwhile (a nested transact is not
 * allowed, so the other append happened before: the loaded version is made
 * stale by hand), then appends: a conflict. */
static int append_stale(td_txn *txn, void *payload)
{
    stale *s = payload;
    td_aggregate agg;
    int error = td_aggregate_load(txn, &agg, "counter", "c-1", count_fold);
    if (error < 0)
        return error;
    agg.version -= 1; /* as loaded before the other writer's event */
    json_t *data = json_pack("{s:i}", "x", 1);
    td_aggregate_event ev = {"Added", NULL, TD_KIND_DOMAIN, 1, data};
    s->result = td_aggregate_append(txn, &agg, &ev, 1, count_fold);
    json_decref(data);
    td_aggregate_dispose(&agg);
    return s->result;
}

static void test_stale_version_conflicts(void **state)
{
    fixture *f = *state;
    command c = {"c-1", {1, 1}, 2, NULL, 0, 0};
    assert_td_ok(td_transact(f->store, add, &c));
    stale s = {f->store, 0};
    assert_td_code(td_transact(f->store, append_stale, &s), TD_ECONFLICT);
    assert_int_equal(s.result, TD_ECONFLICT);
    json_t *now = NULL;
    int64_t version = 0;
    assert_td_ok(td_aggregate_read(f->store, "counter", "c-1", count_fold, &now, &version));
    assert_int_equal(version, 2); /* nothing of it */
    json_decref(now);
}

static int load_only(td_txn *txn, void *payload)
{
    const char *const *names = payload;
    td_aggregate agg;
    int error = td_aggregate_load(txn, &agg, names[0], names[1], count_fold);
    if (error == 0)
        td_aggregate_dispose(&agg);
    return error;
}

static int append_count(td_txn *txn, void *payload)
{
    size_t count = *(size_t *)payload;
    td_aggregate agg;
    int error = td_aggregate_load(txn, &agg, "counter", "c-9", count_fold);
    if (error < 0)
        return error;
    td_aggregate_event evs[TD_AGGREGATE_APPEND_MAX + 1];
    json_t *data = json_pack("{s:i}", "x", 1);
    for (size_t i = 0; i < TD_AGGREGATE_APPEND_MAX + 1; i++)
        evs[i] = (td_aggregate_event){"Added", NULL, TD_KIND_DOMAIN, 0, data};
    error = td_aggregate_append(txn, &agg, evs, count, count_fold);
    json_decref(data);
    td_aggregate_dispose(&agg);
    return error;
}

static void test_bad_input_writes_nothing(void **state)
{
    fixture *f = *state;
    char long_category[62], long_id[TD_AGGREGATE_ID_MAX + 2];
    memset(long_category, 'a', sizeof long_category - 1);
    long_category[sizeof long_category - 1] = '\0'; /* a category, but snap_ + it is too long */
    memset(long_id, 'b', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    const char *bad[][2] = {{"9counter", "c-1"},
                            {"counter", ""},
                            {"counter", "a b"},
                            {long_category, "c-1"},
                            {"counter", long_id}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_td_code(td_transact(f->store, load_only, (void *)bad[i]), TD_EINVAL);
    size_t none = 0, too_many = TD_AGGREGATE_APPEND_MAX + 1;
    assert_td_code(td_transact(f->store, append_count, &none), TD_EINVAL);
    assert_td_code(td_transact(f->store, append_count, &too_many), TD_EINVAL);
    /* a fold that cannot apply an event: the unit fails whole */
    command poison = {"c-1", {1, 2}, 2, "Poison", 0, 0};
    assert_td_code(td_transact(f->store, add, &poison), TD_ECORRUPT);
    int64_t head = -1;
    assert_td_ok(td_store_head(f->store, &head));
    assert_int_equal(head, 0);
    char *text = NULL;
    size_t len = 0;
    assert_td_code(td_store_doc_get(f->store, "snap_counter", "c-1", &text, &len), TD_ENOTFOUND);
}

static int put_bad_snapshot(td_txn *txn, void *payload)
{
    (void)payload;
    return td_txn_doc_put(txn, "snap_counter", "c-1", "{\"state\":{}}", 12);
}

static void test_bad_snapshot_is_reported(void **state)
{
    fixture *f = *state;
    command c = {"c-1", {1}, 1, NULL, 0, 0};
    assert_td_ok(td_transact(f->store, add, &c));
    assert_td_ok(td_transact(f->store, put_bad_snapshot, NULL));
    json_t *now = NULL;
    assert_td_code(td_aggregate_read(f->store, "counter", "c-1", count_fold, &now, NULL),
                   TD_ECORRUPT);
    assert_non_null(strstr(td_error_last(), "snapshot"));
    assert_td_code(td_transact(f->store, add, &c), TD_ECORRUPT);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_append_load_read),         T(test_events_without_snapshot_are_folded),
        T(test_stale_version_conflicts),  T(test_bad_input_writes_nothing),
        T(test_bad_snapshot_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
