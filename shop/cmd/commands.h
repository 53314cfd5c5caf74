/*
 * commands.h (shop commands): the `shop` command's subcommands, each in a
 * file of its own under shop/cmd/. Each takes argv from its own name on
 * (argv[0] is "serve", "load", …) and returns the exit code.
 *
 * Exit codes, the same for every subcommand, each with one meaning:
 *   0 done
 *   1 failed (the store, the network, a file, a failed check)
 *   2 usage: a bad command line (tools/cmdline.h)
 *   3 the target is not empty (migrate)
 *   4 invalid input: a value the shop refuses (a bad name, password or role)
 */
#ifndef SHOP_CMD_COMMANDS_H
#define SHOP_CMD_COMMANDS_H

#include "tidings/tidings.h"

#define SHOP_VERSION TD_VERSION_STRING

enum {
    SHOP_EXIT_OK = 0,
    SHOP_EXIT_FAIL = 1,
    SHOP_EXIT_USAGE = 2, /* CMDLINE_USAGE */
    SHOP_EXIT_NOT_EMPTY = 3,
    SHOP_EXIT_INVALID = 4,
};

#define SHOP_EXIT_CODES_HELP                                                                       \
    "Exit codes: 0 done, 1 failed, 2 usage, 3 the target is not empty (migrate),\n"                \
    "4 invalid input."

int shop_serve_main(int argc, char **argv);       /* serve.c */
int shop_load_main(int argc, char **argv);        /* load.c */
int shop_migrate_main(int argc, char **argv);     /* migrate.c */
int shop_projections_main(int argc, char **argv); /* projections.c */
int shop_credentials_main(int argc, char **argv); /* credentials.c: keys, users */

#endif
