/*
 * event_versions.c: the schema version the shop writes and reads for each
 * of its event types, and the upcasters that bring older ones up to it
 * (upcast.h). Types not listed are at schema 1.
 *
 * OrderCreated, the RFC's example (section 5):
 *   schema 1: order_id, user_id, total_amount
 *   schema 2: adds currency ("USD" when upcast), shipping_address (empty
 *             when upcast), items ([]: schema 1 did not record lines),
 *             payment_method ("") and order_date (the event's time)
 *
 *   schema 3: payment_token gone (card tokens never enter the log), and
 *             payment_method_id names the sealed payment-method document;
 *             upcast: the token dropped, no document (null)
 *
 * ProcessPayment:
 *   schema 1: order_id, amount, currency, method, token
 *   schema 2: token gone, payment_method_id instead (upcast: null)
 *
 * So events from before keep their tokens in the store's bytes, but no
 * reader sees them, and `shop migrate` writes a copy without them.
 *
 * OrderStatusChanged stays at schema 1 with one optional field added,
 * user_id: an upcaster could not know it, and its readers (the read models)
 * look it up in the order when an older event lacks it.
 */
#include <string.h>

#include "shop_int.h"

static const struct {
    const char *type;
    int32_t current;
} versions[] = {
    {"OrderCreated", 3},
    {"ProcessPayment", 2},
};

int32_t shop_schema_version(const char *type)
{
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        if (strcmp(versions[i].type, type) == 0)
            return versions[i].current;
    return 1;
}

/* Sets key to value (stolen) unless data has it. */
static int default_to(json_t *data, const char *key, json_t *value)
{
    if (json_object_get(data, key)) {
        json_decref(value);
        return 0;
    }
    return value && json_object_set_new(data, key, value) == 0 ? 0 : TD_ENOMEM;
}

static int order_created_1_to_2(const td_event *ev, json_t *data, void *payload)
{
    (void)payload;
    char when[TD_TIME_STR_LEN + 1];
    if (td_time_format(when, ev->occurred_at) < 0)
        return TD_EINVAL;
    int error = default_to(data, "currency", json_string("USD"));
    if (error == 0)
        error = default_to(data, "shipping_address",
                           json_pack("{s:s,s:s,s:s,s:s}", "line1", "", "city", "", "postal_code",
                                     "", "country", ""));
    if (error == 0)
        error = default_to(data, "items", json_array());
    if (error == 0)
        error = default_to(data, "payment_method", json_string(""));
    if (error == 0)
        error = default_to(data, "order_date", json_string(when));
    return error;
}

/* Drops the card token of an event from before tokens left the log. */
static int without_token(json_t *data, const char *token_field)
{
    json_object_del(data, token_field);
    return default_to(data, "payment_method_id", json_null());
}

static int order_created_2_to_3(const td_event *ev, json_t *data, void *payload)
{
    (void)ev;
    (void)payload;
    return without_token(data, "payment_token");
}

static int process_payment_1_to_2(const td_event *ev, json_t *data, void *payload)
{
    (void)ev;
    (void)payload;
    return without_token(data, "token");
}

int shop_event_versions_new(td_upcasters **out)
{
    td_upcasters *u = NULL;
    int error = td_upcasters_new(&u);
    for (size_t i = 0; error == 0 && i < sizeof versions / sizeof versions[0]; i++)
        error = td_upcasters_declare(u, versions[i].type, versions[i].current);
    if (error == 0)
        error = td_upcasters_add(u, "OrderCreated", 1, order_created_1_to_2, NULL);
    if (error == 0)
        error = td_upcasters_add(u, "OrderCreated", 2, order_created_2_to_3, NULL);
    if (error == 0)
        error = td_upcasters_add(u, "ProcessPayment", 1, process_payment_1_to_2, NULL);
    if (error < 0) {
        td_upcasters_free(u);
        return error;
    }
    *out = u;
    return 0;
}
