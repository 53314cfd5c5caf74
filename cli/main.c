/*
 * main.c: the `tidings` command: operate an event store from the shell.
 *
 *   tidings [--db URL] [--log-level LEVEL] [--skip-check] <command> [arguments]
 *
 * --db, --log-level and --skip-check may stand anywhere on the line
 * (args.c); without
 * --db, TIDINGS_DB, then sqlite:data/tidings.db (the shop's default store)
 * is used.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_command commands[] = {
    {"init", "", "Create the store if it does not exist, or upgrade its\nschema.", cmd_init},
    {"append", "STREAM TYPE DATA_JSON|- [options]",
     "Append one event (its data as JSON, or - to read it from\n"
     "standard input) and print it as stored.",
     cmd_append},
    {"events", "[options]", "Print stored events as JSON lines, oldest first.", cmd_events},
    {"tail", "[options]",
     "Print new events as JSON lines as they are committed,\nuntil interrupted.", cmd_tail},
    {"export", "[options]", "Write every event as JSON lines.", cmd_export},
    {"import", "FILE|-",
     "Append the events of a JSON lines export, keeping ids,\n"
     "versions and positions; events already present are skipped,\n"
     "and a bad file writes nothing.",
     cmd_import},
    {"subscriptions", "",
     "Each subscription's checkpoint, lag, events waiting for a\nretry, dead letters, and "
     "which process runs it.",
     cmd_subscriptions},
    {"instances", "",
     "The processes sharing the store's subscriptions (several\n'shop serve', say): live, or "
     "gone lately.",
     cmd_instances},
    {"dlq", "list [options]\nshow ID\nretry ID|--all [options]\ndrop ID [--by NAME]\nhistory",
     "Inspect the dead-letter queue; ask the subscription to retry\n"
     "or drop an entry (audited).",
     cmd_dlq},
    {"replay", "--subscription NAME (--from POS | --since TIME) [options]\nlist",
     "Hand past events to a subscription's handler again (effects\n"
     "behind its inbox stay once unless --force-effects); the running\n"
     "subscription carries it out. 'replay list' shows the replays\n"
     "not yet carried out.",
     cmd_replay},
    {"audit", "verify [--from POS] [--to POS]\nexport [--since ISO8601] [--output FILE]",
     "Check the tamper-evident hash chain, or export events with\n"
     "their hashes for an auditor.",
     cmd_audit},
    {"relay", "[--broker URL | --broker-file FILE] [options]\nrewind --to POS [--name NAME]",
     "Publish the store's integration events to RabbitMQ (broker\n"
     "URL also from TIDINGS_BROKER), with confirms, until\ninterrupted. "
     "'relay rewind' makes a stopped relay publish\nthe integration events after POS again.",
     cmd_relay},
    {"consume", "--queue NAME --types LIST [options]",
     "Append a RabbitMQ queue's integration events into the store,\n"
     "once each, until interrupted; unusable ones are parked in\n"
     "the dead-letter queue of NAME.intake.",
     cmd_consume},
    {"documents", "[COLLECTION]",
     "Print a collection's documents as JSON lines, by key; without\n"
     "a collection, list the collections that hold one.",
     cmd_documents},
    {"stats", "", "Count events, streams, types and documents; show the size\non disk.", cmd_stats},
    {"check", "",
     "Check the store in full: every page, the schema, every\n"
     "index's last entries, the whole audit chain.",
     cmd_check},
};

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

const cli_command *cli_find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* The list of commands and the exit codes, for --help. */
static const char *epilog(void)
{
    static char text[4096];
    size_t len = (size_t)snprintf(text, sizeof text, "commands:\n");
    for (size_t i = 0; i < COMMAND_COUNT && len < sizeof text; i++) {
        const char *line = commands[i].summary;
        size_t n = strcspn(line, "\n");
        len += (size_t)snprintf(text + len, sizeof text - len, "  %-14s%.*s\n", commands[i].name,
                                (int)n, line);
        for (; line[n] == '\n' && len < sizeof text; n = strcspn(line, "\n")) {
            line += n + 1;
            len += (size_t)snprintf(text + len, sizeof text - len, "  %-14s%.*s\n", "",
                                    (int)strcspn(line, "\n"), line);
        }
    }
    if (len < sizeof text)
        snprintf(text + len, sizeof text - len,
                 "\n'tidings COMMAND --help' shows a command's arguments and options;\n"
                 "'man tidings' says more.\n"
                 "Exit codes: 0 ok, 1 failure, 2 usage, 3 expected-version conflict,\n"
                 "4 invalid input.");
    return text;
}

int main(int argc, char **argv)
{
    cmdline c = {.program = "tidings",
                 .usage = "[--db URL] [--log-level LEVEL] [--skip-check] COMMAND [arguments]",
                 .summary = "Operate a tidings event store from the shell.",
                 .version = TD_VERSION_STRING,
                 .common = cli_common_options,
                 .epilog = epilog()};
    const char *word = NULL;
    int key;
    cmdline_start(&c, argc, argv);
    while ((key = cmdline_next(&c, &word)) > 0 && key != CMDLINE_WORD)
        cli_common_option(key, word);
    if (key < 0)
        return c.exit_code;
    if (key == 0)
        return cmdline_error(&c, "no command given");
    if (strcmp(word, "help") == 0) {
        cmdline_help(&c, stdout);
        return EXIT_OK;
    }
    const cli_command *cmd = cli_find_command(word);
    if (cmd == NULL)
        return cmdline_error(&c, "unknown command '%s'", word);
    int at = 1;
    while (argv[at] != word)
        at++;
    return cmd->run(argc - at, argv + at);
}
