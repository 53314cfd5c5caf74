/*
 * commands.h (shop commands): the `shop` command's subcommands, each in a
 * file of its own under shop/cmd/. Each takes argv from its own name on
 * (argv[0] is "serve", "load", …) and returns the exit code.
 *
 * Exit codes, the same for every subcommand:
 *   0 done   1 failed   2 usage   3 the target is not empty (migrate)
 *   4 invalid input (a bad name, password or role)
 */
#ifndef SHOP_CMD_COMMANDS_H
#define SHOP_CMD_COMMANDS_H

int shop_serve_main(int argc, char **argv);       /* serve.c */
int shop_load_main(int argc, char **argv);        /* load.c */
int shop_migrate_main(int argc, char **argv);     /* migrate.c */
int shop_projections_main(int argc, char **argv); /* projections.c */
int shop_credentials_main(int argc, char **argv); /* credentials.c: keys, users */

#endif
