/*
 * shop_int.h: the shop's parts and the functions its contexts share
 * (internal to shop/).
 */
#ifndef SHOP_SHOP_INT_H
#define SHOP_SHOP_INT_H

#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/aggregate.h"
#include "common/contexts.h"
#include "common/errors.h"
#include "common/validate.h"

#include "services/mailer.h"
#include "services/payments.h"

#define SHOP_SWEEPS_MAX 4

/* One of the shop's event handlers: a subscription, or the order saga. */
struct shop {
    td_store *store;
    shop_options opts;
    td_keyring *keyring; /* personal data, sealed per user (seal.h) */
    char *data_dir;
    shop_payment_provider provider;
    shop_mailer mailer;
    unsigned partitions; /* of each partitioned handler: 1.. SHOP_PARTITIONS_MAX */
    td_subscription *inventory[SHOP_PARTITIONS_MAX], *payments[SHOP_PARTITIONS_MAX],
        *notifications[SHOP_PARTITIONS_MAX];
    td_saga *orders[SHOP_PARTITIONS_MAX];
    td_subscription *read_models[3];
    td_upcasters *versions; /* attached to store while the shop is open */

    /* starts and stops the handlers above, on the keeper's thread once the
     * shop runs (keeper.c); shop_check reads it */
    td_balancer *balancer;
    pthread_t keeper;
    pthread_mutex_t keeper_lock;
    const char *sweeps[SHOP_SWEEPS_MAX]; /* expiring collections the keeper sweeps */
    size_t sweep_count;                  /* (under keeper_lock) */
    pthread_cond_t keeper_wake;
    bool keeper_ready, keeper_started, keeper_stopping;
    bool store_failure_told; /* on_store_failed was called (the keeper's alone) */
};

/* keeper.c: runs the balancer (the handlers this instance runs) and the
 * sweeps. */
int shop_keeper_start(shop *s);
void shop_keeper_stop(shop *s);

#define SHOP_READ_MODELS 3

/* readmodels/: the read models, each a projection of libtidings
 * (projection.h) kept live by a subscription of its own, "readmodel.<name>";
 * the shop writes only their folds. */
typedef struct shop_read_model {
    const char *subscription; /* "readmodel.<name>" */
    td_projection projection; /* the name, the events it reads, the fold */
    unsigned context;         /* the context that answers from it (SHOP_CTX_*): it runs there */
} shop_read_model;
extern const shop_read_model shop_read_models[SHOP_READ_MODELS];
/* The read models of the contexts s runs (out[i] NULL for the others). */
int read_models_new(shop *s, td_subscription *out[SHOP_READ_MODELS]);

/* The services and the saga, each started by shop_open (services/, sagas/). */
/* The handlers, partition part of s->partitions (0 when whole). */
int inventory_service_new(shop *s, unsigned part, td_subscription **out);
int payment_service_new(shop *s, unsigned part, td_subscription **out);
int notifications_new(shop *s, unsigned part, td_subscription **out);
int order_saga_new(shop *s, unsigned part, td_saga **out);
/* The partition part of s->partitions, for a handler's options; and its
 * share of lanes (at least 1). */
td_partition shop_partition(const shop *s, unsigned part);
unsigned shop_partition_lanes(const shop *s, unsigned lanes);

/* A subscription's options with the shop's lanes, metrics and tracer. */
td_subscription_options shop_subscription_options(const shop *s, const char *name);
/* ... for the handlers that keep their state in the store (saga, inventory,
 * read models): transactional, and eager unless the shop is deferred. */
td_subscription_options shop_handler_options(const shop *s, const char *name);

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

/* inventory.c: in the caller's unit. Records an InventoryUpdate, written
 * by source (the catalog's initial stock, the inventory's adjustments). */
int inventory_change(td_txn *txn, shop_cmd *cmd, const char *source, const char *product_id,
                     int64_t change, const char *reason);

/* inventory.c: in the caller's unit. Reserves every item or none (one
 * StockNotReserved on the first product that is short); a second call for
 * the same order changes nothing. Releasing gives back what the order holds. */
int inventory_reserve(td_txn *txn, const char *order_id, json_t *items, bool *reserved);
int inventory_release(td_txn *txn, const char *order_id, json_t *items);

/* orders.c: in the caller's unit; illegal moves fail with illegal_transition. */
int order_change_status(td_txn *txn, shop_cmd *cmd, const char *order_id, const char *to,
                        const char *reason);

/* ---- personal data and credentials (users.c, auth/) ------------------------- */

#define SHOP_AUTH_USERS      "auth_users"      /* <user id>: password hash, lookup */
#define SHOP_USER_LOOKUP     "user_lookup"     /* <e-mail's keyed hash>: user id */
#define SHOP_AUTH_SESSIONS   "auth_sessions"   /* <token hash>: user (expiring) */
#define SHOP_AUTH_KEYS       "auth_keys"       /* <key hash>: name, role */
#define SHOP_AUTH_KEY_NAMES  "auth_key_names"  /* <name>: key hash, role */
#define SHOP_PAYMENT_METHODS "payment_methods" /* <id>: the sealed card token */

/* A user's data subject (seal.h): "user-<id>". */
#define SHOP_SUBJECT_LEN (SHOP_ID_LEN + 5)
void shop_user_subject(char out[SHOP_SUBJECT_LEN + 1], const char *user_id);
/* domain/personal.c: the personal fields of an event type (NULL-terminated;
 * NULL when it has none). */
const char *const *shop_personal_fields(const char *type);
/* Seals the personal fields of an event's data (of type) that holds them in
 * the clear, under its owner's key (made if missing), in txn; owners: the
 * store to find an order's customer in. Returns 1 when it sealed (or
 * erased: the owner was forgotten), 0 when there was nothing to seal. */
int shop_seal_event_data(td_keyring *keyring, td_txn *txn, td_store *owners, const char *type,
                         json_t *data);
/* Upgrades a store from before sealing: its index by e-mail address
 * becomes the keyed one (once; nothing to do afterwards). */
int users_upgrade(shop *s);
/* Starts a session for user_id (auth/tokens.c). */
struct shop_session;
int shop_session_start(shop *s, const char *user_id, int64_t ttl_s, struct shop_session *out);

/* The current time as RFC 3339 text. */
void shop_now(char buf[TD_TIME_STR_LEN + 1]);

#endif
