/*
 * main.c (shop): the `shop` command: one line per subcommand, each in a
 * file of its own under cmd/, each reading its options with the parser
 * every command of this project uses (tools/cmdline.h).
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
#include "cmdline.h"

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

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

/* The list of commands and the exit codes, for --help. */
static const char *epilog(void)
{
    static char text[2048];
    size_t len = (size_t)snprintf(text, sizeof text, "commands:\n");
    for (size_t i = 0; i < COMMAND_COUNT && len < sizeof text; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "  %-13s%s\n", commands[i].name,
                                commands[i].summary);
    if (len < sizeof text)
        snprintf(text + len, sizeof text - len, "\n%s", SHOP_EXIT_CODES_HELP);
    return text;
}

int main(int argc, char **argv)
{
    cmdline c = {.program = "shop",
                 .usage = "COMMAND [options]",
                 .summary = "The ECommerce platform on libtidings. 'shop COMMAND --help' shows a\n"
                            "command's options; 'man shop' says more.",
                 .version = SHOP_VERSION,
                 .epilog = epilog()};
    const char *word = NULL;
    int key;
    cmdline_start(&c, argc, argv);
    key = cmdline_next(&c, &word); /* stops at the command: its options are its own */
    if (key < 0)
        return c.exit_code;
    if (key == 0)
        return cmdline_error(&c, "no command given");
    if (key != CMDLINE_WORD) /* an option of the table; there are none but help and version */
        return cmdline_error(&c, "options go after the command");
    if (strcmp(word, "help") == 0) {
        cmdline_help(&c, stdout);
        return SHOP_EXIT_OK;
    }
    int at = 1;
    while (argv[at] != word)
        at++;
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(word, commands[i].name) == 0)
            return commands[i].main(argc - at, argv + at);
    return cmdline_error(&c, "unknown command '%s'", word);
}
