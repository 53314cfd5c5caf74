/*
 * args.c: option parsing, error reporting and small helpers shared by the
 * `tidings` commands.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *db_url_flag;
static bool skip_check_flag;
volatile int cli_stop_requested;

void cli_set_skip_check(bool skip)
{
    skip_check_flag = skip;
}

void cli_set_db_url(const char *url)
{
    db_url_flag = url;
}

const char *cli_db_url(void)
{
    const char *env = getenv("TIDINGS_DB");
    if (db_url_flag)
        return db_url_flag;
    return env && env[0] ? env : CLI_DEFAULT_DB;
}

enum { KEY_DB = 512, KEY_LOG_LEVEL, KEY_SKIP_CHECK, KEY_FLAG = 1024 };

const cmdline_option cli_common_options[] = {
    {"db", KEY_DB, "URL",
     "the store: sqlite:PATH (or a PATH), or\npostgres://USER@HOST:PORT/DBNAME "
     "(default\nTIDINGS_DB, else " CLI_DEFAULT_DB ")"},
    {"log-level", KEY_LOG_LEVEL, "LEVEL",
     "debug, info, warn, error or off\n(default TIDINGS_LOG, else info)"},
    {"skip-check", KEY_SKIP_CHECK, NULL,
     "open a store that fails the check made at open (its\n"
     "schema, size, last events and audit links); 'check'\nchecks in full"},
    {NULL, 0, NULL, NULL},
};

static const char *log_level_flag;

int cli_common_option(int key, const char *value)
{
    if (key == KEY_DB)
        cli_set_db_url(value);
    else if (key == KEY_LOG_LEVEL)
        log_level_flag = value;
    else if (key == KEY_SKIP_CHECK)
        cli_set_skip_check(true);
    return 0;
}

int cli_start_log(void)
{
    return td_log_to_stderr(log_level_flag);
}

/* The command's parser, for messages: "tidings events". */
static void describe(cmdline *c, const cli_command *cmd, char *program, size_t size)
{
    snprintf(program, size, "tidings %s", cmd->name);
    *c = (cmdline){.program = program,
                   .usage = cmd->usage,
                   .summary = cmd->summary,
                   .version = TD_VERSION_STRING,
                   .common = cli_common_options};
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    char program[64], message[1024];
    cmdline c;
    va_list ap;
    describe(&c, cmd, program, sizeof program);
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return cmdline_error(&c, "%s", message);
}

int cli_parse(const cli_command *cmd, int argc, char **argv, const cli_flag *flags,
              const char **positional, int min, int max, int *count)
{
    cmdline_option table[CMDLINE_MAX_OPTIONS];
    char program[64];
    cmdline c;
    size_t n = 0;
    for (; flags && flags[n].name && n + 1 < CMDLINE_MAX_OPTIONS; n++)
        table[n] = (cmdline_option){flags[n].name, KEY_FLAG + (int)n, flags[n].arg, flags[n].help};
    table[n] = (cmdline_option){NULL, 0, NULL, NULL};
    describe(&c, cmd, program, sizeof program);
    c.options = table;
    cmdline_start(&c, argc, argv);
    *count = 0;
    const char *value;
    int key;
    while ((key = cmdline_next(&c, &value)) > 0) {
        if (key == CMDLINE_WORD && *count >= max)
            return cli_usage_error(cmd, "unexpected argument '%s'", value);
        if (key == CMDLINE_WORD)
            positional[(*count)++] = value;
        else if (key >= KEY_FLAG)
            *flags[key - KEY_FLAG].value = value ? value : "";
        else
            cli_common_option(key, value);
    }
    if (key < 0)
        return c.exit_code == 0 ? -1 : c.exit_code;
    if (*count < min)
        return cli_usage_error(cmd, "missing arguments");
    if (cli_start_log() < 0)
        return cli_usage_error(cmd, "%s", td_error_last());
    return 0;
}

int cli_fail(int code)
{
    const char *message = td_error_last();
    fprintf(stderr, "tidings: %s\n", message[0] ? message : td_error_name(code));
    return cli_exit_code(code);
}

int cli_exit_code(int code)
{
    switch (code) {
    case TD_ECONFLICT:
        return EXIT_CONFLICT;
    case TD_EINVAL:
    case TD_ETOOBIG:
    case TD_EEXISTS:
        return EXIT_INVALID;
    default:
        return EXIT_FAIL;
    }
}

int cli_int(const char *text, int64_t min, int64_t max, int64_t *out)
{
    return cmdline_int(text, min, max, out);
}

static int open_store(td_store **out, bool create, bool read_only, bool skip_check)
{
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.create = create;
    opts.read_only = read_only;
    opts.skip_check = skip_check;
    return td_store_open(out, cli_db_url(), &opts);
}

int cli_open(td_store **out, bool create, bool read_only)
{
    return open_store(out, create, read_only, skip_check_flag);
}

int cli_open_unchecked(td_store **out)
{
    return open_store(out, false, true, true);
}

int cli_print_event(const td_event *event, void *payload)
{
    char *text = NULL;
    size_t len = 0;
    (void)payload;
    int error = td_event_to_text(&text, &len, event);
    if (error < 0)
        return error;
    fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    td_free(text);
    return ferror(stdout) ? TD_EIO : 0;
}

static void on_signal(int sig)
{
    (void)sig;
    cli_stop_requested = 1;
}

void cli_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int keep_first_position(const td_event *ev, void *payload)
{
    *(int64_t *)payload = ev->position;
    return 1;
}

int cli_first_position_since(td_store *store, const char *since, int64_t *position)
{
    td_read_query q = TD_READ_QUERY_INIT;
    int error = td_time_parse(&q.since, since);
    q.limit = 1;
    *position = 0;
    return error < 0 ? error : td_store_read(store, &q, keep_first_position, position);
}

static int note_name(const char *name, const td_subscription_status *st, void *payload)
{
    (void)st;
    const char **wanted = payload;
    if (*wanted && strcmp(name, *wanted) == 0)
        *wanted = NULL; /* found */
    return 0;
}

int cli_check_subscription(const cli_command *cmd, td_store *store, const char *name)
{
    const char *wanted = name;
    unsigned partitions = 0;
    int error = td_subscriptions_list(store, note_name, &wanted);
    if (error == 0 && wanted) /* a partitioned name runs under its partitions' names */
        error = td_partition_count(store, name, &partitions);
    if (error < 0)
        return cli_fail(error);
    if (wanted == NULL || partitions > 0)
        return 0;
    fprintf(stderr,
            "tidings %s: no subscription '%s' has run on this store ('tidings subscriptions' "
            "lists them)\n",
            cmd->name, name);
    return EXIT_FAIL; /* as for any other id or name the store does not have */
}

int cli_output_to(const char *path)
{
    if (freopen(path, "w", stdout) != NULL)
        return 0;
    fprintf(stderr, "tidings: cannot write '%s': %s\n", path, strerror(errno));
    return EXIT_FAIL;
}
