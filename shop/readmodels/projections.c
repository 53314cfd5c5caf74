/*
 * projections.c: the shop's read models: their folds on libtidings'
 * projections (projection.h), each kept live by a transactional
 * subscription of its own (its writes and its progress commit together, so
 * every event counts exactly once, and each can be rebuilt alone):
 *
 *   readmodel.user_orders    user_orders/<user id>|<order id>  {order_id, status,
 *                                                        total_amount, currency, order_date}
 *   readmodel.product_sales  product_sales/<product id> {"units_sold","revenue","currency"}
 *                            paid orders: counted when an order becomes Processing,
 *                            taken back when a paid order is cancelled
 *   readmodel.stock_levels   stock_levels/<product id>  {"available"}
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "shop_int.h"

/* ---- what the read models need of an order ------------------------------------- */

static bool created(const td_event *ev)
{
    return strcmp(ev->type, "OrderCreated") == 0;
}

/* Learns what a read model needs later of an order from its OrderCreated,
 * in a rebuild's memo (live: nothing to learn, memo NULL): `facts`, a new
 * reference stolen. */
static void learn_order(json_t *memo, size_t bound, json_t *data, json_t *facts)
{
    const char *order_id = json_string_value(json_object_get(data, "order_id"));
    if (memo && order_id && facts) {
        if (json_object_size(memo) >= bound) /* start over: snapshots tell the rest */
            json_object_clear(memo);
        json_object_set(memo, order_id, facts);
    }
    json_decref(facts);
}

/* What the rebuild learnt of an order, else the order's snapshot state:
 * *out is a new reference, or NULL. */
static int order_facts(td_projection_docs *d, const char *order_id, json_t **out)
{
    json_t *memo = td_projection_memo(d, NULL);
    json_t *hit = memo ? json_object_get(memo, order_id) : NULL, *order = NULL;
    *out = hit ? json_incref(hit) : NULL;
    if (hit)
        return 0;
    int error = td_projection_read(d, "snap_order", order_id, &order);
    if (error == 0 && order)
        *out = json_incref(json_object_get(order, "state"));
    json_decref(order);
    return error;
}

/* ---- orders by user ------------------------------------------------------------- */

/* One document per (user, order): user_orders/<user id>|<order id>, so each
 * event touches one small document, and a user's orders are a key-prefix
 * listing. */
static int user_orders(td_projection_docs *d, const td_event *ev, json_t *data, void *payload)
{
    size_t bound;
    json_t *memo = td_projection_memo(d, &bound), *doc = NULL, *order = NULL;
    char key[128];
    const char *order_id = json_string_value(json_object_get(data, "order_id"));
    const char *user = json_string_value(json_object_get(data, "user_id"));
    int error = 0;
    (void)payload;
    if (memo && created(ev)) /* all it needs later is the user */
        learn_order(memo, bound, data,
                    json_pack("{s:O}", "user_id", json_object_get(data, "user_id")));
    if (user == NULL && order_id && (error = order_facts(d, order_id, &order)) == 0 && order)
        user = json_string_value(json_object_get(order, "user_id"));
    if (error == 0 && user && order_id) {
        snprintf(key, sizeof key, "%s|%s", user, order_id);
        if (created(ev))
            doc = json_pack("{s:s,s:s,s:O,s:O,s:O}", "order_id", order_id, "status", "Pending",
                            "total_amount", json_object_get(data, "total_amount"), "currency",
                            json_object_get(data, "currency"), "order_date",
                            json_object_get(data, "order_date"));
        else if ((error = td_projection_get_mutable(d, key, &doc)) == 0 && doc &&
                 json_object_set(doc, "status", json_object_get(data, "to_status")) < 0)
            error = TD_ENOMEM;
        if (error == 0 && doc)
            error = td_projection_put(d, key, doc);
    }
    json_decref(doc);
    json_decref(order);
    return error;
}

/* ---- sales per product ------------------------------------------------------------- */

static int add_sales(td_projection_docs *d, json_t *items, const char *currency, int sign)
{
    int error = 0;
    for (size_t i = 0; error == 0 && i < json_array_size(items); i++) {
        json_t *item = json_array_get(items, i), *doc = NULL;
        const char *product = json_string_value(json_object_get(item, "product_id"));
        json_int_t quantity = json_integer_value(json_object_get(item, "quantity"));
        json_int_t price = json_integer_value(json_object_get(item, "unit_price"));
        if ((error = td_projection_get(d, product, &doc)) < 0)
            break;
        json_int_t units = doc ? json_integer_value(json_object_get(doc, "units_sold")) : 0;
        json_int_t revenue = doc ? json_integer_value(json_object_get(doc, "revenue")) : 0;
        json_decref(doc);
        doc = json_pack("{s:I,s:I,s:s}", "units_sold", units + sign * quantity, "revenue",
                        revenue + sign * quantity * price, "currency", currency);
        error = doc ? td_projection_put(d, product, doc) : TD_ENOMEM;
        json_decref(doc);
    }
    return error;
}

static int product_sales(td_projection_docs *d, const td_event *ev, json_t *data, void *payload)
{
    size_t bound;
    json_t *memo = td_projection_memo(d, &bound), *order = NULL;
    const char *to = json_string_value(json_object_get(data, "to_status"));
    const char *from = json_string_value(json_object_get(data, "from_status"));
    const char *order_id = json_string_value(json_object_get(data, "order_id"));
    int sign = to && strcmp(to, "Processing") == 0                                             ? 1
               : to && from && strcmp(to, "Cancelled") == 0 && strcmp(from, "Processing") == 0 ? -1
                                                                                               : 0;
    int error = 0;
    (void)payload;
    if (memo && created(ev))
        learn_order(memo, bound, data,
                    json_pack("{s:O,s:O}", "items", json_object_get(data, "items"), "currency",
                              json_object_get(data, "currency")));
    if (sign && order_id && (error = order_facts(d, order_id, &order)) == 0 && order)
        error = add_sales(d, json_object_get(order, "items"),
                          json_string_value(json_object_get(order, "currency")), sign);
    json_decref(order);
    return error;
}

/* ---- stock levels ---------------------------------------------------------------------- */

static int stock_levels(td_projection_docs *d, const td_event *ev, json_t *data, void *payload)
{
    json_t *doc = NULL;
    const char *product = json_string_value(json_object_get(data, "product_id"));
    json_int_t change = strcmp(ev->type, "InventoryUpdate") == 0
                            ? json_integer_value(json_object_get(data, "quantity_change"))
                        : strcmp(ev->type, "StockReserved") == 0
                            ? -json_integer_value(json_object_get(data, "quantity"))
                        : strcmp(ev->type, "InventoryReleased") == 0
                            ? json_integer_value(json_object_get(data, "quantity"))
                            : 0;
    int error = 0;
    (void)payload;
    if (product && change && (error = td_projection_get(d, product, &doc)) == 0) {
        json_int_t available = doc ? json_integer_value(json_object_get(doc, "available")) : 0;
        json_decref(doc);
        doc = json_pack("{s:I}", "available", available + change);
        error = doc ? td_projection_put(d, product, doc) : TD_ENOMEM;
    }
    json_decref(doc);
    return error;
}

/* ---- the table, and the live handler ------------------------------------------------------ */

/* Every data field each function reads: a rebuild reads only these
 * (td_store_read_fields), so a field used above must be listed here. */
static const char *const user_orders_fields[] = {
    "order_id", "user_id", "total_amount", "currency", "order_date", "to_status", NULL};
static const char *const product_sales_fields[] = {"order_id", "to_status", "from_status",
                                                   "items",    "currency",  NULL};
static const char *const stock_levels_fields[] = {"product_id", "quantity_change", "quantity",
                                                  NULL};

#define FOLD(name, category, fold, fields)                                                         \
    {                                                                                              \
        TD_PROJECTION_VERSION, name, category, NULL, fields, fold, NULL                            \
    }
const shop_read_model shop_read_models[SHOP_READ_MODELS] = {
    {"readmodel.user_orders", FOLD("user_orders", "order", user_orders, user_orders_fields),
     SHOP_CTX_USERS},
    {"readmodel.product_sales", FOLD("product_sales", "order", product_sales, product_sales_fields),
     SHOP_CTX_CATALOG},
    {"readmodel.stock_levels", FOLD("stock_levels", "inventory", stock_levels, stock_levels_fields),
     SHOP_CTX_INVENTORY},
};

/* ---- starting them ------------------------------------------------------------------------- */

int read_models_new(shop *s, td_subscription *out[SHOP_READ_MODELS])
{
    int error = 0;
    for (int i = 0; error == 0 && i < SHOP_READ_MODELS; i++) {
        const shop_read_model *m = &shop_read_models[i];
        td_subscription_options opts = shop_handler_options(s, m->subscription);
        out[i] = NULL;
        if (shop_runs(s, m->context))
            error = td_projection_subscription_new(&out[i], s->store, &opts, &m->projection);
    }
    return error;
}

/* ---- queries --------------------------------------------------------------------------------- */

typedef struct user_listing {
    const char *prefix;
    size_t len;
    json_t *orders;
} user_listing;

static int add_user_order(const char *key, const char *json, size_t len, void *payload)
{
    user_listing *l = payload;
    json_error_t err;
    if (strncmp(key, l->prefix, l->len) != 0)
        return 1; /* past this user's documents */
    json_t *doc = json_loadb(json, len, 0, &err);
    return doc && json_array_append_new(l->orders, doc) == 0 ? 0 : TD_ECORRUPT;
}

int shop_list_user_orders(shop *s, const char *user_id, json_t **out)
{
    char prefix[64];
    json_t *user = NULL;
    int error = shop_get_user(s, user_id, &user); /* 404 for an unknown user */
    json_decref(user);
    if (error < 0)
        return error;
    char coll[TD_PROJECTION_COLLECTION_MAX];
    snprintf(prefix, sizeof prefix, "%s|", user_id);
    user_listing l = {prefix, strlen(prefix), json_array()};
    error = l.orders ? td_projection_live_collection(s->store, "user_orders", coll) : TD_ENOMEM;
    if (error == 0)
        error = td_store_doc_list(s->store, coll, prefix, 0, add_user_order, &l);
    if (error < 0) {
        json_decref(l.orders);
        return shop_fail_td(error);
    }
    *out = json_pack("{s:o}", "orders", l.orders);
    return 0;
}

int shop_product_sales(shop *s, const char *product_id, int64_t *units, int64_t *revenue)
{
    char *text = NULL;
    size_t len = 0;
    json_error_t err;
    char coll[TD_PROJECTION_COLLECTION_MAX];
    *units = *revenue = 0;
    int error = td_projection_live_collection(s->store, "product_sales", coll);
    if (error == 0)
        error = td_store_doc_get(s->store, coll, product_id, &text, &len);
    json_t *doc = error == 0 ? json_loadb(text, len, 0, &err) : NULL;
    td_free(text);
    if (doc) {
        *units = json_integer_value(json_object_get(doc, "units_sold"));
        *revenue = json_integer_value(json_object_get(doc, "revenue"));
    }
    json_decref(doc);
    return error == 0 || error == TD_ENOTFOUND ? 0 : shop_fail_td(error);
}
