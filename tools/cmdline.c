/*
 * cmdline.c: reading a command line for `tidings` and the `shop` commands
 * (cmdline.h): getopt_long over a documented table of options.
 */
#include "cmdline.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define KEY_VERSION 0x7fff0001

static const cmdline_option builtin[] = {
    {"help", 'h', NULL, "show this help and exit"},
    {"version", KEY_VERSION, NULL, "print the version and exit"},
    {NULL, 0, NULL, NULL},
};

static void add_table(cmdline *c, size_t *n, const cmdline_option *table)
{
    for (; table && table->name && *n < CMDLINE_MAX_OPTIONS + 2; table++, (*n)++) {
        c->table[*n] = table;
        c->longs[*n] = (struct option){table->name, table->arg ? required_argument : no_argument,
                                       NULL, table->key};
    }
}

void cmdline_start(cmdline *c, int argc, char **argv)
{
    size_t n = 0;
    memset(c->longs, 0, sizeof c->longs);
    memset(c->table, 0, sizeof c->table);
    add_table(c, &n, c->options);
    add_table(c, &n, c->common);
    add_table(c, &n, builtin);
    c->argc = argc;
    c->argv = argv;
    c->rest = 0;
    c->exit_code = 0;
    optind = 0; /* glibc: start afresh */
    opterr = 0; /* messages are ours */
}

static void print_usage(const cmdline *c, FILE *out)
{
    const char *form = c->usage ? c->usage : "";
    bool first = true;
    do {
        size_t len = strcspn(form, "\n");
        fprintf(out, "%s %s %.*s\n", first ? "usage:" : "      ", c->program, (int)len, form);
        form += len + (form[len] == '\n');
        first = false;
    } while (*form);
}

static void vreport(const cmdline *c, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vreport(const cmdline *c, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", c->program);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    print_usage(c, stderr);
    fprintf(stderr, "Try '%s --help' for more.\n", c->program);
}

int cmdline_error(const cmdline *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(c, fmt, ap);
    va_end(ap);
    return CMDLINE_USAGE;
}

/* cmdline_error for cmdline_next: sets the exit code and returns -1. */
static int usage_error(cmdline *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(cmdline *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(c, fmt, ap);
    va_end(ap);
    c->exit_code = CMDLINE_USAGE;
    return -1;
}

/* The option word as given, up to any "=value". */
static int word_len(const char *word)
{
    return (int)strcspn(word, "=");
}

static int bad_option(cmdline *c, int key, int at)
{
    const char *word = at < c->argc ? c->argv[at] : "";
    if (key == ':')
        return usage_error(c, "option '%.*s' needs a value", word_len(word), word);
    if (strncmp(word, "--", 2) == 0 && optopt != 0)
        return usage_error(c, "option '%.*s' takes no value", word_len(word), word);
    if (strncmp(word, "--", 2) == 0)
        return usage_error(c, "unknown option '%.*s'", word_len(word), word);
    return usage_error(c, "unknown option '-%c'", optopt ? optopt : '?');
}

int cmdline_next(cmdline *c, const char **value)
{
    *value = NULL;
    if (c->rest > 0) { /* the words after "--" */
        if (c->rest >= c->argc)
            return 0;
        *value = c->argv[c->rest++];
        return CMDLINE_WORD;
    }
    int at = optind > 0 ? optind : 1, index = -1;
    /* "-": words come back in order as key 1; ":": a missing value is ':' */
    int key = getopt_long(c->argc, c->argv, "-:h", c->longs, &index);
    if (key == -1) {
        c->rest = optind < c->argc ? optind : c->argc;
        return cmdline_next(c, value);
    }
    if (key == 1) {
        *value = optarg;
        return CMDLINE_WORD;
    }
    if (key == '?' || key == ':')
        return bad_option(c, key, at);
    if (index >= 0) { /* refuse abbreviations: the name must be spelled out */
        const char *word = c->argv[at] + 2;
        size_t len = (size_t)word_len(word);
        if (len != strlen(c->longs[index].name) || strncmp(word, c->longs[index].name, len) != 0)
            return usage_error(c, "unknown option '--%.*s'", (int)len, word);
    }
    if (key == 'h') {
        cmdline_help(c, stdout);
        c->exit_code = 0;
        return -1;
    }
    if (key == KEY_VERSION) {
        printf("%.*s %s\n", (int)strcspn(c->program, " "), c->program,
               c->version ? c->version : "");
        c->exit_code = 0;
        return -1;
    }
    *value = optarg;
    return key;
}

static void print_table(FILE *out, const cmdline_option *table)
{
    enum { COLUMN = 24 };
    for (; table && table->name; table++) {
        char left[96];
        snprintf(left, sizeof left, "%s--%s%s%s", table->key == 'h' ? "-h, " : "", table->name,
                 table->arg ? " " : "", table->arg ? table->arg : "");
        const char *help = table->help ? table->help : "";
        size_t len = strcspn(help, "\n");
        if (strlen(left) + 2 > COLUMN)
            fprintf(out, "  %s\n  %-*s  %.*s\n", left, COLUMN - 2, "", (int)len, help);
        else
            fprintf(out, "  %-*s  %.*s\n", COLUMN - 2, left, (int)len, help);
        while (help[len] == '\n') {
            help += len + 1;
            len = strcspn(help, "\n");
            fprintf(out, "  %-*s  %.*s\n", COLUMN - 2, "", (int)len, help);
        }
    }
}

void cmdline_help(const cmdline *c, FILE *out)
{
    print_usage(c, out);
    if (c->summary)
        fprintf(out, "\n%s\n", c->summary);
    if (c->options && c->options->name) {
        fprintf(out, "\noptions:\n");
        print_table(out, c->options);
    }
    fprintf(out, "\n%s:\n", c->options && c->options->name ? "common options" : "options");
    print_table(out, c->common);
    print_table(out, builtin);
    if (c->epilog)
        fprintf(out, "\n%s\n", c->epilog);
}

int cmdline_int(const char *text, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (text[0] == '\0' || *end != '\0' || errno == ERANGE || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}
