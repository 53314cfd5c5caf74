/*
 * orders.c: the orders context (order-<id>: OrderCreated,
 * OrderStatusChanged). Unit prices are copied from the products when the
 * order is placed, so later price changes leave it alone.
 *
 * Personal data and secrets stay out of the log: the shipping address is
 * sealed under the customer's key (seal.h), and the card token goes into a
 * payment-method document of its own, payment_methods/<id>, sealed too;
 * OrderCreated names only the method and that document's id. The payment
 * service deletes the document once it has charged, and a cancelled order
 * deletes it too. Status moves only along:
 *
 *   Pending ──▶ Processing ──▶ Shipped ──▶ Delivered
 *      │            │
 *      └────────────┴──▶ Cancelled (with a reason)
 *
 * anything else is refused as illegal_transition and writes nothing.
 */
#include <stdio.h>
#include <string.h>

#include "shop_int.h"

json_t *order_fold(json_t *state, const char *type, json_t *data)
{
    if (strcmp(type, "OrderCreated") == 0) {
        json_decref(state);
        state = json_pack(
            "{s:O,s:O,s:s,s:O,s:O,s:O,s:O?,s:O,s:O?,s:O,s:n,s:[{s:s,s:O}]}", "order_id",
            json_object_get(data, "order_id"), "user_id", json_object_get(data, "user_id"),
            "status", "Pending", "items", json_object_get(data, "items"), "total_amount",
            json_object_get(data, "total_amount"), "currency", json_object_get(data, "currency"),
            "shipping_address", json_object_get(data, "shipping_address"), "payment_method",
            json_object_get(data, "payment_method"), "payment_method_id",
            json_object_get(data, "payment_method_id"), "order_date",
            json_object_get(data, "order_date"), "cancel_reason", "history", "status", "Pending",
            "at", json_object_get(data, "order_date"));
        json_t *sealed = json_object_get(data, "_sealed"); /* the address, opened on reading */
        if (state && sealed && json_object_set(state, "_sealed", sealed) < 0) {
            json_decref(state);
            state = NULL;
        }
    } else if (strcmp(type, "OrderStatusChanged") == 0 && state) {
        json_t *to = json_object_get(data, "to_status");
        json_object_set(state, "status", to);
        if (strcmp(json_string_value(to), "Cancelled") == 0)
            json_object_set(state, "cancel_reason", json_object_get(data, "reason"));
        json_array_append_new(json_object_get(state, "history"),
                              json_pack("{s:O,s:O,s:O}", "status", to, "at",
                                        json_object_get(data, "changed_at"), "reason",
                                        json_object_get(data, "reason")));
    }
    return state;
}

/* ---- placing ------------------------------------------------------------------ */

typedef struct order_cmd {
    shop_cmd cmd;
    shop *shop;
    const char *id;
    /* placing: sealed on the caller's thread where the customer has a key
     * (the writer is every order's bottleneck); the unit seals what is not */
    char method_id[SHOP_ID_LEN + 1];
    json_t *method_doc; /* the payment-method document */
    json_t *personal;   /* {"_sealed"} with the address, or {"shipping_address"} */
    const shop_order_input *in;
    const char *to, *reason; /* status changes */
} order_cmd;

static int exists(td_txn *txn, const char *category, shop_fold_fn fold, const char *id,
                  json_t **state)
{
    shop_aggregate a;
    int error = agg_load(txn, &a, category, id, fold);
    *state = a.state;
    return error < 0 ? error : a.state != NULL;
}

/* Prices the items from the catalog; fills items and total. */
static int price_items(td_txn *txn, order_cmd *c, json_t *items, int64_t *total,
                       const char **currency, json_t **first_product)
{
    char field[64];
    for (size_t i = 0; i < c->in->item_count; i++) {
        const shop_order_item *item = &c->in->items[i];
        json_t *product = NULL;
        int found = exists(txn, "product", product_fold, item->product_id, &product);
        snprintf(field, sizeof field, "/items/%zu/product_id", i);
        if (found <= 0) {
            json_decref(product);
            return found < 0 ? found
                             : cmd_fail(&c->cmd, TD_ENOTFOUND, "not_found", field, "no product %s",
                                        item->product_id);
        }
        const char *cur = json_string_value(json_object_get(product, "currency"));
        json_int_t price = json_integer_value(json_object_get(product, "price"));
        if (*currency && strcmp(*currency, cur) != 0) {
            json_decref(product);
            return cmd_fail(&c->cmd, TD_EINVAL, "validation_failed", field,
                            "all items of an order must share one currency");
        }
        if (*currency == NULL)
            *currency = cur; /* points into *first_product, kept below */
        *total += price * item->quantity;
        json_array_append_new(items, json_pack("{s:s,s:O,s:I,s:I}", "product_id", item->product_id,
                                               "name", json_object_get(product, "name"), "quantity",
                                               (json_int_t)item->quantity, "unit_price", price));
        if (*first_product == NULL)
            *first_product = product; /* keeps currency alive */
        else
            json_decref(product);
    }
    return 0;
}

static json_t *address_json(const shop_address *a)
{
    return json_pack("{s:s,s:s,s:s,s:s}", "line1", a->line1, "city", a->city, "postal_code",
                     a->postal_code, "country", a->country);
}

/* Seals fields of data under the customer's key (made if they have none:
 * users from before sealing); a customer forgotten meanwhile is gone. */
static int seal_for_customer(td_txn *txn, order_cmd *c, json_t *data, const char *const *fields)
{
    char subject[SHOP_SUBJECT_LEN + 1];
    shop_user_subject(subject, c->in->user_id);
    int error = td_keyring_seal(c->shop->keyring, txn, subject, data, fields, TD_SEAL_CREATE_KEY);
    return error != 1 ? error
                      : cmd_fail(&c->cmd, TD_ENOTFOUND, "not_found", "/user_id", "no user %s",
                                 c->in->user_id);
}

static const char *const card_secret[] = {"token", NULL};

/* The card token, sealed under the customer's key, in a document of its
 * own (c->method_id), so that no event ever holds it. */
static int put_payment_method(td_txn *txn, order_cmd *c)
{
    json_t *doc = json_deep_copy(c->method_doc); /* a unit may run again: c's stays */
    int error = doc ? 0 : TD_ENOMEM;
    if (error == 0 && json_object_get(doc, "_sealed") == NULL)
        error = seal_for_customer(txn, c, doc, card_secret);
    if (error == 0)
        error = td_txn_doc_put_json(txn, SHOP_PAYMENT_METHODS, c->method_id, doc);
    json_decref(doc);
    return error;
}

/* OrderCreated's data, its address sealed. */
static int created_data(td_txn *txn, order_cmd *c, const char *currency, int64_t total,
                        json_t *items, json_t **out)
{
    char when[TD_TIME_STR_LEN + 1];
    shop_now(when);
    *out = json_pack("{s:s,s:s,s:I,s:s,s:s,s:O,s:s,s:s}", "order_id", c->id, "user_id",
                     c->in->user_id, "total_amount", (json_int_t)total, "currency", currency,
                     "order_date", when, "items", items, "payment_method", c->in->payment_method,
                     "payment_method_id", c->method_id);
    if (*out == NULL || json_object_update(*out, c->personal) < 0)
        return TD_ENOMEM;
    return json_object_get(*out, "_sealed")
               ? 0
               : seal_for_customer(txn, c, *out, shop_personal_fields("OrderCreated"));
}

/* What placing seals, sealed now where the customer has a key, outside
 * the unit: c->method_doc, c->personal. Without a key (a user from before
 * sealing, or none) they stay open for the unit to seal or refuse. */
static int prepare(shop *s, order_cmd *c)
{
    char subject[SHOP_SUBJECT_LEN + 1];
    shop_user_subject(subject, c->in->user_id);
    c->method_doc = json_pack("{s:s,s:s,s:s}", "order_id", c->id, "method", c->in->payment_method,
                              "token", c->in->payment_token);
    c->personal = json_pack("{s:o}", "shipping_address", address_json(&c->in->shipping_address));
    int error = c->method_doc && c->personal ? shop_new_id(c->method_id) : TD_ENOMEM;
    if (error == 0)
        error = td_keyring_seal(s->keyring, NULL, subject, c->method_doc, card_secret, 0);
    if (error == 0)
        error = td_keyring_seal(s->keyring, NULL, subject, c->personal,
                                shop_personal_fields("OrderCreated"), 0);
    if (error == 1)
        return shop_fail(TD_ENOTFOUND, "not_found", "/user_id", "no user %s", c->in->user_id);
    return error == TD_ENOTFOUND ? 0 : error < 0 ? shop_fail_td(error) : 0;
}

static int place_unit(td_txn *txn, void *payload)
{
    order_cmd *c = payload;
    json_t *user = NULL, *items = json_array(), *first = NULL, *data = NULL;
    const char *currency = NULL;
    int64_t total = 0;
    shop_aggregate order;
    int error = exists(txn, "user", user_fold, c->in->user_id, &user);
    json_decref(user);
    if (error == 0)
        error =
            cmd_fail(&c->cmd, TD_ENOTFOUND, "not_found", "/user_id", "no user %s", c->in->user_id);
    if (error > 0)
        error = price_items(txn, c, items, &total, &currency, &first);
    if (error == 0)
        error = put_payment_method(txn, c);
    if (error == 0)
        error = created_data(txn, c, currency, total, items, &data);
    if (error == 0)
        error = agg_load(txn, &order, "order", c->id, order_fold);
    if (error == 0) {
        shop_new_event ev = {"OrderCreated", "orders", TD_KIND_INTEGRATION, data};
        data = NULL; /* agg_append takes it */
        error = agg_append(txn, &order, &ev, 1, order_fold);
        agg_dispose(&order);
    }
    json_decref(data);
    json_decref(items);
    json_decref(first);
    return error;
}

static int check_order(const shop_order_input *in)
{
    char field[64];
    int error = check_id(in->user_id, "/user_id");
    if (error == 0 && (in->item_count < 1 || in->item_count > SHOP_MAX_ORDER_ITEMS || !in->items))
        error = shop_fail(TD_EINVAL, "validation_failed", "/items", "an order has 1 to %d items",
                          SHOP_MAX_ORDER_ITEMS);
    for (size_t i = 0; error == 0 && i < in->item_count; i++) {
        snprintf(field, sizeof field, "/items/%zu/product_id", i);
        for (size_t j = 0; error == 0 && j < i; j++)
            if (in->items[j].product_id && in->items[i].product_id &&
                strcmp(in->items[j].product_id, in->items[i].product_id) == 0)
                error = shop_fail(TD_EINVAL, "validation_failed", field,
                                  "each product may appear once in an order");
        if (error == 0 && (error = check_id(in->items[i].product_id, field)) == 0) {
            snprintf(field, sizeof field, "/items/%zu/quantity", i);
            error = check_range(in->items[i].quantity, 1, SHOP_MAX_QUANTITY, field);
        }
    }
    const shop_address *a = &in->shipping_address;
    if (error == 0)
        error = check_text(a->line1, "/shipping_address/line1", SHOP_MAX_TEXT);
    if (error == 0)
        error = check_text(a->city, "/shipping_address/city", SHOP_MAX_TEXT);
    if (error == 0)
        error = check_text(a->postal_code, "/shipping_address/postal_code", 20);
    if (error == 0)
        error = check_text(a->country, "/shipping_address/country", 60);
    if (error == 0)
        error = check_text(in->payment_method, "/payment/method", 40);
    if (error == 0)
        error = check_text(in->payment_token, "/payment/token", SHOP_MAX_TEXT);
    return error;
}

int shop_place_order(shop *s, const shop_order_input *in, char id[SHOP_ID_LEN + 1])
{
    int error = check_order(in);
    if (error == 0)
        error = shop_new_id(id);
    if (error < 0)
        return error;
    order_cmd c = {.cmd.created = id, .shop = s, .id = id, .in = in};
    error = prepare(s, &c);
    if (error == 0)
        error = shop_run(s->store, place_unit, &c);
    json_decref(c.method_doc);
    json_decref(c.personal);
    return error;
}

/* ---- status ---------------------------------------------------------------------- */

static bool allowed(const char *from, const char *to)
{
    static const char *const moves[][2] = {{"Pending", "Processing"},
                                           {"Processing", "Shipped"},
                                           {"Shipped", "Delivered"},
                                           {"Pending", "Cancelled"},
                                           {"Processing", "Cancelled"}};
    for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++)
        if (strcmp(moves[i][0], from) == 0 && strcmp(moves[i][1], to) == 0)
            return true;
    return false;
}

int order_change_status(td_txn *txn, shop_cmd *cmd, const char *order_id, const char *to,
                        const char *reason)
{
    shop_aggregate order;
    char when[TD_TIME_STR_LEN + 1];
    int error = agg_load(txn, &order, "order", order_id, order_fold);
    const char *from =
        order.state ? json_string_value(json_object_get(order.state, "status")) : NULL;
    if (error == 0 && from == NULL)
        error = cmd_fail(cmd, TD_ENOTFOUND, "not_found", NULL, "no order %s", order_id);
    else if (error == 0 && !allowed(from, to))
        error = cmd_fail(cmd, TD_ECONFLICT, "illegal_transition", "/status",
                         "an order that is %s cannot become %s", from, to);
    if (error == 0) {
        shop_now(when);
        /* user_id spares the read models a read of the order for every change */
        shop_new_event ev = {"OrderStatusChanged", "orders", TD_KIND_INTEGRATION,
                             json_pack("{s:s,s:O?,s:s,s:s,s:s,s:s?}", "order_id", order_id,
                                       "user_id", json_object_get(order.state, "user_id"),
                                       "from_status", from, "to_status", to, "changed_at", when,
                                       "reason", reason)};
        error = agg_append(txn, &order, &ev, 1, order_fold);
    }
    const char *method = json_string_value(json_object_get(order.state, "payment_method_id"));
    /* paid or cancelled: the card token is of no more use. The payments
     * service deletes its copy once it charged; a payments service of its
     * own (contexts.h) leaves this store's copy to this */
    bool done = strcmp(to, "Cancelled") == 0 || strcmp(to, "Processing") == 0;
    if (error == 0 && done && method &&
        (error = td_txn_doc_delete(txn, SHOP_PAYMENT_METHODS, method)) == TD_ENOTFOUND)
        error = 0; /* charged already, or never kept (an order from before) */
    agg_dispose(&order);
    return error;
}

static int status_unit(td_txn *txn, void *payload)
{
    order_cmd *c = payload;
    return order_change_status(txn, &c->cmd, c->id, c->to, c->reason);
}

static int change(shop *s, const char *order_id, const char *to, const char *reason)
{
    int error = check_id(order_id, "/order_id");
    if (error < 0)
        return error;
    order_cmd c = {.id = order_id, .to = to, .reason = reason};
    return shop_run(s->store, status_unit, &c);
}

int shop_cancel_order(shop *s, const char *order_id)
{
    return change(s, order_id, "Cancelled", "cancelled_by_customer");
}

int shop_ship_order(shop *s, const char *order_id)
{
    return change(s, order_id, "Shipped", NULL);
}

int shop_deliver_order(shop *s, const char *order_id)
{
    return change(s, order_id, "Delivered", NULL);
}

/* The order's personal fields opened; on failure *out is freed. */
static int opened(shop *s, json_t **out)
{
    int error = shop_open_as(s, "OrderCreated", *out);
    if (error < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return error;
}

int shop_get_order_as_placed(shop *s, const char *order_id, json_t **out)
{
    int error = check_id(order_id, "/order_id");
    if (error == 0 && (error = agg_read_at(s->store, "order", order_fold, order_id, 1, out)) < 0)
        return error == TD_ENOTFOUND ? shop_fail(error, "not_found", NULL, "no order %s", order_id)
                                     : shop_fail_td(error);
    return error < 0 ? error : opened(s, out);
}

int shop_get_order(shop *s, const char *order_id, json_t **out)
{
    int error = check_id(order_id, "/order_id");
    if (error == 0 && (error = agg_read(s->store, "order", order_fold, order_id, out, NULL)) < 0)
        return error == TD_ENOTFOUND ? shop_fail(error, "not_found", NULL, "no order %s", order_id)
                                     : shop_fail_td(error);
    return error < 0 ? error : opened(s, out);
}
