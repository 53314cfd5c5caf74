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

#include "core/aggregate.h"
#include "core/errors.h"
#include "core/validate.h"

#include "services/mailer.h"
#include "services/payments.h"

#define SHOP_SWEEPS_MAX 4

/* One of the shop's event handlers: a subscription, or the order saga. */
typedef struct shop_handler {
    const char *name; /* its subscription's name */
    td_subscription *sub;
    td_saga *saga;
    bool standing_by;    /* its lease is another process's (under keeper_lock) */
    char why[320];       /* ... and why (under keeper_lock) */
    int64_t next_try_ms; /* the keeper's alone */
} shop_handler;

struct shop {
    td_store *store;
    shop_options opts;
    td_keyring *keyring; /* personal data, sealed per user (seal.h) */
    char *data_dir;
    shop_payment_provider provider;
    shop_mailer mailer;
    td_subscription *inventory, *payments, *notifications;
    td_saga *orders;
    td_subscription *read_models[3];
    td_upcasters *versions; /* attached to store while the shop is open */

    /* the handlers above, for the keeper and shop_check (keeper.c) */
    shop_handler handlers[8];
    size_t handler_count;
    pthread_t keeper;
    pthread_mutex_t keeper_lock;
    const char *sweeps[SHOP_SWEEPS_MAX]; /* expiring collections the keeper sweeps */
    size_t sweep_count;                  /* (under keeper_lock) */
    pthread_cond_t keeper_wake;
    bool keeper_ready, keeper_started, keeper_stopping;
    bool store_failure_told; /* on_store_failed was called (the keeper's alone) */
};

/* keeper.c: takes back handlers whose lease another process took over. */
int shop_keeper_start(shop *s);
void shop_keeper_stop(shop *s);

#define SHOP_READ_MODELS 3

/* readmodels/docs.c: how a read model reaches its documents. Live, through
 * the handler's unit (txn; cache NULL). A rebuild folds outside any unit
 * (store; txn NULL) into a write-back cache it owns (cache, a JSON object),
 * noting the position it has reached; a writer thread of its own writes
 * documents once they have settled. */
typedef struct shop_rm_writer shop_rm_writer;
typedef struct shop_rm_docs {
    td_txn *txn;
    td_store *store;
    const char *collection; /* the copy being written */
    json_t *cache;
    size_t cache_max; /* a rebuild's bound on clean documents and learnt orders */
    int64_t position; /* a rebuild's: how far it has folded */
    shop_rm_writer *writer;
} shop_rm_docs;
/* Any collection's document by key, not cached: a new reference, or NULL
 * when there is none. */
int shop_rm_read(const shop_rm_docs *d, const char *collection, const char *key, json_t **out);
/* The read model's own document (*out: a new reference or NULL, not to be
 * changed), one the caller may change and put back (a copy only if the
 * rebuild's writer may be reading it), and its replacement (doc: borrowed,
 * and from then on changed only through shop_rm_get_mutable). */
int shop_rm_get(const shop_rm_docs *d, const char *key, json_t **out);
int shop_rm_get_mutable(const shop_rm_docs *d, const char *key, json_t **out);
int shop_rm_put(const shop_rm_docs *d, const char *key, json_t *doc);
/* A rebuild's write-back: start the writer; hand it the documents that last
 * changed before position `before` (it writes them in units of its own, in
 * key order, while the fold goes on); finish: with write_rest, hand it the
 * rest and wait until all is written; without, give up what is queued.
 * Each returns the writer's failure if it had one. The _txn form writes
 * what is left in the caller's unit. A document is written once it has
 * not changed for SHOP_RM_SETTLE positions (an order's later events
 * usually come within that, and then its document is written once), or
 * at once when more have changed than cache_max. */
#define SHOP_RM_SETTLE 32768
int shop_rm_writer_start(shop_rm_docs *d, td_store *store);
int shop_rm_write_back(const shop_rm_docs *d, int64_t before);
/* More changed documents than the cache may hold: write back now. */
bool shop_rm_over_budget(const shop_rm_docs *d);
int shop_rm_writer_finish(shop_rm_docs *d, bool write_rest);
int shop_rm_write_back_txn(td_txn *txn, const shop_rm_docs *d);

/* readmodels/projections.c: the read models. Each applies an event (its
 * data parsed) to a copy of its documents; in a rebuild it may also keep
 * what it learns of earlier events in d->cache. */
typedef int (*shop_rm_apply_fn)(const shop_rm_docs *d, const td_event *event, json_t *data);
typedef struct shop_read_model {
    const char *subscription; /* "readmodel.<base>" */
    const char *base;         /* the name; the first copy's collection */
    const char *category;     /* the events it reads */
    shop_rm_apply_fn apply;
    const char *const *fields; /* every data field apply reads: a rebuild reads only these */
} shop_read_model;
extern const shop_read_model shop_read_models[SHOP_READ_MODELS];

/* readmodels/generations.c: which copy of a read model is live. A rebuild
 * makes generation N + 1 in collection <base>_gN+1 and swaps it in with
 * built_through, the last position it holds; the live handler then skips
 * events up to there. Generation 0 (no document) is collection <base>. */
#define SHOP_RM_COLLECTION_MAX 80
typedef struct shop_rm_generation {
    int64_t generation;
    int64_t built_through;
} shop_rm_generation;
int shop_rm_generation_txn(td_txn *txn, const char *base, shop_rm_generation *out);
int shop_rm_generation_get(td_store *store, const char *base, shop_rm_generation *out);
int shop_rm_generation_put(td_txn *txn, const char *base, const shop_rm_generation *g);
void shop_rm_collection(char out[SHOP_RM_COLLECTION_MAX], const char *base, int64_t generation);
/* The live copy's collection, for queries. */
int shop_rm_live_collection(td_store *store, const char *base, char out[SHOP_RM_COLLECTION_MAX]);
int read_models_new(shop *s, td_subscription *out[SHOP_READ_MODELS]);

/* The services and the saga, each started by shop_open (services/, sagas/). */
int inventory_service_new(shop *s, td_subscription **out);
int payment_service_new(shop *s, td_subscription **out);
int notifications_new(shop *s, td_subscription **out);
int order_saga_new(shop *s, td_saga **out);

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
