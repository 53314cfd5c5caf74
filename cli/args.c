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
volatile int cli_stop_requested;

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

static void print_usage(FILE *out, const cli_command *cmd)
{
    fprintf(out, "usage: tidings [--db URL] %s %s\n  %s\n", cmd->name, cmd->usage, cmd->summary);
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "tidings %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    print_usage(stderr, cmd);
    return EXIT_USAGE;
}

static const cli_flag *find_flag(const cli_flag *flags, const char *name, size_t len)
{
    for (; flags && flags->name; flags++)
        if (strlen(flags->name) == len && strncmp(flags->name, name, len) == 0)
            return flags;
    return NULL;
}

/* Handles argv[*i], a word starting with "--"; may consume the next word. */
static int parse_flag(const cli_command *cmd, int argc, char **argv, int *i, const cli_flag *flags)
{
    const char *word = argv[*i];
    const char *eq = strchr(word, '=');
    size_t len = eq ? (size_t)(eq - word) : strlen(word);
    const cli_flag *flag = find_flag(flags, word, len);
    if (flag == NULL)
        return cli_usage_error(cmd, "unknown option '%.*s'", (int)len, word);
    if (!flag->has_value) {
        if (eq)
            return cli_usage_error(cmd, "option '%s' takes no value", flag->name);
        *flag->value = "";
        return 0;
    }
    if (eq) {
        *flag->value = eq + 1;
    } else if (*i + 1 < argc) {
        *flag->value = argv[++*i];
    } else {
        return cli_usage_error(cmd, "option '%s' needs a value", flag->name);
    }
    return 0;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, const cli_flag *flags,
              const char **positional, int min, int max, int *count)
{
    bool options_done = false;
    *count = 0;
    for (int i = 0; i < argc; i++) {
        const char *word = argv[i];
        if (!options_done && strcmp(word, "--help") == 0) {
            print_usage(stdout, cmd);
            return -1;
        }
        if (!options_done && strcmp(word, "--") == 0) {
            options_done = true;
        } else if (!options_done && strncmp(word, "--", 2) == 0) {
            int rc = parse_flag(cmd, argc, argv, &i, flags);
            if (rc != 0)
                return rc;
        } else if (*count >= max) {
            return cli_usage_error(cmd, "unexpected argument '%s'", word);
        } else {
            positional[(*count)++] = word;
        }
    }
    if (*count < min)
        return cli_usage_error(cmd, "missing arguments");
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
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (text[0] == '\0' || *end != '\0' || errno == ERANGE || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_open(td_store **out, bool create, bool read_only)
{
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.create = create;
    opts.read_only = read_only;
    return td_store_open(out, cli_db_url(), &opts);
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
