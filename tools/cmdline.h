/*
 * cmdline.h: how `tidings` and every `shop` command read their command
 * line: glibc's getopt_long over one table per command that also documents
 * each option, so --help lists exactly what is parsed.
 *
 * The conventions, the same everywhere:
 *   -h, --help     prints the command's help on stdout; exit 0
 *   --version      prints "<program> <version>"; exit 0
 *   a bad line     "<command>: <what is wrong>", the usage lines and a hint
 *                  on stderr; exit 2 (CMDLINE_USAGE)
 * Options and words may be mixed in any order ("--" ends the options);
 * --name=value and --name value both work; long options must be spelled
 * out (no abbreviations: a prefix that happens to match is refused).
 *
 *   cmdline c = {.program = "shop serve", .usage = "[options]", .options = opts};
 *   const char *value;
 *   int key;
 *   cmdline_start(&c, argc, argv);        argv[0]: the command's own name
 *   while ((key = cmdline_next(&c, &value)) > 0)
 *       switch (key) { case CMDLINE_WORD: …  case 'd': …  }
 *   if (key < 0)
 *       return c.exit_code;               help, version or a usage error
 *
 * Not thread-safe (getopt's globals); used from main's thread only.
 */
#ifndef TD_TOOLS_CMDLINE_H
#define TD_TOOLS_CMDLINE_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CMDLINE_USAGE       2  /* the exit code of a bad command line */
#define CMDLINE_MAX_OPTIONS 48 /* per command, common ones included */
#define CMDLINE_WORD        1  /* cmdline_next: a word that is not an option */

typedef struct cmdline_option {
    const char *name; /* the long name without "--"; NULL ends a table */
    int key;          /* what cmdline_next returns: a letter, or a code >= 256 */
    const char *arg;  /* the value's name ("URL"), or NULL for a switch */
    const char *help; /* what it does; lines after a "\n" are indented */
} cmdline_option;

typedef struct cmdline {
    const char *program; /* "tidings events", "shop serve": starts every message */
    const char *usage;   /* what follows program in the usage line; "\n" separates forms */
    const char *summary; /* a sentence or two, printed under the usage by --help */
    const char *version; /* printed by --version after the program's first word */
    const cmdline_option *options; /* this command's; may be NULL */
    const cmdline_option *common;  /* options every command of the program takes; may be NULL */
    const char *epilog;            /* printed last by --help (exit codes, …); may be NULL */
    /* set by cmdline_next */
    int exit_code; /* when it returned < 0: 0 after help or version, 2 after an error */
    /* parsing state */
    int argc;
    char **argv;
    int rest; /* words after "--" still to hand out, from index rest */
    struct option longs[CMDLINE_MAX_OPTIONS + 3];
    const cmdline_option *table[CMDLINE_MAX_OPTIONS + 3];
} cmdline;

/* Prepares to parse argv[1..argc-1] (argv[0] is the command's name). */
void cmdline_start(cmdline *c, int argc, char **argv);

/* The next option's key, with its value in *value (NULL for a switch);
 * CMDLINE_WORD with the word in *value; 0 at the end; or -1 after handling
 * --help or --version or reporting a bad option (exit with c->exit_code). */
int cmdline_next(cmdline *c, const char **value);

/* Prints the full help: usage, summary, each option described, epilog. */
void cmdline_help(const cmdline *c, FILE *out);

/* Reports a usage error ("<program>: <message>", the usage, a hint) and
 * returns CMDLINE_USAGE, for `return cmdline_error(&c, "…")`. */
int cmdline_error(const cmdline *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whole numbers: the whole text, in [min, max]; 0 or -1. */
int cmdline_int(const char *text, int64_t min, int64_t max, int64_t *out);

#endif
