/*
 * shop.h: the ECommerce platform's core, as C functions (the HTTP API of
 * issue 5 is a thin layer over these).
 *
 * Bounded contexts, each owning its streams and events (RFC-002 names,
 * snake_case fields, `source` set to the context):
 *   users          user-<id>       UserRegistered
 *   catalog        category-<id>   CategoryCreated
 *                  product-<id>    ProductCreated, ProductPriceChanged
 *   inventory      inventory-<id>  InventoryUpdate (integration), StockReserved,
 *                                  StockNotReserved, InventoryReleased
 *   orders         order-<id>      OrderCreated, OrderStatusChanged
 *
 * Aggregates are event-sourced: a command runs in one unit of work that
 * loads the aggregate's snapshot, checks its invariants, appends events with
 * the expected version and writes the new snapshot, so loads cost O(1) and a
 * replay of the stream reproduces the snapshot.
 *
 * Errors: functions return 0 or a TD_E… code; shop_error() then says what
 * went wrong as a stable code word (validation_failed, not_found, conflict,
 * email_taken, insufficient_stock, illegal_transition, …), the offending
 * input as a JSON Pointer (or NULL) and a sentence. Money is in integer minor
 * units with an ISO 4217 currency; identifiers are UUID strings.
 *
 * Threads: a shop may be used from any number of threads.
 */
#ifndef SHOP_SHOP_H
#define SHOP_SHOP_H

#include <tidings/tidings.h>

#define SHOP_ID_LEN          TD_UUID_STR_LEN
#define SHOP_MAX_ORDER_ITEMS 100
#define SHOP_MAX_QUANTITY    10000
#define SHOP_MAX_PRICE       100000000000LL /* one billion in major units */
#define SHOP_MAX_TEXT        200

typedef struct shop shop;

typedef struct shop_error_info {
    int status;          /* the TD_E… code */
    const char *code;    /* stable word */
    const char *field;   /* JSON Pointer to the offending input, or NULL */
    const char *message; /* a sentence */
} shop_error_info;

/* This thread's last shop failure. Borrowed until the next shop call. */
shop_error_info shop_error(void);

typedef struct shop_options {
    const char *data_dir;   /* for the mail folder; NULL: "data" */
    int payment_timeout_ms; /* no payment answer by then: cancel; 0: 30000 */
    unsigned lanes;         /* per subscription; 0: 2 */
    td_metrics *metrics;    /* optional */
    td_tracer *tracer;      /* optional */
    bool passive;           /* commands and queries only: start no event handling
                               (for tools, and for testing the commands alone) */
    const char *smtp_url;   /* "smtp://host:port" (STARTTLS with smtp_starttls) or
                               "smtps://host:port" (TLS): mail through SMTP; NULL: the
                               mail spool under data_dir/mail. No credentials in it. */
    bool deferred;          /* the saga, inventory and read models only on their lanes,
                               never eagerly in the appending unit (for comparisons) */
    unsigned io_lanes;      /* lanes of payments and notifications, which wait on the
                               provider and the disk; 0: 8 */
    /* The master key (TD_MASTER_KEY_BYTES, copied) that wraps each user's
     * key: personal data in events and documents is sealed per user
     * (seal.h). Required. */
    const unsigned char *master_key;
    int64_t session_ttl_s; /* customers' sessions last this long; 0: 24 h */
    /* SMTP login, never from the command line: a netrc file (mode 0600),
     * or a user and password (from the environment, say); NULL: none.
     * Sent only over TLS (smtps://, or smtp:// with smtp_starttls). */
    const char *smtp_netrc_file;
    const char *smtp_user, *smtp_password;
    const char *smtp_ca_file; /* CA certificates to check the server with; NULL: the system's */
    bool smtp_starttls;       /* smtp://: insist on STARTTLS */
    /* Called once, from the keeper thread, when the store has stopped
     * writes after a failed sync or commit (TD_EIO): only reopening the
     * store recovers, so `shop serve` exits for its supervisor to restart
     * it. Corruption stops writes too, but a restart would not cure it:
     * then /health says so and the shop goes on serving reads. */
    void (*on_store_failed)(const char *why, void *payload);
    void *on_store_failed_payload;
    /* Several instances on one database share the handlers' work: the
     * inventory, payments, notifications and the order saga each run in
     * this many partitions (1..SHOP_PARTITIONS_MAX; 0 or 1: whole), spread
     * over the live instances (libtidings' balance.h); the read models run
     * whole, in one instance at a time. Every instance on a store must
     * give the same count (the store records it and refuses another). */
    unsigned partitions;
    const char *instance_label; /* how /health names this instance; NULL: PID@HOST */
    /* The bounded contexts this process runs (common/contexts.h:
     * SHOP_CTX_* bits); 0: all of them. A process running some has a store
     * of its own and takes the others' facts from the broker: only their
     * handlers start here, and the HTTP routes of the others answer 421. */
    unsigned services;
} shop_options;

#define SHOP_PARTITIONS_MAX 64

/* The shop on store: registers its event handling and starts its
 * subscriptions and saga. Caller owns *out; free with shop_close (before the
 * store). */
/* The shop attaches its event schemas to store (upcast.h) until shop_close. */
int shop_open(shop **out, td_store *store, const shop_options *opts);
void shop_close(shop *s);
td_store *shop_store(shop *s);

/* Whether this process runs the contexts of mask (SHOP_CTX_* bits; all of
 * them when the mask names several). */
bool shop_runs(const shop *s, unsigned mask);
/* The contexts this process runs (SHOP_CTX_* bits). */
unsigned shop_services(const shop *s);

/* How far behind the handlers that take an order to its end (the saga,
 * inventory, payments) are just now (td_subscription_backlog): the age of
 * the oldest event one of them has read and not finished, and how many such
 * events they hold in all. The HTTP server refuses new orders while both
 * are past a bound, so that what was accepted finishes in time. Safe from
 * any thread; cheap. */
td_backlog shop_backlog(shop *s);

/* Calls fn for each of the shop's event handlers (subscriptions and the
 * order saga, or their partitions) that has failed to start or while
 * running here: its subscription name and why. A handler another instance
 * runs is not a failure. Returns how many. Safe from any thread. */
typedef void (*shop_failure_fn)(const char *subscription, const char *why, void *payload);
int shop_check(shop *s, shop_failure_fn fn, void *payload); /* fn may be NULL */

/* This instance among those sharing the store's handlers, for /health:
 * {"id","label","live_instances","partitions","runs":[names]}, the
 * handlers (or partitions) it runs now. A new reference, or NULL for a
 * passive shop or without memory. Safe from any thread. */
json_t *shop_instance_json(shop *s);

/* Has the keeper delete the expired documents of collection (common/expiry.h:
 * written with their expiry indexed) every minute. collection: borrowed,
 * static. At most 4; sessions are one. */
int shop_sweep_expiring(shop *s, const char *collection);

/* Opens the sealed personal fields of data (an event's, say) in place: a
 * forgotten user's read as null, and data gains "_erased": true. Data
 * without sealed fields is left alone. Sets the shop error on failure. */
int shop_open_personal(shop *s, json_t *data);
/* The same for the data of an event of type (or a snapshot folded from
 * one), which may hold personal fields in the clear when it was written
 * before sealing: those read as erased too once their owner is forgotten. */
int shop_open_as(shop *s, const char *type, json_t *data);
/* Seals fields of data (NULL-terminated names) under user_id's key, for
 * documents outside the log that hold a user's personal data. */
int shop_seal_personal(shop *s, const char *user_id, json_t *data, const char *const *fields);

/* Rebuilds a read model ("user_orders", "product_sales", "stock_levels")
 * from the whole log into a fresh copy while the live one keeps serving,
 * then swaps the copy in atomically and deletes the old one. Safe beside a
 * running shop, in this process or another. An event the shop cannot read
 * (a schema too new) is skipped, as the live read model parks it, and
 * reported (td_projection_rebuild, projection.h). */
typedef td_projection_report shop_rebuild_report;
typedef struct shop_rebuild_options {
    size_t cache; /* documents, and orders, a rebuild keeps in memory; 0: 50,000 */
} shop_rebuild_options;
/* opts may be NULL (defaults). */
int shop_rebuild_read_model(td_store *store, const char *name, const shop_rebuild_options *opts,
                            shop_rebuild_report *out);

/* A guard for the calling thread's commands: it runs in each command's unit
 * of work, after the command succeeded, so what it writes commits with the
 * command or not at all (the HTTP layer keeps its Idempotency-Key records
 * this way). created: the id of what the command creates (a user, product,
 * category or order), or NULL. Returning < 0 fails the command; with *code
 * set (a code word) and message, the shop error says so. NULL clears it. */
typedef int (*shop_unit_guard_fn)(td_txn *txn, void *payload, const char *created,
                                  const char **code, char *message, size_t size);
void shop_set_unit_guard(shop_unit_guard_fn fn, void *payload);

/* Opens the store the shop commands work on: db if given, else the
 * TIDINGS_DB environment variable, else sqlite:DATA/tidings.db under data.
 * Caller owns *out; td_error_last() says why it failed. */
typedef enum shop_store_mode {
    SHOP_STORE_READ,   /* an existing store, writes refused */
    SHOP_STORE_WRITE,  /* an existing store */
    SHOP_STORE_CREATE, /* made if missing */
} shop_store_mode;
int shop_open_store(td_store **out, const char *db, const char *data, shop_store_mode mode);
/* The same for `shop serve`: pipelined commits unless each_commit_synced
 * (td_store_options.pipelined_commits: the writer goes on while the last
 * batch's fsync is in flight; answers still wait for it), the writer
 * thread at nice writer_nice (td_store_options.writer_nice), and without
 * the check at open if skip_check (td_store_options.skip_check). */
int shop_open_serving_store(td_store **out, const char *db, const char *data,
                            bool each_commit_synced, int writer_nice, bool skip_check);

/* ---- commands ---------------------------------------------------------- */

/* Registers a customer. Their e-mail address and name are sealed under a
 * key of their own. password: at least 10 characters, kept only as an
 * Argon2id hash; NULL registers a user who cannot log in until one is set
 * (shop_set_password in auth/auth.h). */
int shop_register_user(shop *s, const char *email, const char *full_name, const char *password,
                       char id[SHOP_ID_LEN + 1]);
/* Forgets a user: their key is destroyed, so their e-mail address, name and
 * addresses read as erased everywhere (null, with "_erased": true); they can
 * no longer log in and get no more e-mail. Orders, totals and stock stay. */
int shop_forget_user(shop *s, const char *user_id);
int shop_create_category(shop *s, const char *name, char id[SHOP_ID_LEN + 1]);

typedef struct shop_product_input {
    const char *name;
    int64_t price;
    const char *currency;    /* "USD" */
    const char *category_id; /* or NULL */
    int64_t stock;           /* initial stock, >= 0 */
} shop_product_input;

int shop_create_product(shop *s, const shop_product_input *in, char id[SHOP_ID_LEN + 1]);
int shop_change_price(shop *s, const char *product_id, int64_t price);
/* Restocking (positive) or an adjustment; stock never goes below zero. */
int shop_adjust_stock(shop *s, const char *product_id, int64_t quantity_change, const char *reason);

typedef struct shop_order_item {
    const char *product_id;
    int64_t quantity;
} shop_order_item;

typedef struct shop_address {
    const char *line1, *city, *postal_code, *country;
} shop_address;

typedef struct shop_order_input {
    const char *user_id;
    const shop_order_item *items;
    size_t item_count;
    shop_address shipping_address;
    const char *payment_method; /* "card" */
    const char *payment_token;  /* the simulated provider reads it: tok_decline, …; kept
                                   sealed in a document until charged, never in an event */
} shop_order_input;

/* The order-processing saga's name: its instances are keyed by order id
 * (td_saga_get), its subscription is "saga." SHOP_ORDER_SAGA. */
#define SHOP_ORDER_SAGA "order_processing"

/* Places an order in status Pending; the order-processing saga takes it on. */
int shop_place_order(shop *s, const shop_order_input *in, char id[SHOP_ID_LEN + 1]);
int shop_cancel_order(shop *s, const char *order_id);
int shop_ship_order(shop *s, const char *order_id);
int shop_deliver_order(shop *s, const char *order_id);

/* ---- queries: JSON documents; caller owns *out (json_decref) ------------ */
/* Personal fields come opened; a forgotten user's read as null, and the
 * document has "_erased": true. */

int shop_get_user(shop *s, const char *user_id, json_t **out);
int shop_get_product(shop *s, const char *product_id, json_t **out); /* with stock */
int shop_get_order(shop *s, const char *order_id, json_t **out);
/* The order as its placement left it (status Pending): what POST /orders
 * answers, although the saga may have moved it on within the same commit. */
int shop_get_order_as_placed(shop *s, const char *order_id, json_t **out);
int shop_list_categories(shop *s, json_t **out);
/* Products in id order after `after` (NULL: from the first), at most limit:
 * {"products":[…],"next":id or null}. */
int shop_list_products(shop *s, const char *after, size_t limit, json_t **out);

/* From the read models, which follow the events within milliseconds. */
int shop_list_user_orders(shop *s, const char *user_id, json_t **out); /* {"orders":[…]} */
int shop_product_sales(shop *s, const char *product_id, int64_t *units_sold, int64_t *revenue);

#endif
