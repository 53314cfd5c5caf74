/*
 * main.c (shop): the `shop` command: one line per subcommand, each in a
 * file of its own under cmd/.
 *
 *   shop serve …        the HTTP API (cmd/serve.c)
 *   shop load …         a load generator against a running shop (cmd/load.c)
 *   shop migrate …      a copy of the store at the current schemas (cmd/migrate.c)
 *   shop projections …  the read models: progress, rebuilds (cmd/projections.c)
 *   shop keys …         API keys (cmd/credentials.c)
 *   shop users …        passwords, forgetting a user (cmd/credentials.c)
 */
#include <stdio.h>
#include <string.h>

#include "cmd/commands.h"

static const struct {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", shop_serve_main, "serve the shop's HTTP API"},
    {"load", shop_load_main, "place orders against a running shop and check the outcome"},
    {"migrate", shop_migrate_main, "copy the store, every event at its current schema"},
    {"projections", shop_projections_main, "the read models: list, rebuild"},
    {"keys", shop_credentials_main, "API keys: create, list, revoke"},
    {"users", shop_credentials_main, "users: passwd, forget"},
};

static int usage(FILE *out, int code)
{
    fprintf(out, "usage: shop COMMAND [options]   (shop COMMAND --help for its options)\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    return code;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0))
        return usage(stdout, 0);
    for (size_t i = 0; argc >= 2 && i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].main(argc - 1, argv + 1);
    if (argc >= 2)
        fprintf(stderr, "shop: unknown command '%s'\n", argv[1]);
    return usage(stderr, 2);
}
