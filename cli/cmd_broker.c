/*
 * cmd_broker.c: `tidings relay` and `tidings consume`, a store's side of the
 * broker (broker.h) from the shell: relay its integration events to
 * RabbitMQ, or append a queue's messages into it, until interrupted.
 *
 * The broker URL comes from --broker (without a password), --broker-file or
 * TIDINGS_BROKER (tools/broker_url.h); it is shown only redacted. Both print
 * one line when they start and their counters when they stop. `relay
 * rewind` moves a stopped relay's checkpoint back, needing no broker.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker_url.h"
#include "cli.h"

#define TYPES_MAX 64

static int broker_url(const cli_command *cmd, char *url, size_t size, const char *arg,
                      const char *file)
{
    char err[512];
    int rc = broker_url_resolve(url, size, arg, file, err, sizeof err);
    if (rc < 0)
        return cli_usage_error(cmd, "%s", err);
    if (rc == 0)
        return cli_usage_error(cmd, "no broker: give --broker, --broker-file or TIDINGS_BROKER");
    return 0;
}

static void wait_for_signal(void)
{
    struct timespec ts = {0, 100 * 1000000L};
    while (!cli_stop_requested)
        nanosleep(&ts, NULL);
}

static void print_stats(const char *what, const td_broker_stats *s)
{
    fprintf(stderr,
            "tidings %s: %lld connects, %lld published, %lld confirmed, %lld nacked, %lld "
            "consumed, %lld duplicates, %lld redelivered, %lld rejected%s%s\n",
            what, (long long)s->connects, (long long)s->published, (long long)s->confirmed,
            (long long)s->nacked, (long long)s->consumed, (long long)s->duplicates,
            (long long)s->redelivered, (long long)s->rejected,
            s->last_error[0] ? "; last error: " : "", s->last_error);
}

/* `tidings relay rewind --to POS [--name NAME]`: the relay publishes
 * every integration event after POS again (td_relay_rewind). */
static int relay_rewind(const cli_command *cmd, const char *name, const char *to)
{
    int64_t position = 0, was = 0;
    if (to == NULL)
        return cli_usage_error(cmd, "relay rewind needs --to POS");
    if (cli_int(to, 0, INT64_MAX, &position) < 0)
        return cli_usage_error(cmd, "--to must be a position (a whole number >= 0)");
    td_store *store = NULL;
    int error = cli_open(&store, false, false);
    if (error == 0)
        error = td_relay_rewind(store, name, position, &was);
    td_store_free(store);
    if (error < 0)
        return cli_fail(error);
    if (was == position)
        printf("relay '%s': its checkpoint is at %lld already\n", name, (long long)was);
    else
        printf("relay '%s': rewound from %lld to %lld; it publishes the integration events after "
               "%lld again when it next runs\n",
               name, (long long)was, (long long)position, (long long)position);
    return EXIT_OK;
}

int cmd_relay(int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("relay");
    const char *broker = NULL, *file = NULL, *exchange = NULL, *name = NULL, *to = NULL;
    const cli_flag flags[] = {
        {"broker", "URL", "the broker, without a password", &broker},
        {"broker-file", "FILE", "a file (mode 0600) holding the broker URL", &file},
        {"exchange", "NAME", "the topic exchange (default tidings)", &exchange},
        {"name", "NAME", "the relay's name, which keys its checkpoint\n(default relay)", &name},
        {"to", "POS", "rewind: the position to publish again after", &to},
        {NULL, NULL, NULL, NULL}};
    int count;
    char url[1024];
    const char *pos[1];
    int rc = cli_parse(cmd, argc, argv, flags, pos, 0, 1, &count);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    if (count == 1 && strcmp(pos[0], "rewind") == 0)
        return broker || file || exchange
                   ? cli_usage_error(cmd, "relay rewind takes --to and --name only")
                   : relay_rewind(cmd, name ? name : "relay", to);
    if (count == 1)
        return cli_usage_error(cmd, "unknown relay action '%s' (rewind is the one there is)",
                               pos[0]);
    if (to)
        return cli_usage_error(cmd, "--to goes with relay rewind");
    if ((rc = broker_url(cmd, url, sizeof url, broker, file)) != 0)
        return rc;
    td_store *store = NULL;
    td_relay *relay = NULL;
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = name ? name : "relay";
    ro.broker.url = url;
    ro.broker.exchange = exchange;
    cli_catch_signals();
    int error = cli_open(&store, false, false);
    if (error == 0)
        error = td_relay_new(&relay, store, &ro);
    memset(url, 0, sizeof url);
    if (error == 0)
        error = td_relay_start(relay);
    if (error == 0) {
        fprintf(stderr, "tidings relay: relaying integration events to the exchange %s\n",
                exchange ? exchange : "tidings");
        wait_for_signal();
        error = td_relay_stop(relay);
        td_broker_stats s;
        td_relay_stats(relay, &s);
        print_stats("relay", &s);
    }
    td_relay_free(relay);
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}

/* "A,B:2,C" into types (a schema limit after a colon). */
static int parse_types(char *list, td_consumer_type *types, size_t *count)
{
    *count = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        int64_t max = 0;
        if (*count == TYPES_MAX)
            return -1;
        if (colon) {
            *colon = '\0';
            if (cli_int(colon + 1, 1, 1000000, &max) < 0)
                return -1;
        }
        types[(*count)++] = (td_consumer_type){t, (int32_t)max};
    }
    return *count ? 0 : -1;
}

int cmd_consume(int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("consume");
    const char *broker = NULL, *file = NULL, *exchange = NULL, *queue = NULL, *types_arg = NULL,
               *classic = NULL, *prefetch = NULL;
    const cli_flag flags[] = {
        {"broker", "URL", "the broker, without a password", &broker},
        {"broker-file", "FILE", "a file (mode 0600) holding the broker URL", &file},
        {"exchange", "NAME", "the topic exchange (default tidings)", &exchange},
        {"queue", "NAME", "the service's durable queue (required)", &queue},
        {"types", "LIST",
         "the event types to bind, as T or T:MAX_SCHEMA,\ncomma-separated "
         "(required)",
         &types_arg},
        {"classic", NULL, "a classic queue instead of a quorum queue", &classic},
        {"prefetch", "N", "unacknowledged messages at a time (default 256)", &prefetch},
        {NULL, NULL, NULL, NULL}};
    int count;
    char url[1024];
    td_consumer_type types[TYPES_MAX];
    int64_t n = 0;
    const char *pos[1];
    int rc = cli_parse(cmd, argc, argv, flags, pos, 0, 0, &count);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    if (queue == NULL || types_arg == NULL)
        return cli_usage_error(cmd, "--queue and --types are required");
    char *list = strdup(types_arg);
    td_consumer_options co = TD_CONSUMER_OPTIONS_INIT;
    if (list == NULL || parse_types(list, types, &co.type_count) < 0) {
        free(list);
        return cli_usage_error(cmd, "--types takes TYPE[:MAX_SCHEMA],… (at most %d)", TYPES_MAX);
    }
    if (prefetch && cli_int(prefetch, 1, 65535, &n) < 0) {
        free(list);
        return cli_usage_error(cmd, "--prefetch takes a number from 1 to 65535");
    }
    if ((rc = broker_url(cmd, url, sizeof url, broker, file)) != 0) {
        free(list);
        return rc;
    }
    co.queue = queue;
    co.broker.url = url;
    co.broker.exchange = exchange;
    co.types = types;
    co.queue_type = classic ? TD_QUEUE_CLASSIC : TD_QUEUE_QUORUM;
    co.prefetch = (unsigned)n;
    td_store *store = NULL;
    td_consumer *consumer = NULL;
    cli_catch_signals();
    int error = cli_open(&store, true, false);
    if (error == 0)
        error = td_consumer_new(&consumer, store, &co);
    memset(url, 0, sizeof url);
    if (error == 0)
        error = td_consumer_start(consumer);
    if (error == 0) {
        fprintf(stderr, "tidings consume: appending queue %s to the store\n", queue);
        wait_for_signal();
        error = td_consumer_stop(consumer);
        td_broker_stats s;
        td_consumer_stats(consumer, &s);
        print_stats("consume", &s);
    }
    td_consumer_free(consumer);
    td_store_free(store);
    free(list);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}
