/*
 * inventory.c: the inventory context, one aggregate per product
 * (inventory-<product id>) counting the units available. Which orders hold
 * how many units is kept beside it, one document per reservation
 * (reservations/<product id>|<order id>), written in the same unit as the
 * event: the aggregate's snapshot stays small however many orders it served. Restocks and
 * adjustments record InventoryUpdate (integration); reservations StockReserved or StockNotReserved;
 * releases InventoryReleased. Every change runs in a unit of work and units run one at a time, so
 * stock never goes negative and the last unit is never sold twice, however many orders race for it.
 */
#include <stdio.h>
#include <string.h>

#include "shop_int.h"

json_t *inventory_fold(json_t *state, const char *type, json_t *data)
{
    if (state == NULL &&
        (state = json_pack("{s:O,s:I}", "product_id", json_object_get(data, "product_id"),
                           "available", (json_int_t)0)) == NULL)
        return NULL;
    json_int_t available = json_integer_value(json_object_get(state, "available"));
    json_int_t quantity = json_integer_value(json_object_get(data, "quantity"));
    if (strcmp(type, "InventoryUpdate") == 0)
        available += json_integer_value(json_object_get(data, "quantity_change"));
    else if (strcmp(type, "StockReserved") == 0)
        available -= quantity;
    else if (strcmp(type, "InventoryReleased") == 0)
        available += quantity;
    json_object_set_new(state, "available", json_integer(available));
    return state;
}

static int64_t available(const shop_aggregate *inv)
{
    return inv->state ? json_integer_value(json_object_get(inv->state, "available")) : 0;
}

int inventory_change(td_txn *txn, shop_cmd *cmd, const char *source, const char *product_id,
                     int64_t change, const char *reason)
{
    shop_aggregate inv;
    if (change == 0)
        return 0;
    int error = agg_load(txn, &inv, "inventory", product_id, inventory_fold);
    if (error == 0 && available(&inv) + change < 0)
        error = cmd_fail(cmd, TD_ECONFLICT, "insufficient_stock", "/quantity_change",
                         "only %lld units are available", (long long)available(&inv));
    if (error == 0) {
        shop_new_event ev = {"InventoryUpdate", source, TD_KIND_INTEGRATION,
                             json_pack("{s:s,s:I,s:s}", "product_id", product_id, "quantity_change",
                                       (json_int_t)change, "reason", reason)};
        error = agg_append(txn, &inv, &ev, 1, inventory_fold);
    }
    agg_dispose(&inv);
    return error;
}

typedef struct adjust_cmd {
    shop_cmd cmd;
    const char *product_id, *reason;
    int64_t change;
} adjust_cmd;

static int adjust_unit(td_txn *txn, void *payload)
{
    adjust_cmd *c = payload;
    shop_aggregate product;
    int error = agg_load(txn, &product, "product", c->product_id, product_fold);
    bool exists = product.state != NULL;
    agg_dispose(&product);
    if (error == 0 && !exists)
        error = cmd_fail(&c->cmd, TD_ENOTFOUND, "not_found", NULL, "no product %s", c->product_id);
    return error < 0
               ? error
               : inventory_change(txn, &c->cmd, "inventory", c->product_id, c->change, c->reason);
}

int shop_adjust_stock(shop *s, const char *product_id, int64_t quantity_change, const char *reason)
{
    int error = check_id(product_id, "/product_id");
    if (error == 0 && quantity_change == 0)
        error = shop_fail(TD_EINVAL, "validation_failed", "/quantity_change",
                          "quantity_change must not be zero");
    if (error == 0)
        error = check_range(quantity_change, -1000000000, 1000000000, "/quantity_change");
    if (error == 0)
        error = check_text(reason, "/reason", SHOP_MAX_TEXT);
    if (error < 0)
        return error;
    adjust_cmd c = {.product_id = product_id, .reason = reason, .change = quantity_change};
    return shop_run(s->store, adjust_unit, &c);
}

/* ---- reservations (the inventory service's commands) ----------------------------- */

static int append_one(td_txn *txn, shop_aggregate *inv, const char *type, json_t *data)
{
    shop_new_event ev = {type, "inventory", TD_KIND_INTEGRATION,
                         data}; /* the saga's, the catalog's */
    return agg_append(txn, inv, &ev, 1, inventory_fold);
}

/* Loads the inventories of items into invs (count of them). */
static int load_all(td_txn *txn, json_t *items, shop_aggregate *invs, size_t *loaded)
{
    int error = 0;
    for (*loaded = 0; error == 0 && *loaded < json_array_size(items); (*loaded)++) {
        json_t *item = json_array_get(items, *loaded);
        const char *product = json_string_value(json_object_get(item, "product_id"));
        error = product ? agg_load(txn, &invs[*loaded], "inventory", product, inventory_fold)
                        : TD_ECORRUPT;
    }
    return error;
}

static int reservation_key(char *key, size_t size, json_t *product, const char *order_id)
{
    const char *id = json_string_value(product);
    if (id == NULL)
        return TD_ECORRUPT;
    snprintf(key, size, "%s|%s", id, order_id);
    return 0;
}

/* The quantity order_id holds of product, 0 if none. */
static int held_quantity(td_txn *txn, json_t *product, const char *order_id, int64_t *out)
{
    char key[128], *text = NULL;
    size_t len = 0;
    json_error_t err;
    *out = 0;
    int error = reservation_key(key, sizeof key, product, order_id);
    if (error == 0)
        error = td_txn_doc_get(txn, "reservations", key, &text, &len);
    if (error == TD_ENOTFOUND)
        return 0;
    json_t *doc = error == 0 ? json_loadb(text, len, 0, &err) : NULL;
    td_free(text);
    if (error == 0 && doc == NULL)
        error = TD_ECORRUPT;
    *out = json_integer_value(json_object_get(doc, "quantity"));
    json_decref(doc);
    return error;
}

static int reserve_all(td_txn *txn, shop_aggregate *invs, size_t n, json_t *items,
                       const char *order_id)
{
    int error = 0;
    for (size_t i = 0; error == 0 && i < n; i++) {
        json_t *item = json_array_get(items, i), *product = json_object_get(item, "product_id");
        json_t *quantity = json_object_get(item, "quantity");
        char key[128], doc[64];
        error = append_one(txn, &invs[i], "StockReserved",
                           json_pack("{s:O,s:s,s:O}", "product_id", product, "order_id", order_id,
                                     "quantity", quantity));
        if (error == 0 && (error = reservation_key(key, sizeof key, product, order_id)) == 0) {
            snprintf(doc, sizeof doc, "{\"quantity\":%lld}",
                     (long long)json_integer_value(quantity));
            error = td_txn_doc_put(txn, "reservations", key, doc, 0);
        }
    }
    return error;
}

int inventory_reserve(td_txn *txn, const char *order_id, json_t *items, bool *reserved)
{
    shop_aggregate invs[SHOP_MAX_ORDER_ITEMS];
    size_t n = 0;
    int64_t held = 0;
    int error =
        json_array_size(items) <= SHOP_MAX_ORDER_ITEMS ? load_all(txn, items, invs, &n) : TD_EINVAL;
    if (error == 0 && n > 0) /* reserved before (a redelivered command)? */
        error = held_quantity(txn, json_object_get(json_array_get(items, 0), "product_id"),
                              order_id, &held);
    size_t short_at = n;
    for (size_t i = 0; error == 0 && !held && i < n && short_at == n; i++)
        if (available(&invs[i]) <
            json_integer_value(json_object_get(json_array_get(items, i), "quantity")))
            short_at = i;
    *reserved = held || (error == 0 && short_at == n);
    if (error == 0 && !held && short_at == n)
        error = reserve_all(txn, invs, n, items, order_id);
    else if (error == 0 && !held) { /* one refusal, on the product that is short */
        json_t *item = json_array_get(items, short_at);
        error = append_one(txn, &invs[short_at], "StockNotReserved",
                           json_pack("{s:O,s:s,s:O,s:I}", "product_id",
                                     json_object_get(item, "product_id"), "order_id", order_id,
                                     "requested", json_object_get(item, "quantity"), "available",
                                     (json_int_t)available(&invs[short_at])));
    }
    for (size_t i = 0; i < n; i++)
        agg_dispose(&invs[i]);
    return error;
}

int inventory_release(td_txn *txn, const char *order_id, json_t *items)
{
    shop_aggregate invs[SHOP_MAX_ORDER_ITEMS];
    size_t n = 0;
    int error =
        json_array_size(items) <= SHOP_MAX_ORDER_ITEMS ? load_all(txn, items, invs, &n) : TD_EINVAL;
    for (size_t i = 0; error == 0 && i < n; i++) {
        json_t *product = json_object_get(json_array_get(items, i), "product_id");
        int64_t held = 0;
        char key[128];
        if ((error = held_quantity(txn, product, order_id, &held)) < 0 || held == 0)
            continue; /* only what this order holds, once */
        error = append_one(txn, &invs[i], "InventoryReleased",
                           json_pack("{s:O,s:s,s:I}", "product_id", product, "order_id", order_id,
                                     "quantity", (json_int_t)held));
        if (error == 0 && (error = reservation_key(key, sizeof key, product, order_id)) == 0)
            error = td_txn_doc_delete(txn, "reservations", key);
    }
    for (size_t i = 0; i < n; i++)
        agg_dispose(&invs[i]);
    return error;
}
