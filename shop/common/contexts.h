/*
 * contexts.h: the shop's bounded contexts, which of them a process runs
 * (`shop serve --services LIST`), and what each writes and reads of the
 * others' events, which decides what a process publishes to the broker and
 * what its queue is bound to.
 *
 * A process running some contexts has a store of its own. What it needs of
 * the contexts it does not run reaches it as integration events, appended
 * into its store in the streams they were written to (order-<id>,
 * inventory-<product>, user-<id>), so that its folds and read models read
 * them as they read their own.
 */
#ifndef SHOP_COMMON_CONTEXTS_H
#define SHOP_COMMON_CONTEXTS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum shop_context {
    SHOP_CTX_USERS = 1u << 0,
    SHOP_CTX_CATALOG = 1u << 1,
    SHOP_CTX_INVENTORY = 1u << 2,
    SHOP_CTX_ORDERS = 1u << 3,
    SHOP_CTX_PAYMENTS = 1u << 4,
    SHOP_CTX_NOTIFICATIONS = 1u << 5,
} shop_context;

#define SHOP_CTX_ALL      0x3fu
#define SHOP_CTX_COUNT    6
#define SHOP_CTX_LIST_MAX 64 /* "users,catalog,inventory,orders,payments,notifications" */

/* The name of one context ("orders"); NULL for anything else. */
const char *shop_context_name(unsigned context);

/* Reads LIST: "all", or context names separated by commas, each once.
 * Refuses (-1, why in why) an unknown or repeated name, an empty list, and
 * orders without users: customers' sessions are the users context's, and
 * orders serve customers. */
int shop_contexts_parse(const char *list, unsigned *out, char *why, size_t why_size);

/* The set's names in the shop's order, joined by sep ("users,orders"). */
void shop_contexts_format(unsigned set, char sep, char *buf, size_t size);

/* The event types a process running set takes from the broker: those some
 * context of set reads and some context outside it writes. Fills types
 * (borrowed, static) up to max; returns how many there are. */
size_t shop_contexts_inbound(unsigned set, const char **types, size_t max);

/* Whether some context outside set reads events of type (what a process
 * running set sends to the broker). */
bool shop_contexts_outbound(unsigned set, const char *type);

/* The sources of the events the contexts of set write (for the relay:
 * what it received is not sent out again). Fills out (static, NULL
 * after the last) up to max - 1; returns how many. */
size_t shop_contexts_sources(unsigned set, const char **out, size_t max);

#endif
