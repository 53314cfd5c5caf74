/*
 * test_savepoint_rollbacks.c: large units of work whose nested units
 * (td_txn_try) fail and roll back, again and again, as a broker consumer's
 * batch does when some of its messages are stored already.
 *
 * With SQLite 3.40 (Debian 12) and the statement journal kept in memory
 * past SQLite's 64 KiB (SQLITE_CONFIG_STMTJRNL_SPILL, which the store set
 * to 4 MiB for speed until this test), a unit like these failed with
 * SQLITE_FULL, "database or disk is full", on a disk with room to spare:
 * after such rollbacks SQLite asked for a page past the largest possible.
 * The three-service shop met it under load. Backend-independent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define UNITS      12
#define PER_UNIT   300
#define DATA_BYTES 1200

static td_store *store;

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("rollbacks");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    return 0;
}

typedef struct batch {
    unsigned seed;
    int64_t stored, refused;
    td_uuid ids[UNITS * PER_UNIT];
    size_t id_count;
    char data[DATA_BYTES + 64];
} batch;

typedef struct one {
    batch *b;
    td_uuid id;
    int n;
} one;

static int append_one(td_txn *txn, void *payload)
{
    one *o = payload;
    char stream[32], key[32];
    td_event ev;
    td_event_init(&ev);
    ev.id = o->id;
    ev.type = "Received";
    snprintf(stream, sizeof stream, "order-%d", o->n % 500);
    int len = snprintf(o->b->data, sizeof o->b->data, "{\"n\":%d,\"pad\":\"", o->n);
    int pad = 100 + (int)(rand_r(&o->b->seed) % (DATA_BYTES - 200));
    memset(o->b->data + len, 'x', (size_t)pad);
    snprintf(o->b->data + len + pad, sizeof o->b->data - (size_t)(len + pad), "\"}");
    ev.data = o->b->data;
    int error = td_txn_append(txn, stream, TD_EXPECT_ANY, &ev, 1);
    snprintf(key, sizeof key, "k%u", rand_r(&o->b->seed) % 3000);
    if (error == 0) /* what a handler keeps beside it, as the saga does */
        error = td_txn_doc_put(txn, "state", key, o->b->data, 0);
    return error;
}

static int unit(td_txn *txn, void *payload)
{
    batch *b = payload;
    for (int m = 0; m < PER_UNIT; m++) {
        one o = {b, {{0}}, m};
        bool again = b->id_count > 10 && rand_r(&b->seed) % 40 == 0;
        if (again) /* one of the ids stored before: refused, rolled back */
            o.id = b->ids[b->id_count - 1 - rand_r(&b->seed) % 10];
        else
            assert_td_ok(td_uuid_v7(&o.id));
        int error = td_txn_try(txn, append_one, &o);
        if (error == TD_EEXISTS) {
            b->refused++;
            continue;
        }
        if (error < 0)
            return error;
        b->ids[b->id_count++] = o.id;
        b->stored++;
    }
    return 0;
}

static void test_rollbacks_in_large_units(void **state)
{
    (void)state;
    batch *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->seed = 7;
    for (int u = 0; u < UNITS; u++) {
        int error = td_transact(store, unit, b);
        if (error < 0)
            fail_msg("unit %d failed: %s", u, td_error_last());
    }
    assert_true(b->refused > 0);
    int64_t head = 0;
    assert_td_ok(td_store_head(store, &head));
    assert_int_equal(head, b->stored);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rollbacks_in_large_units, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
