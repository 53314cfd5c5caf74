/*
 * test_domain.c: the shop's contexts through their C API, on a real store:
 * every command's happy path and its refusals (checking the error's code and
 * field, and that nothing was written), prices fixed at order time, the
 * order status machine, and that replaying any aggregate's stream through
 * its fold gives its snapshot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shop.h"
#include "shop_int.h"
#include "support.h"

static td_store *store;
static shop *s;

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("shop");
    shop_options opts = {
        .data_dir = tt_fixture_dir(), .passive = true, .master_key = tt_master_key()};
    assert_int_equal(shop_open(&s, store, &opts), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    shop_close(s);
    tt_fixture_free(store);
    return 0;
}

static int64_t events(void)
{
    td_read_query all = TD_READ_QUERY_INIT;
    return tt_count(store, &all);
}

static void check_refusal(const char *expr, int rc, int64_t before, int status, const char *code,
                          const char *field)
{
    shop_error_info e = shop_error();
    bool same_field = field ? e.field && strcmp(e.field, field) == 0 : e.field == NULL;
    if (rc != status || strcmp(e.code, code) != 0 || !same_field)
        fail_msg("%s: got %d %s %s (%s), expected %d %s %s", expr, rc, e.code,
                 e.field ? e.field : "-", e.message, status, code, field ? field : "-");
    assert_int_equal(events(), before); /* nothing written */
}

/* Asserts a refusal with this status, code and field, and no new events. */
#define assert_refused(expr, status, code, field)                                                  \
    do {                                                                                           \
        int64_t before_ = events();                                                                \
        check_refusal(#expr, (expr), before_, status, code, field);                                \
    } while (0)

static void make_product(const char *name, int64_t price, int64_t stock, char *id)
{
    shop_product_input in = {name, price, "USD", NULL, stock};
    assert_int_equal(shop_create_product(s, &in, id), 0);
}

static void test_users(void **state)
{
    (void)state;
    char id[SHOP_ID_LEN + 1], other[SHOP_ID_LEN + 1];
    assert_int_equal(shop_register_user(s, "Ada@Example.com", "Ada Lovelace", NULL, id), 0);
    json_t *user = NULL;
    assert_int_equal(shop_get_user(s, id, &user), 0);
    assert_string_equal(json_string_value(json_object_get(user, "email")), "Ada@Example.com");
    assert_string_equal(json_string_value(json_object_get(user, "full_name")), "Ada Lovelace");
    json_decref(user);
    assert_refused(shop_register_user(s, "ada@example.COM", "Other", NULL, other), TD_EEXISTS,
                   "email_taken", "/email");
    assert_refused(shop_register_user(s, "not-an-email", "X", NULL, other), TD_EINVAL,
                   "validation_failed", "/email");
    assert_refused(shop_register_user(s, "a@b.c", "", NULL, other), TD_EINVAL, "validation_failed",
                   "/full_name");
    assert_refused(shop_register_user(s, "a@b.c", "bad\x01name", NULL, other), TD_EINVAL,
                   "validation_failed", "/full_name");
    assert_refused(shop_register_user(s, "a@b.c", "bad \xc3\x28 utf8", NULL, other), TD_EINVAL,
                   "validation_failed", "/full_name");
    assert_refused(shop_get_user(s, "0190c3a0-1234-7abc-8def-0123456789ab", &user), TD_ENOTFOUND,
                   "not_found", NULL);
    assert_refused(shop_get_user(s, "x", &user), TD_EINVAL, "validation_failed", "/user_id");
}

static void test_catalog_and_stock(void **state)
{
    (void)state;
    char category[SHOP_ID_LEN + 1], product[SHOP_ID_LEN + 1], ignored[SHOP_ID_LEN + 1];
    assert_int_equal(shop_create_category(s, "Books", category), 0);
    shop_product_input in = {"SICP", 4500, "USD", category, 3};
    assert_int_equal(shop_create_product(s, &in, product), 0);
    json_t *p = NULL;
    assert_int_equal(shop_get_product(s, product, &p), 0);
    assert_int_equal(json_integer_value(json_object_get(p, "price")), 4500);
    assert_int_equal(json_integer_value(json_object_get(p, "stock")), 3);
    json_decref(p);
    json_t *categories = NULL;
    assert_int_equal(shop_list_categories(s, &categories), 0);
    assert_int_equal(json_array_size(categories), 1);
    json_decref(categories);

    shop_product_input bad = in;
    bad.category_id = "0190c3a0-1234-7abc-8def-0123456789ab";
    assert_refused(shop_create_product(s, &bad, ignored), TD_ENOTFOUND, "not_found",
                   "/category_id");
    bad = in;
    bad.price = -1;
    assert_refused(shop_create_product(s, &bad, ignored), TD_EINVAL, "validation_failed", "/price");
    bad.price = SHOP_MAX_PRICE + 1;
    assert_refused(shop_create_product(s, &bad, ignored), TD_EINVAL, "validation_failed", "/price");
    bad = in;
    bad.currency = "usd";
    assert_refused(shop_create_product(s, &bad, ignored), TD_EINVAL, "validation_failed",
                   "/currency");

    assert_int_equal(shop_adjust_stock(s, product, 5, "restock"), 0);
    assert_refused(shop_adjust_stock(s, product, -9, "shrinkage"), TD_ECONFLICT,
                   "insufficient_stock", "/quantity_change");
    assert_int_equal(shop_adjust_stock(s, product, -8, "shrinkage"), 0);
    assert_refused(shop_adjust_stock(s, product, 0, "none"), TD_EINVAL, "validation_failed",
                   "/quantity_change");
    assert_refused(shop_adjust_stock(s, "0190c3a0-1234-7abc-8def-0123456789ab", 1, "x"),
                   TD_ENOTFOUND, "not_found", NULL);
    assert_int_equal(shop_change_price(s, product, 3999), 0);
    assert_int_equal(shop_get_product(s, product, &p), 0);
    assert_int_equal(json_integer_value(json_object_get(p, "price")), 3999);
    assert_int_equal(json_integer_value(json_object_get(p, "stock")), 0);
    json_decref(p);
}

static void test_orders(void **state)
{
    (void)state;
    char user[SHOP_ID_LEN + 1], a[SHOP_ID_LEN + 1], b[SHOP_ID_LEN + 1], order[SHOP_ID_LEN + 1];
    assert_int_equal(shop_register_user(s, "bob@example.com", "Bob", NULL, user), 0);
    make_product("Pen", 150, 100, a);
    make_product("Ink", 999, 100, b);
    shop_order_item items[] = {{a, 3}, {b, 2}};
    shop_order_input in = {user,   items,     2, {"1 Main St", "Springfield", "12345", "US"},
                           "card", "tok_visa"};
    assert_int_equal(shop_place_order(s, &in, order), 0);
    assert_int_equal(shop_change_price(s, a, 9999), 0); /* later: the order keeps its price */
    json_t *o = NULL;
    assert_int_equal(shop_get_order(s, order, &o), 0);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "Pending");
    assert_int_equal(json_integer_value(json_object_get(o, "total_amount")), 3 * 150 + 2 * 999);
    json_t *first = json_array_get(json_object_get(o, "items"), 0);
    assert_int_equal(json_integer_value(json_object_get(first, "unit_price")), 150);
    assert_string_equal(json_string_value(json_object_get(o, "currency")), "USD");
    assert_true(json_is_null(json_object_get(o, "cancel_reason")));
    json_decref(o);

    char ignored[SHOP_ID_LEN + 1];
    shop_order_input bad = in;
    bad.user_id = "0190c3a0-1234-7abc-8def-0123456789ab";
    assert_refused(shop_place_order(s, &bad, ignored), TD_ENOTFOUND, "not_found", "/user_id");
    shop_order_item unknown[] = {{a, 1}, {"0190c3a0-1234-7abc-8def-0123456789ab", 1}};
    bad = in;
    bad.items = unknown;
    assert_refused(shop_place_order(s, &bad, ignored), TD_ENOTFOUND, "not_found",
                   "/items/1/product_id");
    shop_order_item zero[] = {{a, 0}};
    bad = in;
    bad.items = zero;
    bad.item_count = 1;
    assert_refused(shop_place_order(s, &bad, ignored), TD_EINVAL, "validation_failed",
                   "/items/0/quantity");
    shop_order_item huge[] = {{a, SHOP_MAX_QUANTITY + 1}};
    bad.items = huge;
    assert_refused(shop_place_order(s, &bad, ignored), TD_EINVAL, "validation_failed",
                   "/items/0/quantity");
    bad = in;
    bad.item_count = 0;
    assert_refused(shop_place_order(s, &bad, ignored), TD_EINVAL, "validation_failed", "/items");
    bad = in;
    bad.shipping_address.city = "";
    assert_refused(shop_place_order(s, &bad, ignored), TD_EINVAL, "validation_failed",
                   "/shipping_address/city");

    /* the status machine */
    assert_refused(shop_ship_order(s, order), TD_ECONFLICT, "illegal_transition", "/status");
    assert_refused(shop_deliver_order(s, order), TD_ECONFLICT, "illegal_transition", "/status");
    assert_int_equal(shop_cancel_order(s, order), 0);
    assert_refused(shop_cancel_order(s, order), TD_ECONFLICT, "illegal_transition", "/status");
    assert_int_equal(shop_get_order(s, order, &o), 0);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "Cancelled");
    assert_string_equal(json_string_value(json_object_get(o, "cancel_reason")),
                        "cancelled_by_customer");
    assert_int_equal(json_array_size(json_object_get(o, "history")), 2);
    json_decref(o);
}

/* ---- replay equals snapshot ---------------------------------------------------------- */

typedef struct fold_ctx {
    shop_fold_fn fold;
    json_t *state;
} fold_ctx;

static int fold_one(const td_event *ev, void *payload)
{
    fold_ctx *c = payload;
    json_t *data = NULL;
    assert_td_ok(td_event_data(&data, ev));
    c->state = c->fold(c->state, ev->type, data);
    json_decref(data);
    return 0;
}

static int check_snapshot(const char *key, const char *json, size_t len, void *payload)
{
    const char *category = ((const char **)payload)[0];
    shop_fold_fn fold = (shop_fold_fn)((void **)payload)[1];
    json_error_t err;
    json_t *doc = json_loadb(json, len, 0, &err);
    char stream[TD_STREAM_MAX + 1];
    snprintf(stream, sizeof stream, "%s-%s", category, key);
    fold_ctx c = {fold, NULL};
    assert_td_ok(td_store_read_stream(store, stream, 1, 0, fold_one, &c));
    if (!json_equal(c.state, json_object_get(doc, "state")))
        fail_msg("replaying %s does not give its snapshot", stream);
    int64_t version = 0;
    assert_td_ok(td_store_stream_version(store, stream, &version));
    assert_int_equal(json_integer_value(json_object_get(doc, "version")), version);
    json_decref(c.state);
    json_decref(doc);
    ++*(int *)((void **)payload)[2];
    return 0;
}

static void test_replay_gives_the_snapshot(void **state)
{
    test_users(state);
    test_catalog_and_stock(state);
    test_orders(state);
    static const struct {
        const char *category;
        shop_fold_fn fold;
    } kinds[] = {{"user", user_fold},
                 {"category", category_fold},
                 {"product", product_fold},
                 {"inventory", inventory_fold},
                 {"order", order_fold}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char collection[64];
        int checked = 0;
        void *payload[3] = {(void *)kinds[i].category, (void *)kinds[i].fold, &checked};
        snprintf(collection, sizeof collection, "snap_%s", kinds[i].category);
        assert_td_ok(td_store_doc_list(store, collection, NULL, 0, check_snapshot, payload));
        assert_true(checked > 0);
    }
}

/* ---- the unit guard ------------------------------------------------------------------ */

static int guard_writes(td_txn *txn, void *payload, const char *created, const char **code,
                        char *message, size_t size)
{
    char body[96];
    (void)code;
    (void)message;
    (void)size;
    snprintf(body, sizeof body, "{\"created\":\"%s\"}", created ? created : "");
    return td_txn_doc_put(txn, "guarded", payload, body, 0);
}

static int guard_refuses(td_txn *txn, void *payload, const char *created, const char **code,
                         char *message, size_t size)
{
    (void)txn;
    (void)payload;
    (void)created;
    *code = "request_in_progress";
    snprintf(message, size, "refused by the guard");
    return TD_ECONFLICT;
}

/* Whether the guard wrote under key, and what it was told was created. */
static bool guarded(const char *key, char created[SHOP_ID_LEN + 1])
{
    char *text = NULL;
    int error = td_store_doc_get(store, "guarded", key, &text, NULL);
    json_t *doc = error == 0 ? json_loads(text, 0, NULL) : NULL;
    snprintf(created, SHOP_ID_LEN + 1, "%s",
             json_string_value(json_object_get(doc, "created"))
                 ? json_string_value(json_object_get(doc, "created"))
                 : "");
    json_decref(doc);
    td_free(text);
    return error == 0;
}

/* What a command's guard writes commits with the command; a guard that
 * refuses fails the command, which then writes nothing. */
static void test_unit_guard(void **state)
{
    (void)state;
    char id[SHOP_ID_LEN + 1], created[SHOP_ID_LEN + 1];
    shop_set_unit_guard(guard_writes, "with-the-command");
    assert_int_equal(shop_create_category(s, "Guarded", id), 0);
    shop_set_unit_guard(NULL, NULL);
    assert_true(guarded("with-the-command", created));
    assert_string_equal(created, id); /* the guard learns what the command created */

    shop_set_unit_guard(guard_refuses, NULL);
    assert_refused(shop_create_category(s, "Refused", id), TD_ECONFLICT, "request_in_progress",
                   NULL);
    assert_string_equal(shop_error().message, "refused by the guard");
    shop_set_unit_guard(guard_writes, "failed-command");
    assert_refused(shop_create_category(s, "", id), TD_EINVAL, "validation_failed", "/name");
    shop_set_unit_guard(NULL, NULL);
    assert_false(guarded("failed-command", created)); /* the command failed: no guard */
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_users),      T(test_catalog_and_stock),
        T(test_orders),     T(test_replay_gives_the_snapshot),
        T(test_unit_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
