/*
 * shop_int.h: the shop's parts and the functions its contexts share
 * (internal to shop/).
 */
#ifndef SHOP_SHOP_INT_H
#define SHOP_SHOP_INT_H

#include "core/aggregate.h"
#include "core/errors.h"
#include "core/validate.h"

struct shop {
    td_store *store;
    shop_options opts;
    char *data_dir;
};

/* The folds, one per aggregate (replaying a stream through its fold gives
 * its snapshot). */
json_t *user_fold(json_t *state, const char *type, json_t *data);
json_t *category_fold(json_t *state, const char *type, json_t *data);
json_t *product_fold(json_t *state, const char *type, json_t *data);
json_t *inventory_fold(json_t *state, const char *type, json_t *data);
json_t *order_fold(json_t *state, const char *type, json_t *data);

/* inventory.c: in the caller's unit. Records an InventoryUpdate. */
int inventory_change(td_txn *txn, shop_cmd *cmd, const char *product_id, int64_t change,
                     const char *reason);

/* orders.c: in the caller's unit; illegal moves fail with illegal_transition. */
int order_change_status(td_txn *txn, shop_cmd *cmd, const char *order_id, const char *to,
                        const char *reason);

/* The current time as RFC 3339 text. */
void shop_now(char buf[TD_TIME_STR_LEN + 1]);

#endif
