/*
 * projections_cmd.c (shop): `shop projections list`, the read models'
 * progress for operators.
 *
 *   shop projections list [--db URL | --data DIR]
 *
 * One line per read model: its name, the position it has handled up to,
 * its lag behind the store's head, and its state: "caught-up", "catching-up"
 * (behind, working), "retrying" (an event waits for a delayed retry),
 * "stalled" (events parked in its dead-letter queue: `tidings dlq list`
 * says which) or "not-started" (it has never run on this store).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projections_cmd.h"
#include "shop_int.h"

typedef struct row {
    bool seen;
    td_subscription_status status;
} row;

static int keep_status(const char *name, const td_subscription_status *st, void *payload)
{
    row *rows = payload;
    for (int i = 0; i < SHOP_READ_MODELS; i++)
        if (strcmp(name, shop_read_model_names[i]) == 0)
            rows[i] = (row){true, *st};
    return 0;
}

static const char *state_of(const row *r)
{
    return !r->seen                     ? "not-started"
           : r->status.dead_letters > 0 ? "stalled"
           : r->status.in_retry > 0     ? "retrying"
           : r->status.lag_events > 0   ? "catching-up"
                                        : "caught-up";
}

static int usage(void)
{
    fprintf(stderr, "usage: shop projections list [--db URL | --data DIR]\n"
                    "  each read model's position, lag and state\n");
    return 2;
}

int shop_projections_main(int argc, char **argv)
{
    const char *db = NULL, *data = "data";
    if (argc < 1 || strcmp(argv[0], "list") != 0)
        return usage();
    for (int i = 1; i < argc; i++) {
        const char **value = strcmp(argv[i], "--db") == 0     ? &db
                             : strcmp(argv[i], "--data") == 0 ? &data
                                                              : NULL;
        if (value == NULL || i + 1 >= argc)
            return usage();
        *value = argv[++i];
    }
    td_store *store = NULL;
    row rows[SHOP_READ_MODELS] = {0};
    int64_t head = 0;
    int error = shop_open_store(&store, db, data, true);
    if (error == 0)
        error = td_store_head(store, &head);
    if (error == 0)
        error = td_subscriptions_list(store, keep_status, rows);
    if (error < 0) {
        fprintf(stderr, "shop projections: %s\n", td_error_last());
        td_store_free(store);
        return 1;
    }
    printf("%-24s %12s %10s  %s\n", "PROJECTION", "POSITION", "LAG", "STATE");
    for (int i = 0; i < SHOP_READ_MODELS; i++)
        printf("%-24s %12lld %10lld  %s\n", shop_read_model_names[i] + strlen("readmodel."),
               (long long)rows[i].status.position,
               (long long)(rows[i].seen ? rows[i].status.lag_events : head), state_of(&rows[i]));
    td_store_free(store);
    return 0;
}
