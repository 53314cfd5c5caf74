/*
 * test_pg_pipeline.c: the PostgreSQL backend's writes held back (documents,
 * and events whose ids the store made), sent with the unit's next
 * statement whose answer is needed or at the unit's end, and what their
 * failures do (docs/internals/store.md, "Round trips").
 *
 *   - a unit reads back what it has just written, held back or not;
 *   - a held-back write the server refuses (a trigger of the test's
 *     own refuses a document key) fails exactly its unit, with the
 *     server's code and message, nothing of that unit is stored, and the
 *     other units of the same batch commit;
 *   - a unit that only appends events with ids the store made carries its
 *     INSERTs past its end, to the next unit's statements or the COMMIT:
 *     one the server refuses (a trigger of the test's own) fails the whole
 *     batch with the server's code, nothing of it is stored, positions stay
 *     contiguous, and writes go on (the store is not stopped);
 *   - a caller's own event id that is taken is still the append's
 *     TD_EEXISTS at the call, and the unit can go on past it
 *     (td_txn_try), its other writes committed;
 *   - a connection the server ends while a batch has writes in flight
 *     fails the units of that batch (TD_EUNAVAILABLE) and nothing of them
 *     is stored; the next write succeeds.
 *
 * Several units share a batch when they queue while the writer runs
 * another: a first unit waits until the others are about to be submitted.
 * The scheduler may still split them; a scenario is then run again (up to
 * ROUNDS times) until one round had them in one batch, and every round's
 * outcome is checked.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "support.h"

#define ROUNDS 5
#define UNITS  5

/* The store's URL, its connections named `app`. */
static char *store_url(const char *name, char *app, size_t app_size)
{
    char *base = tt_pg_schema_url(name);
    snprintf(app, app_size, "td_pp_%ld_%s", (long)getpid(), name);
    char *url = malloc(strlen(base) + strlen(app) + 32);
    assert_non_null(url);
    sprintf(url, "%s&application_name=%s", base, app);
    free(base);
    return url; /* freed by the test */
}

/* Runs sql on the store's schema (url's search_path). */
static void in_schema(const char *url, const char *sql)
{
    PGconn *pg = PQconnectdb(url);
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    PQclear(res);
    PQfinish(pg);
}

/* Ends every connection named app; how many. */
static int terminate(const char *app)
{
    PGconn *pg = PQconnectdb(tt_pg_server_url());
    if (PQstatus(pg) != CONNECTION_OK) {
        PQfinish(pg);
        return 0;
    }
    const char *values[1] = {app};
    PGresult *res = PQexecParams(pg,
                                 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE application_name = $1 AND pid <> pg_backend_pid()",
                                 1, NULL, values, NULL, NULL, 0);
    int n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    PQfinish(pg);
    return n;
}

static bool has_doc(td_store *store, const char *collection, const char *key)
{
    char *json = NULL;
    int error = td_store_doc_get(store, collection, key, &json, NULL);
    td_free(json);
    if (error != 0 && error != TD_ENOTFOUND)
        fail_msg("reading %s/%s: %s", collection, key, td_error_last());
    return error == 0;
}

static int64_t stream_events(td_store *store, const char *stream)
{
    td_read_query q = TD_READ_QUERY_INIT;
    q.stream = stream;
    return tt_count(store, &q);
}

static int64_t commits(td_store *store)
{
    td_writer_stats st;
    assert_td_ok(td_store_writer_stats(store, &st));
    return st.commits;
}

/* ---- reading back what was just written ---------------------------------- */

static int write_then_read(td_txn *txn, void *payload)
{
    (void)payload;
    char *json = NULL;
    int error = td_txn_doc_put(txn, "notes", "a", "{\"n\":1}", 0);
    if (error == 0)
        error = td_txn_doc_put(txn, "notes", "a", "{\"n\":2}", 0);
    td_event e = tt_event("Noted", "{}");
    if (error == 0)
        error = td_txn_append(txn, "note-1", TD_EXPECT_ANY, &e, 1);
    if (error == 0)
        error = td_txn_doc_get(txn, "notes", "a", &json, NULL);
    if (error == 0 && strcmp(json, "{\"n\":2}") != 0)
        error = td_error__set(TD_ERROR, "read back %s", json);
    td_free(json);
    int64_t version = 0;
    if (error == 0)
        error = td_txn_stream_version(txn, "note-1", &version);
    if (error == 0 && version != 1)
        error = td_error__set(TD_ERROR, "stream at version %lld", (long long)version);
    return error;
}

static void test_a_unit_reads_what_it_wrote(void **state)
{
    (void)state;
    char app[64];
    char *url = store_url("readback", app, sizeof app);
    td_store *store = tt_open(url);
    assert_td_ok(td_transact(store, write_then_read, NULL));
    char *json = NULL;
    assert_td_ok(td_store_doc_get(store, "notes", "a", &json, NULL));
    assert_string_equal(json, "{\"n\":2}");
    td_free(json);
    assert_int_equal(stream_events(store, "note-1"), 1);
    td_store_free(store);
    free(url);
}

/* ---- units of one batch ------------------------------------------------------- */

typedef struct batch_unit {
    td_store *store;
    const char *app;
    int index;
    bool poison;       /* writes the document the trigger refuses */
    bool events_only;  /* appends only: no documents */
    bool poison_event; /* appends an event the trigger refuses */
    bool cut;          /* has the server end the store's connections */
    bool first;        /* waits for the others before it ends */
    atomic_int *submitted;
    int result;
    char message[256];
} batch_unit;

static int batch_unit_fn(td_txn *txn, void *payload)
{
    batch_unit *u = payload;
    char key[32], stream[32];
    snprintf(key, sizeof key, "u%d", u->index);
    snprintf(stream, sizeof stream, "unit-%d", u->index);
    int error = u->events_only ? 0 : td_txn_doc_put(txn, "units", key, "{\"done\":true}", 0);
    td_event e = tt_event(u->poison_event ? "Poison" : "UnitRan", "{}");
    if (error == 0)
        error = td_txn_append(txn, stream, TD_EXPECT_ANY, &e, 1);
    if (error == 0 && u->poison)
        error = td_txn_doc_put(txn, "units", "poison", "{}", 0);
    if (error == 0 && !u->events_only)
        error = td_txn_doc_put(txn, "units", key, "{\"done\":true,\"again\":1}", 0);
    if (error == 0 && u->cut && terminate(u->app) < 1)
        error = td_error__set(TD_ERROR, "nothing to terminate");
    if (u->first) /* the others queue behind this unit, to form the next batch */
        for (int i = 0; i < 2000 && atomic_load(u->submitted) < UNITS - 1; i++)
            usleep(1000);
    if (u->first)
        usleep(50 * 1000);
    return error;
}

static void *submit(void *arg)
{
    batch_unit *u = arg;
    if (!u->first)
        atomic_fetch_add(u->submitted, 1);
    u->result = td_transact(u->store, batch_unit_fn, u);
    snprintf(u->message, sizeof u->message, "%s", td_error_last());
    return NULL;
}

/* Runs UNITS units: the first alone, the others meanwhile (the next
 * batch, usually). Returns the commits the writer made. */
static int64_t run_units(batch_unit *units)
{
    pthread_t threads[UNITS];
    atomic_int submitted = 0;
    int64_t before = commits(units[0].store);
    for (int i = 0; i < UNITS; i++) {
        units[i].submitted = &submitted;
        units[i].first = i == 0;
        assert_int_equal(pthread_create(&threads[i], NULL, submit, &units[i]), 0);
        if (i == 0)
            usleep(20 * 1000); /* the first one runs */
    }
    for (int i = 0; i < UNITS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    return commits(units[0].store) - before;
}

/* A unit committed whole or not at all (events_only: its event). */
static bool stored_whole(td_store *store, int index, bool *none, bool events_only)
{
    char key[32], stream[32];
    snprintf(key, sizeof key, "u%d", index);
    snprintf(stream, sizeof stream, "unit-%d", index);
    bool doc = has_doc(store, "units", key);
    int64_t events = stream_events(store, stream);
    *none = !doc && events == 0;
    return (doc || events_only) && events == 1;
}

static void test_a_refused_write_fails_its_unit_alone(void **state)
{
    (void)state;
    char app[64];
    char *url = store_url("refused", app, sizeof app);
    td_store *store = tt_open(url);
    in_schema(url, "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   "BEGIN IF NEW.key = 'poison' THEN RAISE EXCEPTION 'poisoned document' "
                   "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$; "
                   "CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON documents "
                   "FOR EACH ROW EXECUTE FUNCTION refuse_poison()");
    bool shared = false;
    for (int round = 0; round < ROUNDS && !shared; round++) {
        batch_unit units[UNITS];
        memset(units, 0, sizeof units);
        for (int i = 0; i < UNITS; i++)
            units[i] = (batch_unit){.store = store, .app = app, .index = round * UNITS + i};
        units[2].poison = true;
        int64_t made = run_units(units);
        shared = made == 2; /* the first unit's batch, and one for the other four */
        int64_t head = 0;
        for (int i = 0; i < UNITS; i++) {
            bool none = false;
            bool whole = stored_whole(store, units[i].index, &none, false);
            if (i == 2) {
                if (units[i].result != TD_EINVAL || strstr(units[i].message, "poisoned") == NULL)
                    fail_msg("the refused unit returned %d: %s", units[i].result, units[i].message);
                assert_true(none);
            } else {
                if (units[i].result != 0)
                    fail_msg("unit %d returned %d: %s", i, units[i].result, units[i].message);
                assert_true(whole);
            }
        }
        assert_false(has_doc(store, "units", "poison"));
        /* positions stay contiguous: the refused unit took none */
        assert_td_ok(td_store_head(store, &head));
        assert_int_equal(head, (int64_t)(round + 1) * (UNITS - 1));
        td_read_query q = TD_READ_QUERY_INIT;
        assert_int_equal(tt_count(store, &q), head);
    }
    assert_true(shared);
    assert_td_ok(td_store_check(store));
    td_store_free(store);
    free(url);
}

static void test_a_refused_carried_event_fails_its_batch(void **state)
{
    (void)state;
    char app[64];
    char *url = store_url("carried", app, sizeof app);
    td_store *store = tt_open(url);
    in_schema(url, "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   "BEGIN IF NEW.type = 'Poison' THEN RAISE EXCEPTION 'poisoned event' "
                   "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$; "
                   "CREATE TRIGGER refuse_poison BEFORE INSERT ON events "
                   "FOR EACH ROW EXECUTE FUNCTION refuse_poison()");
    bool shared = false;
    for (int round = 0; round < ROUNDS && !shared; round++) {
        batch_unit units[UNITS];
        memset(units, 0, sizeof units);
        for (int i = 0; i < UNITS; i++)
            units[i] = (batch_unit){
                .store = store, .app = app, .index = round * UNITS + i, .events_only = true};
        units[2].poison_event = true;
        int64_t before = 0, head = 0;
        assert_td_ok(td_store_head(store, &before));
        int64_t made = run_units(units);
        shared = made == 1; /* the first unit's batch; the other one failed whole */
        int committed = 0;
        for (int i = 0; i < UNITS; i++) {
            bool none = false;
            bool whole = stored_whole(store, units[i].index, &none, true);
            if (units[i].result == 0 && !whole)
                fail_msg("unit %d committed but is not stored", i);
            if (units[i].result != 0 && !none)
                fail_msg("unit %d failed (%d: %s) but left something", i, units[i].result,
                         units[i].message);
            if (units[i].result != 0 &&
                (units[i].result != TD_EINVAL || strstr(units[i].message, "poisoned") == NULL))
                fail_msg("unit %d returned %d: %s", i, units[i].result, units[i].message);
            committed += units[i].result == 0;
        }
        assert_int_not_equal(units[2].result, 0);
        assert_int_equal(units[0].result, 0); /* a batch of its own */
        if (shared)
            assert_int_equal(committed, 1);
        /* positions stay contiguous, and the store goes on writing */
        assert_td_ok(td_store_head(store, &head));
        assert_int_equal(head, before + committed);
        td_read_query q = TD_READ_QUERY_INIT;
        assert_int_equal(tt_count(store, &q), head);
        td_store_health h;
        td_store_health_get(store, &h);
        assert_int_equal(h.state, TD_STORE_OK);
        assert_int_equal(tt_append(store, "after-1", "Fine", 1), head + 1);
    }
    assert_true(shared);
    in_schema(url, "DROP TRIGGER refuse_poison ON events");
    assert_td_ok(td_store_check(store));
    td_store_free(store);
    free(url);
}

/* ---- a caller's own id -------------------------------------------------------- */

static int append_with_id(td_txn *txn, void *payload)
{
    td_event *e = payload;
    return td_txn_append(txn, "mine-1", TD_EXPECT_ANY, e, 1);
}

typedef struct dup_ctx {
    td_uuid id;
    int dup_error;
} dup_ctx;

static int write_around_a_duplicate(td_txn *txn, void *payload)
{
    dup_ctx *c = payload;
    int error = td_txn_doc_put(txn, "dup", "before", "{}", 0);
    td_event again = tt_event("Mine", "{}");
    again.id = c->id;
    if (error == 0)
        c->dup_error = td_txn_try(txn, append_with_id, &again);
    td_event fresh = tt_event("Fresh", "{}");
    if (error == 0)
        error = td_txn_append(txn, "mine-1", TD_EXPECT_ANY, &fresh, 1);
    if (error == 0)
        error = td_txn_doc_put(txn, "dup", "after", "{}", 0);
    return error;
}

static void test_a_taken_id_is_the_appends_error(void **state)
{
    (void)state;
    char app[64];
    char *url = store_url("dupid", app, sizeof app);
    td_store *store = tt_open(url);
    td_event first = tt_event("Mine", "{}");
    assert_td_ok(td_uuid_v7(&first.id));
    assert_td_ok(td_transact(store, append_with_id, &first));
    dup_ctx c = {.id = first.id};
    assert_td_ok(td_transact(store, write_around_a_duplicate, &c));
    assert_int_equal(c.dup_error, TD_EEXISTS);
    assert_true(has_doc(store, "dup", "before"));
    assert_true(has_doc(store, "dup", "after"));
    assert_int_equal(stream_events(store, "mine-1"), 2);
    td_store_free(store);
    free(url);
}

/* ---- a connection cut with writes in flight ----------------------------------- */

static void test_a_cut_fails_the_units_in_flight_whole(void **state)
{
    (void)state;
    char app[64];
    char *url = store_url("cutflight", app, sizeof app);
    td_store *store = tt_open(url);
    tt_append(store, "before-1", "Placed", 1);
    bool shared = false;
    for (int round = 0; round < ROUNDS && !shared; round++) {
        batch_unit units[UNITS];
        memset(units, 0, sizeof units);
        for (int i = 0; i < UNITS; i++)
            units[i] = (batch_unit){.store = store, .app = app, .index = round * UNITS + i};
        units[3].cut = true;
        int64_t made = run_units(units);
        shared = made == 1; /* the first unit's batch; the other one failed */
        for (int i = 0; i < UNITS; i++) {
            bool none = false;
            bool whole = stored_whole(store, units[i].index, &none, false);
            if (i == 3 && units[i].result != TD_EUNAVAILABLE)
                fail_msg("the cut unit returned %d: %s", units[i].result, units[i].message);
            if (units[i].result == 0 && !whole)
                fail_msg("unit %d committed but is not stored whole", i);
            if (units[i].result != 0 && !none)
                fail_msg("unit %d failed (%d: %s) but left something", i, units[i].result,
                         units[i].message);
            if (units[i].result != 0 && units[i].result != TD_EUNAVAILABLE)
                fail_msg("unit %d returned %d: %s", i, units[i].result, units[i].message);
        }
        /* the next write connects again and succeeds, at the next position */
        int64_t head = 0;
        assert_td_ok(td_store_head(store, &head));
        assert_int_equal(tt_append(store, "before-1", "Again", round + 2), head + 1);
        td_store_health h;
        td_store_health_get(store, &h);
        assert_int_equal(h.state, TD_STORE_OK);
    }
    assert_true(shared);
    assert_td_ok(td_store_check(store));
    td_store_free(store);
    free(url);
}

int main(void)
{
    if (!tt_postgres()) {
        printf("test_pg_pipeline: needs TD_TEST_STORE=postgres; skipped\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_unit_reads_what_it_wrote),
        cmocka_unit_test(test_a_refused_write_fails_its_unit_alone),
        cmocka_unit_test(test_a_refused_carried_event_fails_its_batch),
        cmocka_unit_test(test_a_taken_id_is_the_appends_error),
        cmocka_unit_test(test_a_cut_fails_the_units_in_flight_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
