/*
 * cli.h: what the `tidings` command's files share.
 *
 * Each command is a function taking the words after its name. Options are
 * declared as a table and parsed by one parser (args.c), which also takes
 * --db from anywhere on the line, handles --help and refuses unknown flags.
 * Exit codes (DESIGN.md): 0 ok, 1 failure, 2 usage, 3 expected-version
 * conflict, 4 invalid input.
 */
#ifndef TD_CLI_H
#define TD_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "tidings/tidings.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CONFLICT = 3, EXIT_INVALID = 4 };

#define CLI_DEFAULT_DB     "sqlite:data/tidings.db"
#define CLI_MAX_POSITIONAL 8

typedef struct cli_flag {
    const char *name; /* "--limit" */
    bool has_value;
    const char **value; /* set to the value, or to "" for a switch */
} cli_flag;

typedef struct cli_command {
    const char *name;
    const char *usage;   /* arguments and flags, after "tidings NAME" */
    const char *summary; /* one line */
    int (*run)(int argc, char **argv);
} cli_command;

/* The store URL: --db, else TIDINGS_DB, else CLI_DEFAULT_DB. */
const char *cli_db_url(void);
void cli_set_db_url(const char *url);

/* Parses argv against flags (NULL-terminated by name) and collects the other
 * words into positional (at most max). Prints usage and returns EXIT_USAGE
 * on a bad line, 0 on success, and -1 after printing help for --help. */
int cli_parse(const cli_command *cmd, int argc, char **argv, const cli_flag *flags,
              const char **positional, int min, int max, int *count);

/* Prints "tidings: <message>" for the thread's last error and maps the code
 * to an exit code. */
int cli_fail(int code);

/* Prints "tidings <cmd>: <message>" and returns EXIT_USAGE. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The exit code for a TD_E… code. */
int cli_exit_code(int code);

/* Strict integer parsing: the whole text, within [min, max]. */
int cli_int(const char *text, int64_t min, int64_t max, int64_t *out);

/* The position of the first event at or after an ISO-8601 time; 0 if none.
 * TD_EINVAL for a time that does not parse. */
int cli_first_position_since(td_store *store, const char *since, int64_t *position);

/* Opens the store at cli_db_url(). create: make it if missing. */
int cli_open(td_store **out, bool create, bool read_only);

/* Prints an event as one JSON line on stdout. */
int cli_print_event(const td_event *event, void *payload);

/* Installs SIGINT/SIGTERM handlers that set cli_stop_requested. */
void cli_catch_signals(void);
extern volatile int cli_stop_requested;

/* The commands. */
int cmd_init(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_append(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_subscriptions(int argc, char **argv);
int cmd_dlq(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_audit(int argc, char **argv);

const cli_command *cli_find_command(const char *name);

#endif
