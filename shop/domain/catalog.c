/*
 * catalog.c: the catalog context: categories (category-<id>,
 * CategoryCreated) and products (product-<id>, ProductCreated and
 * ProductPriceChanged). Prices are integer minor units with a currency; a
 * product's currency is fixed at creation. Creating a product also records
 * its initial stock with the inventory context, in the same unit.
 */
#include <stdio.h>
#include <string.h>

#include "shop_int.h"

json_t *category_fold(json_t *state, const char *type, json_t *data)
{
    if (strcmp(type, "CategoryCreated") == 0) {
        json_decref(state);
        return json_deep_copy(data);
    }
    return state;
}

json_t *product_fold(json_t *state, const char *type, json_t *data)
{
    if (strcmp(type, "ProductCreated") == 0) {
        json_decref(state);
        return json_deep_copy(data);
    }
    if (strcmp(type, "ProductPriceChanged") == 0 && state)
        json_object_set(state, "price", json_object_get(data, "new_price"));
    return state;
}

/* ---- categories ------------------------------------------------------------- */

typedef struct category_cmd {
    shop_cmd cmd;
    const char *id, *name;
} category_cmd;

static int category_unit(td_txn *txn, void *payload)
{
    category_cmd *c = payload;
    shop_aggregate category;
    int error = agg_load(txn, &category, "category", c->id, category_fold);
    shop_new_event ev = {"CategoryCreated", "catalog", TD_KIND_DOMAIN,
                         json_pack("{s:s,s:s}", "category_id", c->id, "name", c->name)};
    if (error == 0)
        error = agg_append(txn, &category, &ev, 1, category_fold);
    else
        json_decref(ev.data);
    agg_dispose(&category);
    return error;
}

int shop_create_category(shop *s, const char *name, char id[SHOP_ID_LEN + 1])
{
    int error = check_text(name, "/name", SHOP_MAX_TEXT);
    if (error == 0)
        error = shop_new_id(id);
    if (error < 0)
        return error;
    category_cmd c = {.cmd.created = id, .id = id, .name = name};
    return shop_run(s->store, category_unit, &c);
}

static int add_category(const char *key, const char *json, size_t len, void *payload)
{
    json_error_t err;
    json_t *doc = json_loadb(json, len, 0, &err);
    (void)key;
    if (doc == NULL)
        return TD_ECORRUPT;
    json_array_append(payload, json_object_get(doc, "state"));
    json_decref(doc);
    return 0;
}

int shop_list_categories(shop *s, json_t **out)
{
    *out = json_array();
    int error = *out ? td_store_doc_list(s->store, "snap_category", NULL, 0, add_category, *out)
                     : TD_ENOMEM;
    if (error < 0) {
        json_decref(*out);
        return shop_fail_td(error);
    }
    return 0;
}

/* ---- products --------------------------------------------------------------- */

typedef struct product_cmd {
    shop_cmd cmd;
    const char *id;
    const shop_product_input *in;
    int64_t price; /* for price changes */
} product_cmd;

static int product_unit(td_txn *txn, void *payload)
{
    product_cmd *c = payload;
    shop_aggregate product, category;
    int error = 0;
    if (c->in->category_id) {
        if ((error = agg_load(txn, &category, "category", c->in->category_id, category_fold)) < 0)
            return error;
        bool exists = category.state != NULL;
        agg_dispose(&category);
        if (!exists)
            return cmd_fail(&c->cmd, TD_ENOTFOUND, "not_found", "/category_id", "no category %s",
                            c->in->category_id);
    }
    if ((error = agg_load(txn, &product, "product", c->id, product_fold)) < 0)
        return error;
    shop_new_event ev = {"ProductCreated", "catalog", TD_KIND_INTEGRATION,
                         json_pack("{s:s,s:s,s:I,s:s,s:s?}", "product_id", c->id, "name",
                                   c->in->name, "price", (json_int_t)c->in->price, "currency",
                                   c->in->currency, "category_id", c->in->category_id)};
    error = agg_append(txn, &product, &ev, 1, product_fold);
    agg_dispose(&product);
    if (error == 0)
        error = inventory_change(txn, &c->cmd, "catalog", c->id, c->in->stock, "initial_stock");
    return error;
}

int shop_create_product(shop *s, const shop_product_input *in, char id[SHOP_ID_LEN + 1])
{
    int error = check_text(in->name, "/name", SHOP_MAX_TEXT);
    if (error == 0)
        error = check_price(in->price, "/price");
    if (error == 0)
        error = check_currency(in->currency, "/currency");
    if (error == 0 && in->category_id)
        error = check_id(in->category_id, "/category_id");
    if (error == 0)
        error = check_range(in->stock, 0, 1000000000, "/stock");
    if (error == 0)
        error = shop_new_id(id);
    if (error < 0)
        return error;
    product_cmd c = {.cmd.created = id, .id = id, .in = in};
    return shop_run(s->store, product_unit, &c);
}

static int price_unit(td_txn *txn, void *payload)
{
    product_cmd *c = payload;
    shop_aggregate product;
    char when[TD_TIME_STR_LEN + 1];
    int error = agg_load(txn, &product, "product", c->id, product_fold);
    if (error == 0 && product.state == NULL)
        error = cmd_fail(&c->cmd, TD_ENOTFOUND, "not_found", NULL, "no product %s", c->id);
    if (error == 0) {
        shop_now(when);
        json_int_t old = json_integer_value(json_object_get(product.state, "price"));
        shop_new_event ev = {"ProductPriceChanged", "catalog", TD_KIND_INTEGRATION,
                             json_pack("{s:s,s:I,s:I,s:O,s:s}", "product_id", c->id, "old_price",
                                       old, "new_price", (json_int_t)c->price, "currency",
                                       json_object_get(product.state, "currency"), "changed_at",
                                       when)};
        error = agg_append(txn, &product, &ev, 1, product_fold);
    }
    agg_dispose(&product);
    return error;
}

int shop_change_price(shop *s, const char *product_id, int64_t price)
{
    int error = check_id(product_id, "/product_id");
    if (error == 0)
        error = check_price(price, "/price");
    if (error < 0)
        return error;
    product_cmd c = {.id = product_id, .price = price};
    return shop_run(s->store, price_unit, &c);
}

typedef struct product_page {
    json_t *list;
    const char *last;
    char last_key[SHOP_ID_LEN + 1];
} product_page;

static int add_product(const char *key, const char *json, size_t len, void *payload)
{
    product_page *page = payload;
    json_error_t err;
    json_t *doc = json_loadb(json, len, 0, &err);
    if (doc == NULL)
        return TD_ECORRUPT;
    json_t *state = json_object_get(doc, "state");
    json_object_set_new(state, "id", json_string(key));
    json_array_append(page->list, state);
    snprintf(page->last_key, sizeof page->last_key, "%s", key);
    json_decref(doc);
    return 0;
}

int shop_list_products(shop *s, const char *after, size_t limit, json_t **out)
{
    product_page page = {json_array(), NULL, ""};
    if (after && check_id(after, "/after") < 0) {
        json_decref(page.list);
        return TD_EINVAL;
    }
    int error = page.list
                    ? td_store_doc_list(s->store, "snap_product", after, limit, add_product, &page)
                    : TD_ENOMEM;
    if (error < 0) {
        json_decref(page.list);
        return shop_fail_td(error);
    }
    bool full = limit && json_array_size(page.list) == limit;
    *out = json_pack("{s:o,s:s?}", "products", page.list, "next", full ? page.last_key : NULL);
    return *out ? 0 : shop_fail(TD_ENOMEM, "internal_error", NULL, "out of memory");
}
