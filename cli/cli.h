/*
 * cli.h: what the `tidings` command's files share.
 *
 * Each command is a function taking argv from its own name on. Options are
 * declared as a table, each described, and parsed by the parser every
 * command of this project uses (tools/cmdline.h, getopt_long) through
 * cli_parse (args.c), which also takes --db and --log-level from anywhere
 * on the line and handles -h/--help and --version.
 * Exit codes (DESIGN.md): 0 ok, 1 failure, 2 usage, 3 expected-version
 * conflict, 4 invalid input.
 */
#ifndef TD_CLI_H
#define TD_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "cmdline.h"
#include "tidings/tidings.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CONFLICT = 3, EXIT_INVALID = 4 };

#define CLI_DEFAULT_DB     "sqlite:data/tidings.db"
#define CLI_MAX_POSITIONAL 8

typedef struct cli_flag {
    const char *name;   /* "limit", for --limit */
    const char *arg;    /* the value's name ("N"), or NULL for a switch */
    const char *help;   /* what it does, for --help */
    const char **value; /* set to the value, or to "" for a switch */
} cli_flag;

typedef struct cli_command {
    const char *name;
    const char *usage;   /* arguments after "tidings NAME"; "\n" separates forms */
    const char *summary; /* a sentence or two; the first line is listed by --help */
    int (*run)(int argc, char **argv);
} cli_command;

/* --skip-check: open stores without the check at open (td_store_options). */
void cli_set_skip_check(bool skip);

/* The store URL: --db, else TIDINGS_DB, else CLI_DEFAULT_DB. */
const char *cli_db_url(void);
void cli_set_db_url(const char *url);

/* Parses argv (argv[0]: the command's name) against flags (ended by a NULL
 * name) and the common options, and collects the other words into
 * positional (at least min, at most max). Prints why and returns
 * EXIT_USAGE on a bad line, 0 on success, and -1 after printing help or
 * the version (the command then exits 0). */
int cli_parse(const cli_command *cmd, int argc, char **argv, const cli_flag *flags,
              const char **positional, int min, int max, int *count);

/* Prints "tidings: <message>" for the thread's last error and maps the code
 * to an exit code. */
int cli_fail(int code);

/* Prints "tidings <cmd>: <message>" and the usage; returns EXIT_USAGE. */
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
/* Read-only, without the check at open: for the commands that check the
 * store themselves (check, audit). */
int cli_open_unchecked(td_store **out);

/* 0 if a subscription called name has run on store; else prints so and
 * returns EXIT_FAIL (a filter naming nothing is an error, as an unknown id
 * is), or the exit code of a failed read. */
int cli_check_subscription(const cli_command *cmd, td_store *store, const char *name);

/* Sends stdout to the file at path (made or emptied); 0, or EXIT_FAIL after
 * saying why. */
int cli_output_to(const char *path);

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
int cmd_instances(int argc, char **argv);
int cmd_dlq(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_relay(int argc, char **argv);
int cmd_consume(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_documents(int argc, char **argv);

const cli_command *cli_find_command(const char *name);

/* The options every command takes (--db, --log-level), and what one of
 * them does with its value: 0, or EXIT_USAGE after saying why. */
extern const cmdline_option cli_common_options[];
int cli_common_option(int key, const char *value);
/* Sends the log to stderr at the level of --log-level or TIDINGS_LOG. */
int cli_start_log(void);

#endif
