/*
 * shop.c: opening and closing the shop, and the queries that span contexts.
 */
#include <stdlib.h>
#include <string.h>

#include "shop_int.h"

void shop_now(char buf[TD_TIME_STR_LEN + 1])
{
    if (td_time_format(buf, td_time_now()) < 0)
        strcpy(buf, "1970-01-01T00:00:00.000000Z");
}

int shop_open(shop **out, td_store *store, const shop_options *opts)
{
    shop *s = calloc(1, sizeof *s);
    if (s == NULL)
        return shop_fail(TD_ENOMEM, "internal_error", NULL, "out of memory");
    s->store = store;
    if (opts)
        s->opts = *opts;
    if (s->opts.payment_timeout_ms <= 0)
        s->opts.payment_timeout_ms = 30000;
    if (s->opts.lanes == 0)
        s->opts.lanes = 2;
    s->data_dir = strdup(s->opts.data_dir ? s->opts.data_dir : "data");
    if (s->data_dir == NULL) {
        free(s);
        return shop_fail(TD_ENOMEM, "internal_error", NULL, "out of memory");
    }
    *out = s;
    return 0;
}

void shop_close(shop *s)
{
    if (s == NULL)
        return;
    free(s->data_dir);
    free(s);
}

td_store *shop_store(shop *s)
{
    return s->store;
}

int shop_get_product(shop *s, const char *product_id, json_t **out)
{
    json_t *inventory = NULL;
    int error = check_id(product_id, "/product_id");
    if (error == 0 && (error = agg_read(s->store, "product", product_id, out, NULL)) < 0)
        return error == TD_ENOTFOUND
                   ? shop_fail(error, "not_found", NULL, "no product %s", product_id)
                   : shop_fail_td(error);
    if (error < 0)
        return error;
    error = agg_read(s->store, "inventory", product_id, &inventory, NULL);
    json_object_set_new(
        *out, "stock",
        json_integer(error == 0 ? json_integer_value(json_object_get(inventory, "available")) : 0));
    json_decref(inventory);
    return error == 0 || error == TD_ENOTFOUND ? 0 : shop_fail_td(error);
}
