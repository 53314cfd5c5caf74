/*
 * cmd_store.c: the store-wide commands: init, stats, check.
 */
#include <stdio.h>

#include "cli.h"

/* Parses a command that takes no arguments; returns -1 to go on, else an
 * exit code. */
static int parse_bare(const char *name, int argc, char **argv)
{
    const char *positional[1];
    int count;
    int rc = cli_parse(cli_find_command(name), argc, argv, NULL, positional, 0, 0, &count);
    return rc == -1 ? EXIT_OK : rc != 0 ? rc : -1;
}

int cmd_init(int argc, char **argv)
{
    td_store *store = NULL;
    td_store_stats stats;
    int rc = parse_bare("init", argc, argv);
    if (rc >= 0)
        return rc;
    int error = cli_open(&store, true, false);
    if (error == 0)
        error = td_store_stats_get(store, &stats);
    if (error == 0)
        printf("%s store ready at %s (schema %d, %lld events)\n", td_store_backend(store),
               td_store_url(store), stats.schema_version, (long long)stats.events);
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}

static int print_type(const char *type, int64_t count, void *payload)
{
    (void)payload;
    printf("type %s: %lld\n", type, (long long)count);
    return 0;
}

int cmd_stats(int argc, char **argv)
{
    td_store *store = NULL;
    td_store_stats s;
    int rc = parse_bare("stats", argc, argv);
    if (rc >= 0)
        return rc;
    int error = cli_open(&store, false, true);
    if (error == 0)
        error = td_store_stats_get(store, &s);
    if (error == 0) {
        printf("backend: %s\nurl: %s\nschema_version: %d\nevents: %lld\nstreams: %lld\n"
               "types: %lld\ndocuments: %lld\nhead_position: %lld\nbytes: %lld\n",
               td_store_backend(store), td_store_url(store), s.schema_version, (long long)s.events,
               (long long)s.streams, (long long)s.types, (long long)s.documents, (long long)s.head,
               (long long)s.bytes);
        error = td_store_type_counts(store, print_type, NULL);
    }
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}

int cmd_check(int argc, char **argv)
{
    td_store *store = NULL;
    int rc = parse_bare("check", argc, argv);
    if (rc >= 0)
        return rc;
    int error = cli_open_unchecked(&store); /* the full check includes the one at open */
    if (error == 0)
        error = td_store_check(store);
    if (error == 0)
        printf("ok\n");
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}
