/*
 * payment_service.c: the payments context. A subscription on payment-<order
 * id> streams turns ProcessPayment commands into provider charges and
 * PaymentProcessed events, and RefundPayment into refunds and PaymentRefunded.
 *
 * The card token is not in the command: ProcessPayment names the order's
 * payment-method document (payment_methods/<id>), where the token is kept
 * sealed under the customer's key. The document is deleted in the unit
 * that publishes the outcome, so a token lives in the store only while its
 * charge is pending. A missing document (the order was cancelled, or the
 * customer forgotten) is a decline: payment_method_unavailable.
 *
 * The provider call is an effect outside the store, so this subscription is
 * not transactional: the event id is the provider's idempotency key (asking
 * twice charges once), and the resulting event is published together with an
 * inbox claim, so a redelivered command never publishes a second result. A
 * transient provider failure returns an error: the subscription's retry
 * policy takes over. No answer at all publishes nothing; the order saga's
 * deadline deals with that.
 */
#include <stdio.h>
#include <string.h>

#include "shop_int.h"

typedef struct reply {
    const td_event *command;
    const char *stream;
    td_event *event;
    const char *method_id; /* the payment-method document to delete, or NULL */
} reply;

static int reply_unit(td_txn *txn, void *payload)
{
    reply *r = payload;
    int first = td_inbox_claim(txn, "payments", &r->command->id);
    if (first != 0)
        return first < 0 ? first : 0; /* answered before */
    td_txn_set_cause(txn, r->command);
    int error = td_txn_append(txn, r->stream, TD_EXPECT_ANY, r->event, 1);
    if (error == 0 && r->method_id &&
        (error = td_txn_doc_delete(txn, SHOP_PAYMENT_METHODS, r->method_id)) == TD_ENOTFOUND)
        error = 0;
    return error;
}

static int publish_once(shop *s, const td_event *command, const char *order, const char *type,
                        json_t *data, const char *method_id)
{
    char stream[TD_STREAM_MAX + 1], *text = NULL;
    td_event ev;
    snprintf(stream, sizeof stream, "payment-%s", order);
    int error = shop_event(&ev, &text, type, "payments", TD_KIND_INTEGRATION, data);
    reply r = {command, stream, &ev, method_id};
    if (error == 0)
        error = td_transact(s->store, reply_unit, &r);
    free(text);
    return error;
}

/* The card token kept for method_id, opened: *out (owned), or NULL when
 * the document is gone or its customer forgotten. */
static int card_token(shop *s, const char *method_id, json_t **out)
{
    char *text = NULL;
    *out = NULL;
    if (method_id == NULL)
        return 0;
    int error = td_store_doc_get(s->store, SHOP_PAYMENT_METHODS, method_id, &text, NULL);
    json_t *doc = error == 0 ? json_loads(text, 0, NULL) : NULL;
    td_free(text);
    if (error == 0 && doc == NULL)
        error = TD_ECORRUPT;
    if (error == 0 && (error = td_keyring_open(s->keyring, NULL, doc)) == 0 &&
        json_is_string(json_object_get(doc, "token")))
        *out = json_incref(json_object_get(doc, "token"));
    json_decref(doc);
    return error == TD_ENOTFOUND || error == 1 ? 0 : error;
}

static int process(shop *s, td_delivery *d, const td_event *ev, json_t *data, const char *order)
{
    char reason[128] = "payment_method_unavailable";
    shop_payment_outcome outcome = SHOP_PAYMENT_DECLINED;
    json_t *token = NULL;
    json_int_t amount = json_integer_value(json_object_get(data, "amount"));
    const char *currency = json_string_value(json_object_get(data, "currency"));
    const char *method = json_string_value(json_object_get(data, "method"));
    const char *method_id = json_string_value(json_object_get(data, "payment_method_id"));
    if (!currency || !method)
        return td_delivery_fail(d, TD_EPERMANENT, "ProcessPayment without currency or method");
    int error = card_token(s, method_id, &token);
    if (error < 0)
        return td_delivery_fail(d, error, "cannot read the payment method: %s", td_error_last());
    if (token)
        error =
            s->provider.charge(s->provider.self, td_delivery_idempotency_key(d), amount, currency,
                               method, json_string_value(token), &outcome, reason, sizeof reason);
    json_decref(token);
    if (error < 0)
        return td_delivery_fail(d, error, "payment provider unavailable");
    if (outcome == SHOP_PAYMENT_NO_ANSWER)
        return 0;
    bool ok = outcome == SHOP_PAYMENT_APPROVED;
    return publish_once(s, ev, order, "PaymentProcessed",
                        json_pack("{s:s,s:I,s:s,s:s,s:b,s:s?}", "order_id", order, "amount", amount,
                                  "currency", currency, "payment_method", method, "is_successful",
                                  ok, "reason", ok ? NULL : reason),
                        method_id);
}

static int refund(shop *s, td_delivery *d, const td_event *ev, json_t *data, const char *order)
{
    json_int_t amount = json_integer_value(json_object_get(data, "amount"));
    const char *currency = json_string_value(json_object_get(data, "currency"));
    int error = s->provider.refund(s->provider.self, td_delivery_idempotency_key(d), amount,
                                   currency ? currency : "");
    if (error < 0)
        return td_delivery_fail(d, error, "payment provider unavailable");
    return publish_once(s, ev, order, "PaymentRefunded",
                        json_pack("{s:s,s:I,s:s?,s:O}", "order_id", order, "amount", amount,
                                  "currency", currency, "reason", json_object_get(data, "reason")),
                        NULL);
}

static int handle(td_delivery *d, const td_event *ev, void *payload)
{
    json_t *data = NULL;
    bool command =
        strcmp(ev->type, "ProcessPayment") == 0 || strcmp(ev->type, "RefundPayment") == 0;
    if (!command)
        return 0; /* our own answers, on the same streams */
    if (td_event_data(&data, ev) < 0)
        return td_delivery_fail(d, TD_EPERMANENT, "%s: data is not JSON", ev->type);
    const char *order = json_string_value(json_object_get(data, "order_id"));
    int error = order == NULL ? td_delivery_fail(d, TD_EPERMANENT, "%s without order_id", ev->type)
                : strcmp(ev->type, "ProcessPayment") == 0 ? process(payload, d, ev, data, order)
                                                          : refund(payload, d, ev, data, order);
    json_decref(data);
    return error;
}

int payment_service_new(shop *s, unsigned part, td_subscription **out)
{
    td_subscription_options opts = shop_subscription_options(s, "payments");
    opts.lanes = shop_partition_lanes(s, s->opts.io_lanes); /* each waits for the provider */
    opts.partition = shop_partition(s, part);
    opts.match.category = "payment";
    opts.immediate_retries = 2;
    opts.backoff_initial_ms = 50;
    return td_subscription_new(out, s->store, &opts, handle, s);
}
