/*
 * projections.c (shop commands): `shop projections`, the read models for
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
#include "cmd/common.h"
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

static const cmdline_option projections_options[] = {
    {"cache", 'c', "N",
     "rebuild: keep up to N documents and N orders in\nmemory, 1..100000000 (default 50000, "
     "at most\nabout 1 KiB each)"},
    {NULL, 0, NULL, NULL},
};

static const cmdline projections_line = {
    .program = "shop projections",
    .usage = "list [options]\nrebuild NAME [options]",
    .summary = "list: each read model's position, lag and state. rebuild: builds a fresh\n"
               "copy of read model NAME from the whole log while the live one keeps\n"
               "serving, then swaps it in atomically.",
    .version = SHOP_VERSION,
    .options = projections_options,
    .common = shop_cmd_store_options,
    .epilog = SHOP_EXIT_CODES_HELP,
};

static int list(td_store *store)
{
    row rows[SHOP_READ_MODELS] = {0};
    int64_t head = 0;
    int error = td_store_head(store, &head);
    if (error == 0)
        error = td_subscriptions_list(store, keep_status, rows);
    if (error < 0) {
        fprintf(stderr, "shop projections: %s\n", td_error_last());
        return SHOP_EXIT_FAIL;
    }
    printf("%-24s %12s %10s  %s\n", "PROJECTION", "POSITION", "LAG", "STATE");
    for (int i = 0; i < SHOP_READ_MODELS; i++)
        printf("%-24s %12lld %10lld  %s\n", shop_read_models[i].projection.name,
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
    if (r.skipped > 0) /* unreadable: the live read model parked them in its dead letters */
        printf("skipped %lld unreadable event%s:\n", (long long)r.skipped,
               r.skipped == 1 ? "" : "s");
    for (size_t i = 0; i < r.skipped_listed; i++) {
        char id[TD_UUID_STR_LEN + 1];
        td_uuid_format(id, &r.skipped_events[i].id);
        printf("  position %lld  id %s\n", (long long)r.skipped_events[i].position, id);
    }
    if (r.skipped > (int64_t)r.skipped_listed)
        printf("  and %lld more\n", (long long)(r.skipped - (int64_t)r.skipped_listed));
    return 0;
}

int shop_projections_main(int argc, char **argv)
{
    const char *db = NULL, *data = "data", *cache = NULL, *words[2] = {NULL, NULL}, *value;
    cmdline line = projections_line;
    int key, count = 0;
    cmdline_start(&line, argc, argv);
    while ((key = cmdline_next(&line, &value)) > 0) {
        if (key == CMDLINE_WORD && count == 2)
            return cmdline_error(&line, "unexpected argument '%s'", value);
        if (key == CMDLINE_WORD)
            words[count++] = value;
        else
            *(key == 'd' ? &db : key == 'D' ? &data : &cache) = value;
    }
    if (key < 0)
        return line.exit_code;
    bool is_list = count >= 1 && strcmp(words[0], "list") == 0;
    bool is_rebuild = count >= 1 && strcmp(words[0], "rebuild") == 0;
    if (!is_list && !is_rebuild)
        return count == 0 ? cmdline_error(&line, "list or rebuild?")
                          : cmdline_error(&line, "unknown action '%s'", words[0]);
    if (is_list && count > 1)
        return cmdline_error(&line, "unexpected argument '%s'", words[1]);
    if (is_rebuild && count < 2)
        return cmdline_error(&line, "rebuild needs the NAME of a read model");
    if (is_list && cache)
        return cmdline_error(&line, "--cache goes with rebuild");
    const char *name = words[1];
    shop_rebuild_options opts = {0};
    int64_t n = 0;
    if (cache && cmdline_int(cache, 1, 100000000, &n) < 0)
        return cmdline_error(&line, "--cache takes a count from 1 to 100000000, not '%s'", cache);
    opts.cache = (size_t)n;
    td_store *store = NULL;
    if (shop_open_store(&store, db, data, is_list ? SHOP_STORE_READ : SHOP_STORE_WRITE) < 0) {
        fprintf(stderr, "shop projections: %s\n", td_error_last());
        return SHOP_EXIT_FAIL;
    }
    int code = is_list ? list(store) : rebuild(store, name, &opts);
    td_store_free(store);
    return code;
}
