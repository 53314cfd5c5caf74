/*
 * projections_cmd.c (shop): `shop projections`, the read models for
 * operators: their progress, and rebuilds (readmodels/rebuild.c).
 *
 *   shop projections list [--db URL | --data DIR]
 *   shop projections rebuild NAME [--db URL | --data DIR] [--cache N]
 *
 * One line per read model: its name, the position it has handled up to,
 * its lag behind the store's head, and its state: "caught-up", "catching-up"
 * (behind, working), "retrying" (an event waits for a delayed retry),
 * "stalled" (events parked in its dead-letter queue: `tidings dlq list`
 * says which) or "not-started" (it has never run on this store).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/commands.h"
#include "shop_int.h"

typedef struct row {
    bool seen;
    td_subscription_status status;
} row;

static int keep_status(const char *name, const td_subscription_status *st, void *payload)
{
    row *rows = payload;
    for (int i = 0; i < SHOP_READ_MODELS; i++)
        if (strcmp(name, shop_read_models[i].subscription) == 0)
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
                    "  each read model's position, lag and state\n"
                    "usage: shop projections rebuild NAME [--db URL | --data DIR] [--cache N]\n"
                    "  builds a fresh copy of read model NAME from the whole log while the live\n"
                    "  one keeps serving, then swaps it in atomically; it keeps up to N\n"
                    "  documents and N orders in memory (default 50000, at most about 1 KiB\n"
                    "  each)\n");
    return 2;
}

static int list(td_store *store)
{
    row rows[SHOP_READ_MODELS] = {0};
    int64_t head = 0;
    int error = td_store_head(store, &head);
    if (error == 0)
        error = td_subscriptions_list(store, keep_status, rows);
    if (error < 0) {
        fprintf(stderr, "shop projections: %s\n", td_error_last());
        return 1;
    }
    printf("%-24s %12s %10s  %s\n", "PROJECTION", "POSITION", "LAG", "STATE");
    for (int i = 0; i < SHOP_READ_MODELS; i++)
        printf("%-24s %12lld %10lld  %s\n", shop_read_models[i].base,
               (long long)rows[i].status.position,
               (long long)(rows[i].seen ? rows[i].status.lag_events : head), state_of(&rows[i]));
    return 0;
}

static int rebuild(td_store *store, const char *name, const shop_rebuild_options *opts)
{
    shop_rebuild_report r;
    if (shop_rebuild_read_model(store, name, opts, &r) < 0) {
        fprintf(stderr, "shop projections: %s\n", shop_error().message);
        return 1;
    }
    printf("rebuilt %s: generation %lld, %lld events in %.2f s (%.0f events/s), live through "
           "position %lld\n",
           name, (long long)r.generation, (long long)r.events, r.seconds,
           r.seconds > 0 ? (double)r.events / r.seconds : 0.0, (long long)r.built_through);
    return 0;
}

int shop_projections_main(int argc, char **argv)
{
    argc--, argv++; /* past the command's name */
    const char *db = NULL, *data = "data", *name = NULL, *cache = NULL;
    bool is_list = argc >= 1 && strcmp(argv[0], "list") == 0;
    bool is_rebuild = argc >= 2 && strcmp(argv[0], "rebuild") == 0;
    if (!is_list && !is_rebuild)
        return usage();
    if (is_rebuild)
        name = argv[1];
    for (int i = is_rebuild ? 2 : 1; i < argc; i++) {
        const char **value = strcmp(argv[i], "--db") == 0                    ? &db
                             : strcmp(argv[i], "--data") == 0                ? &data
                             : is_rebuild && strcmp(argv[i], "--cache") == 0 ? &cache
                                                                             : NULL;
        if (value == NULL || i + 1 >= argc)
            return usage();
        *value = argv[++i];
    }
    shop_rebuild_options opts = {0};
    if (cache) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(cache, &end, 10);
        if (errno || end == cache || *end || cache[0] == '-' || n < 1 || n > 100000000) {
            fprintf(stderr, "shop projections: --cache takes a count from 1 to 100000000\n");
            return 2;
        }
        opts.cache = (size_t)n;
    }
    td_store *store = NULL;
    if (shop_open_store(&store, db, data, is_list ? SHOP_STORE_READ : SHOP_STORE_WRITE) < 0) {
        fprintf(stderr, "shop projections: %s\n", td_error_last());
        return 1;
    }
    int code = is_list ? list(store) : rebuild(store, name, &opts);
    td_store_free(store);
    return code;
}
