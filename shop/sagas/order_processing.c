/*
 * order_processing.c: the order-processing saga of RFC-002 section 3, as a
 * table for the saga engine. Correlated by order_id.
 *
 *  OrderCreated ─▶ reserving ── ReserveInventory
 *  OrderCreated without items ─▶ cancelled (no_items): a schema-1 order
 *                                 upcast, whose lines were never recorded
 *  reserving  ─StockReserved─▶ paying ── ProcessPayment, deadline;
 *                                        compensation: release_inventory
 *  reserving  ─StockNotReserved─▶ cancelled (out_of_stock)
 *  paying     ─PaymentProcessed ok─▶ processing ── order Processing;
 *                                        compensation: refund_payment
 *  paying     ─PaymentProcessed declined─▶ cancelled (payment_declined) ┐ compensations
 *  paying     ─DeadlineExpired─▶ awaiting_late_payment (payment_timeout)┘ run first
 *  processing ─OrderStatusChanged Shipped─▶ completed
 *
 * A payment may still answer after its deadline cancelled the order. For
 * LATE_PAYMENT_FACTOR times the payment timeout the saga waits for that:
 *  awaiting_late_payment ─PaymentProcessed ok─▶ cancelled ── RefundPayment
 *  awaiting_late_payment ─PaymentProcessed declined / DeadlineExpired─▶ cancelled
 *
 * A customer's cancel (OrderStatusChanged to Cancelled, cancelled_by_customer)
 * can overtake the replies the saga waits for, so it has states of its own:
 *  reserving  ─cancel─▶ cancelling_reservation: StockReserved ─▶ release, cancelled
 *                                               StockNotReserved ─▶ cancelled
 *  paying     ─cancel─▶ cancelling_payment (release now): paid ─▶ refund, cancelled
 *                                               declined ─▶ cancelled
 *                                               deadline ─▶ awaiting_late_payment
 *  processing ─cancel─▶ cancelled (refund, release)
 *
 * Order status changes the saga makes itself tolerate an order the customer
 * cancelled meanwhile: that cancel is on its way to the saga and decides.
 */
#include <stdio.h>
#include <string.h>

#include "shop_int.h"

/* ---- guards ----------------------------------------------------------------- */

static bool field_is(json_t *data, const char *key, const char *value)
{
    const char *v = json_string_value(json_object_get(data, key));
    return v && strcmp(v, value) == 0;
}

static bool paid(const td_event *ev, json_t *data, void *payload)
{
    (void)ev;
    (void)payload;
    return json_is_true(json_object_get(data, "is_successful"));
}

static bool declined(const td_event *ev, json_t *data, void *payload)
{
    return !paid(ev, data, payload);
}

static bool without_items(const td_event *ev, json_t *data, void *payload)
{
    (void)ev;
    (void)payload;
    return json_array_size(json_object_get(data, "items")) == 0;
}

static bool customer_cancel(const td_event *ev, json_t *data, void *payload)
{
    (void)ev;
    (void)payload;
    return field_is(data, "to_status", "Cancelled") &&
           field_is(data, "reason", "cancelled_by_customer");
}

static bool shipped(const td_event *ev, json_t *data, void *payload)
{
    (void)ev;
    (void)payload;
    return field_is(data, "to_status", "Shipped");
}

/* ---- actions ----------------------------------------------------------------------- */

static int command(td_saga_ctx *ctx, const char *category, const char *type, json_t *data)
{
    char stream[TD_STREAM_MAX + 1], *text = NULL;
    td_event ev;
    snprintf(stream, sizeof stream, "%s-%s", category, td_saga_correlation_id(ctx));
    int error = shop_event(&ev, &text, type, "orders", TD_KIND_INTEGRATION, data);
    if (error == 0)
        error = td_saga_publish(ctx, stream, TD_EXPECT_ANY, &ev, 1);
    free(text);
    return error;
}

/* Sets the order's status; an order already cancelled by its customer is
 * left alone (that cancel reaches the saga next and decides). */
static int set_status(td_saga_ctx *ctx, const char *to, const char *reason)
{
    shop_cmd cmd = {0};
    int error =
        order_change_status(td_saga_txn(ctx), &cmd, td_saga_correlation_id(ctx), to, reason);
    return error == TD_ECONFLICT && cmd.code && strcmp(cmd.code, "illegal_transition") == 0 ? 0
                                                                                            : error;
}

static int start(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)payload;
    (void)ev;
    json_t *data = td_saga_event_data(ctx), *saga = td_saga_data(ctx);
    static const char *const keep[] = {"user_id",  "items",          "total_amount",
                                       "currency", "payment_method", "payment_method_id"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        json_object_set(saga, keep[i], json_object_get(data, keep[i]));
    return command(ctx, "reservation", "ReserveInventory",
                   json_pack("{s:s,s:O}", "order_id", td_saga_correlation_id(ctx), "items",
                             json_object_get(saga, "items")));
}

static int no_items(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    return set_status(ctx, "Cancelled", "no_items");
}

/* A saga started before card tokens left the log holds its order's token:
 * it moves into a sealed payment-method document like a new order's. */
static int move_legacy_token(td_saga_ctx *ctx, shop *s, json_t *saga)
{
    static const char *const secret[] = {"token", NULL};
    char id[SHOP_ID_LEN + 1], subject[SHOP_SUBJECT_LEN + 1];
    const char *user = json_string_value(json_object_get(saga, "user_id"));
    json_t *doc = json_pack("{s:s,s:O,s:O}", "order_id", td_saga_correlation_id(ctx), "method",
                            json_object_get(saga, "payment_method"), "token",
                            json_object_get(saga, "payment_token"));
    int error = doc && user ? shop_new_id(id) : TD_ENOMEM;
    shop_user_subject(subject, user ? user : "");
    if (error == 0 && (error = td_keyring_seal(s->keyring, td_saga_txn(ctx), subject, doc, secret,
                                               TD_SEAL_CREATE_KEY)) == 0)
        error = td_txn_doc_put_json(td_saga_txn(ctx), SHOP_PAYMENT_METHODS, id, doc);
    json_decref(doc);
    json_object_del(saga, "payment_token");
    if (error >= 0 && json_object_set_new(saga, "payment_method_id",
                                          error == 0 ? json_string(id) : json_null()) < 0)
        error = TD_ENOMEM;
    return error < 0 ? error : 0; /* forgotten (1): no method, the payment is declined */
}

static int pay(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    shop *s = payload;
    json_t *saga = td_saga_data(ctx);
    (void)ev;
    int error = json_object_get(saga, "payment_token") ? move_legacy_token(ctx, s, saga) : 0;
    if (error == 0)
        error = command(ctx, "payment", "ProcessPayment",
                        json_pack("{s:s,s:O,s:O,s:O,s:O?}", "order_id", td_saga_correlation_id(ctx),
                                  "amount", json_object_get(saga, "total_amount"), "currency",
                                  json_object_get(saga, "currency"), "method",
                                  json_object_get(saga, "payment_method"), "payment_method_id",
                                  json_object_get(saga, "payment_method_id")));
    return error < 0 ? error
                     : td_saga_set_deadline(ctx, td_time_now() +
                                                     (td_time)s->opts.payment_timeout_ms * 1000);
}

static int release_inventory(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    return command(ctx, "reservation", "ReleaseInventory",
                   json_pack("{s:s,s:O}", "order_id", td_saga_correlation_id(ctx), "items",
                             json_object_get(td_saga_data(ctx), "items")));
}

static int refund_payment(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    json_t *saga = td_saga_data(ctx);
    (void)ev;
    (void)payload;
    return command(ctx, "payment", "RefundPayment",
                   json_pack("{s:s,s:O,s:O,s:s}", "order_id", td_saga_correlation_id(ctx), "amount",
                             json_object_get(saga, "total_amount"), "currency",
                             json_object_get(saga, "currency"), "reason", "order_cancelled"));
}

static int confirm(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    td_saga_clear_deadline(ctx);
    return set_status(ctx, "Processing", NULL);
}

static int out_of_stock(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    return set_status(ctx, "Cancelled", "out_of_stock");
}

static int payment_declined(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    return set_status(ctx, "Cancelled", "payment_declined");
}

#define LATE_PAYMENT_FACTOR 10

/* After the payment deadline: a late answer is still awaited a while. */
static int await_late_payment(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    shop *s = payload;
    (void)ev;
    return td_saga_set_deadline(ctx, td_time_now() + (td_time)s->opts.payment_timeout_ms * 1000 *
                                                         LATE_PAYMENT_FACTOR);
}

static int payment_timeout(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    int error = set_status(ctx, "Cancelled", "payment_timeout");
    return error < 0 ? error : await_late_payment(ctx, ev, payload);
}

/* ---- the table ------------------------------------------------------------------------ */

#define DEADLINE TD_SAGA_DEADLINE_EXPIRED

static const td_saga_transition transitions[] = {
    {NULL, "OrderCreated", "cancelled", no_items, NULL, false, without_items},
    {NULL, "OrderCreated", "reserving", start, NULL, false, NULL},
    {"reserving", "StockReserved", "paying", pay, "release_inventory", false, NULL},
    {"reserving", "StockNotReserved", "cancelled", out_of_stock, NULL, false, NULL},
    {"reserving", "OrderStatusChanged", "cancelling_reservation", NULL, NULL, false,
     customer_cancel},
    {"cancelling_reservation", "StockReserved", "cancelled", release_inventory, NULL, false, NULL},
    {"cancelling_reservation", "StockNotReserved", "cancelled", NULL, NULL, false, NULL},
    {"paying", "PaymentProcessed", "processing", confirm, "refund_payment", false, paid},
    {"paying", "PaymentProcessed", "cancelled", payment_declined, NULL, true, declined},
    {"paying", DEADLINE, "awaiting_late_payment", payment_timeout, NULL, true, NULL},
    {"paying", "OrderStatusChanged", "cancelling_payment", NULL, NULL, true, customer_cancel},
    {"cancelling_payment", "PaymentProcessed", "cancelled", refund_payment, NULL, false, paid},
    {"cancelling_payment", "PaymentProcessed", "cancelled", NULL, NULL, false, declined},
    {"cancelling_payment", DEADLINE, "awaiting_late_payment", await_late_payment, NULL, false,
     NULL},
    {"awaiting_late_payment", "PaymentProcessed", "cancelled", refund_payment, NULL, false, paid},
    {"awaiting_late_payment", "PaymentProcessed", "cancelled", NULL, NULL, false, declined},
    {"awaiting_late_payment", DEADLINE, "cancelled", NULL, NULL, false, NULL},
    {"processing", "OrderStatusChanged", "cancelled", NULL, NULL, true, customer_cancel},
    {"processing", "OrderStatusChanged", "completed", NULL, NULL, false, shipped},
};

static const td_saga_compensation compensations[] = {
    {"release_inventory", release_inventory},
    {"refund_payment", refund_payment},
};

static const char *const finals[] = {"completed", "cancelled", NULL};

static int correlate(const td_event *ev, json_t *data, char *out, size_t size)
{
    const char *order = json_string_value(json_object_get(data, "order_id"));
    (void)ev;
    if (order)
        snprintf(out, size, "%s", order);
    return order ? 0 : TD_EINVAL;
}

/* An order reserves each line's stock with its own StockReserved (the
 * first moves the saga on), and the saga's own steps change the order's
 * status: neither is worth a write of the instance when no transition fits. */
static const char *const routine[] = {"StockReserved", "OrderStatusChanged", NULL};

static const td_saga_definition definition = {
    .name = SHOP_ORDER_SAGA,
    .transitions = transitions,
    .transition_count = sizeof transitions / sizeof transitions[0],
    .compensations = compensations,
    .compensation_count = 2,
    .final_states = finals,
    .correlate = correlate,
    .routine = routine,
};

int order_saga_new(shop *s, unsigned part, td_saga **out)
{
    td_saga_options opts = TD_SAGA_OPTIONS_INIT;
    opts.partition = shop_partition(s, part);
    opts.metrics = s->opts.metrics;
    opts.tracer = s->opts.tracer;
    opts.max_attempts = 10;
    opts.eager = !s->opts.deferred;
    return td_saga_new(out, s->store, &definition, s, &opts);
}
