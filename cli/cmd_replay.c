/*
 * cmd_replay.c: `tidings replay`, asking a subscription to hand past events
 * to its handler again (subscription.h). The request is durable; whichever
 * process runs the subscription carries it out.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int print_pending(const char *id, const char *subscription, int64_t next, int64_t to,
                         void *payload)
{
    int *rows = payload;
    if ((*rows)++ == 0)
        printf("%-36s %-32s %12s %12s\n", "REPLAY", "SUBSCRIPTION", "NEXT", "TO");
    printf("%-36s %-32s %12lld %12lld\n", id, subscription, (long long)next, (long long)to);
    return 0;
}

/* `tidings replay list`: the replays not yet carried out to their end. */
static int list(void)
{
    td_store *store = NULL;
    int rows = 0, error = cli_open(&store, false, true);
    if (error == 0)
        error = td_replay_list(store, print_pending, &rows);
    if (error == 0 && rows == 0)
        printf("no replays pending\n");
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}

int cmd_replay(int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("replay");
    const char *name = NULL, *from = NULL, *since = NULL, *to = NULL, *stream = NULL, *type = NULL,
               *force = NULL, *by = NULL, *pos[1];
    const cli_flag flags[] = {
        {"subscription", "NAME",
         "the subscription whose handler gets the events\n(one that exists)", &name},
        {"from", "POS", "replay from this position", &from},
        {"since", "ISO8601", "or from the first event at or after this time", &since},
        {"to", "POS", "up to this position (default the head)", &to},
        {"stream", "S", "only events of this stream", &stream},
        {"type", "T", "only events of this type", &type},
        {"force-effects", NULL, "run effects again even where the inbox says they\nhappened",
         &force},
        {"by", "WHO", "who asks, recorded with the replay", &by},
        {NULL, NULL, NULL, NULL}};
    int count;
    int rc = cli_parse(cmd, argc, argv, flags, pos, 0, 1, &count);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    if (count == 1 && strcmp(pos[0], "list") == 0 && !name && !from && !since)
        return list();
    if (count == 1)
        return cli_usage_error(cmd, "unknown replay action '%s'", pos[0]);
    if (name == NULL)
        return cli_usage_error(cmd, "--subscription is required");
    if ((from == NULL) == (since == NULL))
        return cli_usage_error(cmd, "give one of --from POS and --since ISO8601");
    td_replay_request r = {name, 0, 0, stream, type, force != NULL, by};
    if (from && cli_int(from, 1, INT64_MAX, &r.from) < 0)
        return cli_usage_error(cmd, "--from must be a position >= 1");
    if (to && cli_int(to, 1, INT64_MAX, &r.to) < 0)
        return cli_usage_error(cmd, "--to must be a position >= 1");
    td_store *store = NULL;
    char id[TD_REPLAY_ID_LEN + 1];
    int error = cli_open(&store, false, false);
    if (error == 0 && (rc = cli_check_subscription(cmd, store, name)) != 0) {
        td_store_free(store);
        return rc;
    }
    if (error == 0 && since && (error = cli_first_position_since(store, since, &r.from)) == 0 &&
        r.from == 0) {
        td_store_free(store);
        printf("no events since %s: nothing to replay\n", since);
        return EXIT_OK;
    }
    if (error == 0)
        error = td_replay_request_add(store, &r, id);
    if (error == 0)
        printf("replay %s requested: %s gets positions %lld..%s again%s\n", id, name,
               (long long)r.from, to ? to : "head", r.force_effects ? ", effects forced" : "");
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}
