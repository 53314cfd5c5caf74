/*
 * main.c: the `tidings` command: operate an event store from the shell.
 *
 *   tidings [--db URL] <command> [arguments]
 *
 * --db may stand anywhere on the line; without it TIDINGS_DB, then
 * sqlite:data/tidings.db (the shop's default store) is used.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_command commands[] = {
    {"init", "", "create the store if it does not exist, or upgrade its schema", cmd_init},
    {"append",
     "STREAM TYPE DATA_JSON|- [--expected-version N|any|no-stream] [--schema-version N] "
     "[--kind domain|integration] [--source S] [--metadata JSON] [--correlation-id ID] "
     "[--causation-id ID]",
     "append one event and print it as stored", cmd_append},
    {"events", "[--stream S] [--category C] [--type T] [--since ISO8601] [--after POS] [--limit N]",
     "print stored events as JSON lines, oldest first", cmd_events},
    {"tail", "[--stream S] [--category C] [--type T] [--after POS]",
     "print new events as JSON lines as they are committed, until interrupted", cmd_tail},
    {"export", "[--after POS] [--output FILE]", "write every event as JSON lines", cmd_export},
    {"import", "FILE|-",
     "append the events of a JSON lines export, keeping ids, versions and positions; "
     "events already present are skipped, and a bad file writes nothing",
     cmd_import},
    {"subscriptions", "",
     "each subscription's checkpoint, lag, events waiting for a retry, and dead letters",
     cmd_subscriptions},
    {"dlq",
     "list|show ID|retry ID|retry --all|drop ID|history [--subscription S] [--type T] "
     "[--stream S] [--by NAME]",
     "inspect the dead-letter queue; ask the subscription to retry or drop an entry (audited)",
     cmd_dlq},
    {"replay",
     "list | --subscription NAME (--from POS | --since ISO8601) [--to POS] [--stream S] "
     "[--type T] [--force-effects] [--by WHO]",
     "hand past events to a subscription's handler again (effects behind its inbox stay once "
     "unless --force-effects); the running subscription carries it out",
     cmd_replay},
    {"audit", "verify [--from POS] [--to POS] | export [--since ISO8601] [--output FILE]",
     "check the tamper-evident hash chain, or export events with their hashes for an auditor",
     cmd_audit},
    {"stats", "", "count events, streams, types and documents; show the size on disk", cmd_stats},
    {"check", "", "verify the store's physical integrity", cmd_check},
};

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

const cli_command *cli_find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void help(FILE *out)
{
    fprintf(out, "usage: tidings [--db URL] [--log-level LEVEL] <command> [arguments]\n\n"
                 "Store URL: --db URL, or TIDINGS_DB, default " CLI_DEFAULT_DB "\n"
                 "Log level: --log-level, or TIDINGS_LOG: debug, info, warn, error, off\n"
                 "  sqlite:PATH or PATH   an SQLite store\n\ncommands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'tidings <command> --help' shows a command's arguments.\n"
                 "Exit codes: 0 ok, 1 failure, 2 usage, 3 version conflict, 4 invalid input.\n");
}

/* If argv[*i] is the global flag `name` (as "--name VALUE" or
 * "--name=VALUE"), stores its value and returns 1; -1 if the value is
 * missing; 0 if it is another word. */
static int global_flag(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

/* Removes the global flags --db and --log-level from argv (they may stand
 * anywhere); returns the new argc, or -1 if one has no value. */
static int take_global_flags(int argc, char **argv, const char **db, const char **log_level)
{
    int out = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc)
                argv[out++] = argv[i++];
            break;
        }
        int rc = global_flag(argc, argv, &i, "--db", db);
        if (rc == 0)
            rc = global_flag(argc, argv, &i, "--log-level", log_level);
        if (rc < 0)
            return -1;
        if (rc == 0)
            argv[out++] = argv[i];
    }
    return out;
}

int main(int argc, char **argv)
{
    const char *db = NULL, *log_level = NULL;
    argc = take_global_flags(argc - 1, argv + 1, &db, &log_level);
    argv++;
    if (argc < 0) {
        fprintf(stderr, "tidings: options '--db' and '--log-level' need a value\n");
        return EXIT_USAGE;
    }
    if (db)
        cli_set_db_url(db);
    if (td_log_to_stderr(log_level) < 0) {
        fprintf(stderr, "tidings: %s\n", td_error_last());
        return EXIT_USAGE;
    }
    if (argc == 0) {
        help(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "help") == 0) {
        help(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[0], "--version") == 0) {
        printf("tidings %s\n", TD_VERSION_STRING);
        return EXIT_OK;
    }
    const cli_command *cmd = cli_find_command(argv[0]);
    if (cmd == NULL) {
        fprintf(stderr, "tidings: unknown command '%s'; see 'tidings --help'\n", argv[0]);
        return EXIT_USAGE;
    }
    return cmd->run(argc - 1, argv + 1);
}
