/*
 * test_documents.c: JSON documents (collection, key) in units of work and
 * outside them; backend-independent.
 */
#include <stdlib.h>
#include <string.h>

#include "support.h"

static td_store *store;

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("docs");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    return 0;
}

typedef struct doc_op {
    const char *collection, *key, *json;
    int result;
} doc_op;

static int unit_put(td_txn *txn, void *payload)
{
    doc_op *op = payload;
    return op->result = td_txn_doc_put(txn, op->collection, op->key, op->json, 0);
}

static int unit_delete(td_txn *txn, void *payload)
{
    doc_op *op = payload;
    return op->result = td_txn_doc_delete(txn, op->collection, op->key);
}

static int put(const char *collection, const char *key, const char *json)
{
    doc_op op = {collection, key, json, 0};
    return td_transact(store, unit_put, &op);
}

static void expect_doc(const char *collection, const char *key, const char *json)
{
    char *got = NULL;
    size_t len = 0;
    assert_td_ok(td_store_doc_get(store, collection, key, &got, &len));
    assert_string_equal(got, json);
    assert_int_equal(len, strlen(json));
    td_free(got);
}

static void test_put_get_replace_delete(void **state)
{
    (void)state;
    assert_td_ok(put("orders", "o1", "{\"status\":\"Pending\"}"));
    expect_doc("orders", "o1", "{\"status\":\"Pending\"}");
    assert_td_ok(put("orders", "o1", "{\"status\":\"Shipped\"}"));
    expect_doc("orders", "o1", "{\"status\":\"Shipped\"}");
    doc_op op = {"orders", "o1", NULL, 0};
    assert_td_ok(td_transact(store, unit_delete, &op));
    char *got = NULL;
    assert_td_code(td_store_doc_get(store, "orders", "o1", &got, NULL), TD_ENOTFOUND);
    assert_null(got);
    assert_td_code(td_transact(store, unit_delete, &op), TD_ENOTFOUND);
}

static void test_bad_documents_are_refused(void **state)
{
    (void)state;
    assert_td_code(put("orders", "o1", "[1]"), TD_EINVAL);
    assert_td_code(put("orders", "o1", "{bad"), TD_EINVAL);
    assert_td_code(put("or ders", "o1", "{}"), TD_EINVAL);
    assert_td_code(put("orders", "", "{}"), TD_EINVAL);
    assert_td_code(put("orders", "line\nbreak", "{}"), TD_EINVAL);
    assert_td_code(put("orders", "o1", NULL), TD_EINVAL);
    char key[514];
    memset(key, 'k', 513);
    key[513] = '\0';
    assert_td_code(put("orders", key, "{}"), TD_EINVAL);
    char *got = NULL;
    assert_td_code(td_store_doc_get(store, "orders", "o1", &got, NULL), TD_ENOTFOUND);
}

typedef struct listing {
    char keys[16][32];
    int count;
} listing;

static int list_one(const char *key, const char *json, size_t len, void *payload)
{
    listing *l = payload;
    (void)json;
    assert_true(len > 0);
    snprintf(l->keys[l->count++], 32, "%s", key);
    return 0;
}

static void test_list_in_key_order_with_paging(void **state)
{
    (void)state;
    const char *keys[] = {"c", "a", "e", "b", "d"};
    for (int i = 0; i < 5; i++)
        assert_td_ok(put("items", keys[i], "{}"));
    assert_td_ok(put("other", "a", "{}"));
    listing l = {0};
    assert_td_ok(td_store_doc_list(store, "items", NULL, 0, list_one, &l));
    assert_int_equal(l.count, 5);
    assert_string_equal(l.keys[0], "a");
    assert_string_equal(l.keys[4], "e");
    memset(&l, 0, sizeof l);
    assert_td_ok(td_store_doc_list(store, "items", "b", 2, list_one, &l));
    assert_int_equal(l.count, 2);
    assert_string_equal(l.keys[0], "c");
    assert_string_equal(l.keys[1], "d");
}

static int unit_event_and_doc(td_txn *txn, void *payload)
{
    int fail = *(int *)payload;
    td_event ev = tt_event("OrderCreated", "{}");
    int rc = td_txn_append(txn, "order-1", TD_EXPECT_ANY, &ev, 1);
    if (rc == 0)
        rc = td_txn_doc_put(txn, "orders", "1", "{\"v\":1}", 0);
    char *back = NULL;
    if (rc == 0 && (rc = td_txn_doc_get(txn, "orders", "1", &back, NULL)) == 0) {
        assert_string_equal(back, "{\"v\":1}"); /* a unit reads its own writes */
        td_free(back);
    }
    return fail ? TD_EINVAL : rc;
}

static void test_documents_commit_with_events(void **state)
{
    (void)state;
    int fail = 1;
    td_read_query all = TD_READ_QUERY_INIT;
    char *got = NULL;
    assert_td_code(td_transact(store, unit_event_and_doc, &fail), TD_EINVAL);
    assert_int_equal(tt_count(store, &all), 0);
    assert_td_code(td_store_doc_get(store, "orders", "1", &got, NULL), TD_ENOTFOUND);
    fail = 0;
    assert_td_ok(td_transact(store, unit_event_and_doc, &fail));
    assert_int_equal(tt_count(store, &all), 1);
    expect_doc("orders", "1", "{\"v\":1}");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_put_get_replace_delete),
        T(test_bad_documents_are_refused),
        T(test_list_in_key_order_with_paging),
        T(test_documents_commit_with_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
