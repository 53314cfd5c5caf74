/*
 * shop_int.h: the shop's parts and the functions its contexts share
 * (internal to shop/).
 */
#ifndef SHOP_SHOP_INT_H
#define SHOP_SHOP_INT_H

#include "core/aggregate.h"
#include "core/errors.h"
#include "core/validate.h"

#include "services/mailer.h"
#include "services/payments.h"

struct shop {
    td_store *store;
    shop_options opts;
    char *data_dir;
    shop_payment_provider provider;
    shop_mailer mailer;
    td_subscription *inventory, *payments, *notifications;
    td_saga *orders;
    td_subscription *read_models[3];
    td_upcasters *versions; /* attached to store while the shop is open */
};

#define SHOP_READ_MODELS 3

/* readmodels/projections.c: the read models' subscription names, and their
 * subscriptions (not started). */
extern const char *const shop_read_model_names[SHOP_READ_MODELS];
int read_models_new(shop *s, td_subscription *out[SHOP_READ_MODELS]);

/* The services and the saga, each started by shop_open (services/, sagas/). */
int inventory_service_new(shop *s, td_subscription **out);
int payment_service_new(shop *s, td_subscription **out);
int notifications_new(shop *s, td_subscription **out);
int order_saga_new(shop *s, td_saga **out);

/* A subscription's options with the shop's lanes, metrics and tracer. */
td_subscription_options shop_subscription_options(const shop *s, const char *name);

/* domain/event_versions.c: the shop's event schemas and their upcasters.
 * Caller owns *out. */
int shop_event_versions_new(td_upcasters **out);

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

/* inventory.c: in the caller's unit. Reserves every item or none (one
 * StockNotReserved on the first product that is short); a second call for
 * the same order changes nothing. Releasing gives back what the order holds. */
int inventory_reserve(td_txn *txn, const char *order_id, json_t *items, bool *reserved);
int inventory_release(td_txn *txn, const char *order_id, json_t *items);

/* orders.c: in the caller's unit; illegal moves fail with illegal_transition. */
int order_change_status(td_txn *txn, shop_cmd *cmd, const char *order_id, const char *to,
                        const char *reason);

/* The current time as RFC 3339 text. */
void shop_now(char buf[TD_TIME_STR_LEN + 1]);

#endif
