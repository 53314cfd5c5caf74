/*
 * contexts.c: the shop's bounded contexts and the table of which of them
 * writes and reads each event type that crosses between them (contexts.h).
 *
 * The table is the one place that says who needs whose facts:
 *
 *   users      UserRegistered, UserForgotten  -> orders, payments, notifications
 *   catalog    ProductCreated, PriceChanged   -> inventory (a product exists), orders (prices)
 *              InventoryUpdate (initial stock)
 *   inventory  InventoryUpdate, StockReserved, InventoryReleased
 *                                             -> catalog (stock on a product)
 *              StockReserved, StockNotReserved -> orders (the saga)
 *   orders     OrderCreated, OrderStatusChanged -> users (a user's orders), catalog
 *                                                (sales), notifications (e-mail)
 *              ReserveInventory, ReleaseInventory -> inventory
 *              ProcessPayment, RefundPayment   -> payments
 *   payments   PaymentProcessed, PaymentRefunded -> orders
 *
 * Every type here is written as an integration event; the rest (a
 * category's creation, say) stay domain events of their context.
 */
#include <stdio.h>
#include <string.h>

#include "common/contexts.h"

static const char *const names[SHOP_CTX_COUNT] = {"users",  "catalog",  "inventory",
                                                  "orders", "payments", "notifications"};

#define U SHOP_CTX_USERS
#define C SHOP_CTX_CATALOG
#define I SHOP_CTX_INVENTORY
#define O SHOP_CTX_ORDERS
#define P SHOP_CTX_PAYMENTS
#define N SHOP_CTX_NOTIFICATIONS

static const struct {
    const char *type;
    unsigned writers, readers;
} shared[] = {
    {"UserRegistered", U, O | N},      {"UserForgotten", U, O | P | N},
    {"ProductCreated", C, I | O},      {"ProductPriceChanged", C, I | O},
    {"InventoryUpdate", C | I, C | I}, {"StockReserved", I, C | O},
    {"StockNotReserved", I, O},        {"InventoryReleased", I, C},
    {"OrderCreated", O, U | C | N},    {"OrderStatusChanged", O, U | C | N},
    {"ReserveInventory", O, I},        {"ReleaseInventory", O, I},
    {"ProcessPayment", O, P},          {"RefundPayment", O, P},
    {"PaymentProcessed", P, O},        {"PaymentRefunded", P, O},
};

const char *shop_context_name(unsigned context)
{
    for (unsigned i = 0; i < SHOP_CTX_COUNT; i++)
        if (context == 1u << i)
            return names[i];
    return NULL;
}

int shop_contexts_parse(const char *list, unsigned *out, char *why, size_t why_size)
{
    unsigned set = 0;
    if (list && strcmp(list, "all") == 0) {
        *out = SHOP_CTX_ALL;
        return 0;
    }
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, ",");
        unsigned found = 0;
        for (unsigned i = 0; i < SHOP_CTX_COUNT; i++)
            if (strlen(names[i]) == len && strncmp(names[i], p, len) == 0)
                found = 1u << i;
        if (found == 0 || (set & found)) {
            snprintf(why, why_size,
                     "%s service '%.*s' in --services: name each of users, catalog, inventory, "
                     "orders, payments, notifications at most once, or say all",
                     found ? "a repeated" : "no", (int)(len > 40 ? 40 : len), p);
            return -1;
        }
        set |= found;
        p += len + (p[len] == ',');
    }
    if (set == 0) {
        snprintf(why, why_size, "--services needs at least one service, or all");
        return -1;
    }
    if ((set & SHOP_CTX_ORDERS) && !(set & SHOP_CTX_USERS)) {
        snprintf(why, why_size,
                 "--services: orders runs with users in one process (customers' sessions are "
                 "kept by users, and orders serve customers)");
        return -1;
    }
    *out = set;
    return 0;
}

void shop_contexts_format(unsigned set, char sep, char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    for (unsigned i = 0; i < SHOP_CTX_COUNT; i++)
        if (set & (1u << i)) {
            int n = snprintf(buf + used, size - used, "%s%s", used ? (char[]){sep, '\0'} : "",
                             names[i]);
            if (n < 0 || (size_t)n >= size - used)
                return;
            used += (size_t)n;
        }
}

size_t shop_contexts_inbound(unsigned set, const char **types, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
        if ((shared[i].readers & set) && (shared[i].writers & ~set)) {
            if (n < max)
                types[n] = shared[i].type;
            n++;
        }
    return n;
}

size_t shop_contexts_sources(unsigned set, const char **out, size_t max)
{
    size_t n = 0;
    for (unsigned i = 0; i < SHOP_CTX_COUNT; i++)
        if ((set & (1u << i)) && n + 1 < max)
            out[n++] = names[i];
    if (max > 0)
        out[n] = NULL;
    return n;
}

bool shop_contexts_outbound(unsigned set, const char *type)
{
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
        if (strcmp(shared[i].type, type) == 0)
            return (shared[i].readers & ~set) != 0;
    return false;
}
