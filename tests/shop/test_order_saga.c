/*
 * test_order_saga.c: the order-processing saga end to end through the C
 * API, with the real subscriptions running on a real store: the happy path,
 * out of stock, declined, timeout, a flaky provider, customer cancels before
 * and after payment, shipping, and 200 concurrent orders for 50 units. Every
 * order must get exactly one order_received and one final e-mail; a replay
 * of the notifications mails again only when it forces effects.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shop.h"
#include "support.h"

static td_store *store;
static shop *s;
static char mail_dir[4096];

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("saga");
    snprintf(mail_dir, sizeof mail_dir, "%.2000s/mail/spool.mbox", tt_fixture_dir());
    shop_options opts = {.data_dir = tt_fixture_dir(),
                         .payment_timeout_ms = 400,
                         .lanes = 2,
                         .deferred = getenv("SHOP_TEST_DEFERRED") != NULL,
                         .master_key = tt_master_key()};
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

static void user(char *id)
{
    static int n;
    char email[64];
    snprintf(email, sizeof email, "user%d@example.com", n++);
    assert_int_equal(shop_register_user(s, email, "Grace Hopper", NULL, id), 0);
}

static void product(int64_t stock, char *id)
{
    shop_product_input in = {"Widget", 1250, "USD", NULL, stock};
    assert_int_equal(shop_create_product(s, &in, id), 0);
}

static void place(const char *user_id, const char *product_id, int64_t quantity, const char *token,
                  char *order)
{
    shop_order_item items[] = {{product_id, quantity}};
    shop_order_input in = {user_id, items, 1, {"1 Main St", "Springfield", "12345", "US"},
                           "card",  token};
    assert_int_equal(shop_place_order(s, &in, order), 0);
}

static json_t *order_of(const char *order)
{
    json_t *o = NULL;
    assert_int_equal(shop_get_order(s, order, &o), 0);
    return o;
}

static const char *status_of(json_t *o)
{
    return json_string_value(json_object_get(o, "status"));
}

/* Waits until the order leaves `from` (default: Pending); returns it. */
static json_t *wait_until_not(const char *order, const char *from)
{
    for (int i = 0; i < 2000; i++) {
        json_t *o = order_of(order);
        if (strcmp(status_of(o), from) != 0)
            return o;
        json_decref(o);
        usleep(5000);
    }
    fail_msg("order %s stayed %s", order, from);
    return NULL;
}

static void expect_final(const char *order, const char *status, const char *reason)
{
    json_t *o = wait_until_not(order, "Pending");
    assert_string_equal(status_of(o), status);
    json_t *r = json_object_get(o, "cancel_reason");
    if (reason)
        assert_string_equal(json_string_value(r), reason);
    else
        assert_true(json_is_null(r));
    json_decref(o);
}

static int64_t stock_of(const char *product_id)
{
    json_t *p = NULL;
    assert_int_equal(shop_get_product(s, product_id, &p), 0);
    int64_t n = json_integer_value(json_object_get(p, "stock"));
    json_decref(p);
    return n;
}

static int64_t count(const char *type, const char *stream)
{
    td_read_query q = TD_READ_QUERY_INIT;
    q.type = type;
    q.stream = stream;
    return tt_count(store, &q);
}

static void wait_count(const char *type, const char *stream, int64_t n)
{
    for (int i = 0; i < 2000 && count(type, stream) < n; i++)
        usleep(5000);
    assert_int_equal(count(type, stream), n);
}

/* E-mails in the spool for order of kind (NULL: any kind). */
static int mails(const char *order, const char *kind)
{
    char mine[128], of_kind[128];
    snprintf(mine, sizeof mine, "\nX-Order-Id: %.100s\n", order); /* an id: 36 */
    snprintf(of_kind, sizeof of_kind, "\nX-Email-Kind: %.100s\n", kind ? kind : "");
    const char *needles[] = {mine, kind ? of_kind : NULL, NULL};
    return tt_mbox_count(mail_dir, needles);
}

static void wait_mails(const char *order, const char *kind, int n)
{
    for (int i = 0; i < 2000 && mails(order, kind) < n; i++)
        usleep(5000);
    assert_int_equal(mails(order, kind), n);
}

/* Waits until the read model says units were sold of product. */
static void wait_sales(const char *product_id, int64_t units, int64_t revenue)
{
    int64_t u = -1, r = -1;
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(shop_product_sales(s, product_id, &u, &r), 0);
        if (u == units && r == revenue)
            return;
        usleep(5000);
    }
    fail_msg("sales %lld/%lld, expected %lld/%lld", (long long)u, (long long)r, (long long)units,
             (long long)revenue);
}

static int64_t stock_level(const char *product_id)
{
    char *text = NULL;
    json_error_t err;
    if (td_store_doc_get(store, "stock_levels", product_id, &text, NULL) < 0)
        return -1;
    json_t *doc = json_loads(text, 0, &err);
    int64_t n = json_integer_value(json_object_get(doc, "available"));
    json_decref(doc);
    td_free(text);
    return n;
}

static void payment_stream(char *buf, const char *order)
{
    snprintf(buf, 64, "payment-%s", order);
}

/* ---- the outcomes ------------------------------------------------------------ */

static void test_happy_path_ship_and_deliver(void **state)
{
    (void)state;
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1], pay[64];
    user(u);
    product(10, p);
    place(u, p, 2, "tok_visa", o);
    expect_final(o, "Processing", NULL);
    assert_int_equal(stock_of(p), 8);
    payment_stream(pay, o);
    assert_int_equal(count("PaymentProcessed", pay), 1);
    wait_mails(o, "order_received", 1);
    wait_mails(o, "order_confirmed", 1);
    wait_count("OrderConfirmationEmail", NULL, 1);
    assert_int_equal(shop_ship_order(s, o), 0);
    assert_int_equal(shop_deliver_order(s, o), 0);
    json_t *done = order_of(o);
    assert_string_equal(status_of(done), "Delivered");
    assert_int_equal(json_array_size(json_object_get(done, "history")), 4);
    json_decref(done);
    assert_int_equal(shop_cancel_order(s, o), TD_ECONFLICT); /* too late */
    assert_string_equal(shop_error().code, "illegal_transition");
}

static int last_data(const td_event *ev, void *payload)
{
    json_error_t err;
    json_decref(*(json_t **)payload);
    *(json_t **)payload =
        json_loadb(ev->data, ev->data_len ? ev->data_len : strlen(ev->data), 0, &err);
    return 0;
}

static const char *user_order_status(const char *user_id, json_t **list)
{
    json_decref(*list);
    *list = NULL;
    assert_int_equal(shop_list_user_orders(s, user_id, list), 0);
    json_t *first = json_array_get(json_object_get(*list, "orders"), 0);
    return json_string_value(json_object_get(first, "status"));
}

/* A status change names the order's user, so the read models need not read
 * the order; one written before it did (no user_id) still reaches the
 * user's list, through the order. */
static void test_user_orders_with_and_without_user_in_the_event(void **state)
{
    (void)state;
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1], stream[80], data[256];
    user(u);
    product(10, p);
    place(u, p, 1, "tok_visa", o);
    expect_final(o, "Processing", NULL);
    snprintf(stream, sizeof stream, "order-%s", o);
    json_t *changed = NULL;
    assert_td_ok(td_store_read_stream(store, stream, 2, 0, last_data, &changed));
    assert_string_equal(json_string_value(json_object_get(changed, "to_status")), "Processing");
    assert_string_equal(json_string_value(json_object_get(changed, "user_id")), u);
    json_decref(changed);
    /* an older writer's event: no user_id */
    snprintf(data, sizeof data,
             "{\"order_id\":\"%s\",\"from_status\":\"Processing\",\"to_status\":\"Shipped\","
             "\"changed_at\":\"2026-01-01T00:00:00Z\"}",
             o);
    td_event ev = tt_event("OrderStatusChanged", data);
    ev.source = "orders";
    assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1));
    json_t *list = NULL;
    const char *status = NULL;
    for (int i = 0; i < 2000; i++) {
        status = user_order_status(u, &list);
        if (status && strcmp(status, "Shipped") == 0)
            break;
        usleep(5000);
    }
    assert_string_equal(status, "Shipped");
    json_decref(list);
}

static int count_replays(const char *id, const char *name, int64_t next, int64_t to, void *n)
{
    (void)id;
    (void)name;
    (void)next;
    (void)to;
    ++*(int *)n;
    return 0;
}

/* Asks a subscription to replay everything and waits until it is done. */
static void replay(const char *subscription, bool force)
{
    td_replay_request r = {subscription, 1, 0, NULL, NULL, force, "test"};
    int pending = 1;
    assert_td_ok(td_replay_request_add(store, &r, NULL));
    for (int i = 0; i < 2000 && pending > 0; i++) {
        pending = 0;
        assert_td_ok(td_replay_list(store, count_replays, &pending));
        usleep(5000);
    }
    assert_int_equal(pending, 0);
}

static void test_replayed_notifications_mail_again_only_when_forced(void **state)
{
    (void)state;
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1];
    user(u);
    product(10, p);
    place(u, p, 1, "tok_visa", o);
    expect_final(o, "Processing", NULL);
    wait_mails(o, "order_confirmed", 1);
    wait_count("OrderConfirmationEmail", NULL, 1);
    replay("notifications", false); /* the inbox and the Maildir names keep it once */
    assert_int_equal(mails(o, "order_received"), 1);
    assert_int_equal(mails(o, "order_confirmed"), 1);
    assert_int_equal(count("OrderConfirmationEmail", NULL), 1);
    replay("notifications", true); /* an operator asks for the e-mails again */
    wait_mails(o, "order_received", 2);
    wait_mails(o, "order_confirmed", 2);
    wait_count("OrderConfirmationEmail", NULL, 2);
}

/* A read model counts each event once even when it is replayed, forced or
 * not: a replay cannot tell what it counted already (rebuild instead). */
static void test_read_models_ignore_replays(void **state)
{
    (void)state;
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1];
    user(u);
    product(10, p);
    place(u, p, 3, "tok_visa", o);
    expect_final(o, "Processing", NULL);
    wait_sales(p, 3, 3 * 1250);
    for (int force = 0; force <= 1; force++) {
        replay("readmodel.product_sales", force);
        replay("readmodel.stock_levels", force);
        wait_sales(p, 3, 3 * 1250);
        assert_int_equal(stock_level(p), 7);
    }
}

static void test_out_of_stock(void **state)
{
    (void)state;
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1];
    user(u);
    product(1, p);
    place(u, p, 2, "tok_visa", o);
    expect_final(o, "Cancelled", "out_of_stock");
    assert_int_equal(stock_of(p), 1);
    wait_mails(o, "order_cancelled", 1);
    assert_int_equal(count("ProcessPayment", NULL), 0);
}

static void test_declined_releases_stock(void **state)
{
    (void)state;
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1];
    user(u);
    product(5, p);
    place(u, p, 3, "tok_decline", o);
    expect_final(o, "Cancelled", "payment_declined");
    wait_count("InventoryReleased", NULL, 1);
    assert_int_equal(stock_of(p), 5);
    wait_mails(o, "order_cancelled", 1);
}

static void test_timeout_releases_stock(void **state)
{
    (void)state;
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1];
    user(u);
    product(5, p);
    place(u, p, 1, "tok_timeout", o);
    expect_final(o, "Cancelled", "payment_timeout");
    wait_count("InventoryReleased", NULL, 1);
    assert_int_equal(stock_of(p), 5);
}

/* A payment that succeeds after its deadline cancelled the order is
 * refunded; the order stays cancelled and the stock released. */
static void test_late_payment_is_refunded(void **state)
{
    (void)state;
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1], pay[64];
    user(u);
    product(5, p);
    place(u, p, 2, "tok_slow", o); /* approves after 1 s; the deadline is 400 ms */
    expect_final(o, "Cancelled", "payment_timeout");
    wait_count("InventoryReleased", NULL, 1);
    payment_stream(pay, o);
    wait_count("PaymentRefunded", pay, 1);
    assert_int_equal(count("PaymentProcessed", pay), 1);
    assert_int_equal(count("RefundPayment", pay), 1);
    json_t *after = order_of(o);
    assert_string_equal(status_of(after), "Cancelled");
    json_decref(after);
    assert_int_equal(stock_of(p), 5);
    wait_sales(p, 0, 0); /* never a sale */
    char *saga = NULL;
    assert_int_equal(td_saga_get(store, "order_processing", o, &saga), 0);
    assert_non_null(strstr(saga, "\"state\":\"cancelled\""));
    td_free(saga);
}

static void test_flaky_provider_succeeds_once(void **state)
{
    (void)state;
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1], pay[64];
    user(u);
    product(5, p);
    place(u, p, 1, "tok_flaky", o);
    expect_final(o, "Processing", NULL);
    payment_stream(pay, o);
    assert_int_equal(count("PaymentProcessed", pay), 1);
}

static void test_customer_cancels_before_payment(void **state)
{
    (void)state;
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1];
    user(u);
    product(5, p);
    place(u, p, 2, "tok_timeout", o); /* the payment never answers: still Pending */
    wait_count("ProcessPayment", NULL, 1);
    assert_int_equal(shop_cancel_order(s, o), 0);
    expect_final(o, "Cancelled", "cancelled_by_customer");
    wait_count("InventoryReleased", NULL, 1);
    assert_int_equal(stock_of(p), 5);
    usleep(600000); /* past the payment deadline: nothing more may happen */
    assert_int_equal(count("RefundPayment", NULL), 0);
    assert_int_equal(count("InventoryReleased", NULL), 1);
    wait_mails(o, "order_cancelled", 1);
}

static void test_customer_cancels_after_payment(void **state)
{
    (void)state;
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1], o[SHOP_ID_LEN + 1];
    user(u);
    product(5, p);
    place(u, p, 2, "tok_visa", o);
    expect_final(o, "Processing", NULL);
    wait_sales(p, 2, 2 * 1250);
    assert_int_equal(shop_cancel_order(s, o), 0);
    expect_final(o, "Cancelled", "cancelled_by_customer");
    wait_sales(p, 0, 0); /* a refunded order is not a sale */
    wait_count("PaymentRefunded", NULL, 1);
    wait_count("InventoryReleased", NULL, 1);
    assert_int_equal(stock_of(p), 5);
    char *saga = NULL;
    assert_int_equal(td_saga_get(store, "order_processing", o, &saga), 0);
    assert_non_null(strstr(saga, "\"state\":\"cancelled\""));
    td_free(saga);
}

/* ---- the race for the last units ----------------------------------------------------- */

#define CLIENTS 8
#define ORDERS  200
#define UNITS   50

typedef struct client {
    const char *user, *product;
    char (*orders)[SHOP_ID_LEN + 1];
    int from, to;
} client;

static void *order_many(void *arg)
{
    client *c = arg;
    for (int i = c->from; i < c->to; i++) {
        shop_order_item items[] = {{c->product, 1}};
        shop_order_input in = {c->user, items,     1, {"1 Main St", "Springfield", "12345", "US"},
                               "card",  "tok_visa"};
        if (shop_place_order(s, &in, c->orders[i]) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_two_hundred_orders_for_fifty_units(void **state)
{
    (void)state;
    static char orders[ORDERS][SHOP_ID_LEN + 1];
    char u[SHOP_ID_LEN + 1], p[SHOP_ID_LEN + 1];
    pthread_t threads[CLIENTS];
    client clients[CLIENTS];
    user(u);
    product(UNITS, p);
    for (int t = 0; t < CLIENTS; t++) {
        clients[t] = (client){u, p, orders, t * ORDERS / CLIENTS, (t + 1) * ORDERS / CLIENTS};
        pthread_create(&threads[t], NULL, order_many, &clients[t]);
    }
    for (int t = 0; t < CLIENTS; t++) {
        void *rc = NULL;
        pthread_join(threads[t], &rc);
        assert_null(rc);
    }
    int processing = 0, cancelled = 0;
    for (int i = 0; i < ORDERS; i++) {
        json_t *o = wait_until_not(orders[i], "Pending");
        processing += strcmp(status_of(o), "Processing") == 0;
        cancelled += strcmp(status_of(o), "Cancelled") == 0;
        json_decref(o);
    }
    assert_int_equal(processing, UNITS); /* exactly the stock, never more */
    assert_int_equal(cancelled, ORDERS - UNITS);
    assert_int_equal(stock_of(p), 0);
    wait_sales(p, UNITS, UNITS * 1250);
    for (int i = 0; i < 2000 && stock_level(p) != 0; i++)
        usleep(5000);
    assert_int_equal(stock_level(p), 0);
    json_t *mine = NULL;
    int pending = 1;
    for (int i = 0; i < 2000 && pending; i++) {
        json_decref(mine);
        assert_int_equal(shop_list_user_orders(s, u, &mine), 0);
        json_t *list = json_object_get(mine, "orders");
        pending = json_array_size(list) != ORDERS;
        for (size_t k = 0; !pending && k < json_array_size(list); k++)
            pending = strcmp(json_string_value(json_object_get(json_array_get(list, k), "status")),
                             "Pending") == 0;
        if (pending)
            usleep(5000);
    }
    assert_false(pending); /* the read model caught up: 200 orders, all final */
    json_decref(mine);
    for (int i = 0; i < ORDERS; i++) {
        wait_mails(orders[i], "order_received", 1);
        wait_mails(orders[i], NULL, 2); /* and exactly one final e-mail */
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_happy_path_ship_and_deliver),
        T(test_user_orders_with_and_without_user_in_the_event),
        T(test_out_of_stock),
        T(test_declined_releases_stock),
        T(test_timeout_releases_stock),
        T(test_late_payment_is_refunded),
        T(test_flaky_provider_succeeds_once),
        T(test_customer_cancels_before_payment),
        T(test_customer_cancels_after_payment),
        T(test_two_hundred_orders_for_fifty_units),
        T(test_replayed_notifications_mail_again_only_when_forced),
        T(test_read_models_ignore_replays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
