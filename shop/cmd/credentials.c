/*
 * credentials.c (shop commands): `shop keys` and `shop users`, for
 * operators.
 *
 *   shop keys create --role admin|staff|metrics --name NAME
 *   shop keys list
 *   shop keys revoke NAME
 *   shop users passwd ID          (the new password on standard input)
 *   shop users forget ID
 *
 * Each takes --db URL or --data DIR (and users forget --master-key-file)
 * anywhere on the line. A new key is printed once, alone on its line on
 * standard output: nothing keeps it but its hash. Passwords are read from
 * standard input, never from the command line, where other users of the
 * machine could read them in the process list.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cmd/common.h"
#include "cmd/commands.h"

typedef struct options {
    const char *db, *data, *role, *name, *master_key_file;
    const char *words[3]; /* "keys"/"users", the verb, its argument */
    int word_count;
    cmdline line;
} options;

static const cmdline_option keys_options[] = {
    {"role", 'r', "ROLE", "create: admin, staff or metrics"},
    {"name", 'n', "NAME", "create: the key's name, unique"},
    {NULL, 0, NULL, NULL},
};

static const cmdline_option users_options[] = {
    {"master-key-file", 'k', "FILE",
     "forget: the key that seals personal data\n(default DATA/master.key)"},
    {NULL, 0, NULL, NULL},
};

static const cmdline keys_line = {
    .program = "shop keys",
    .usage = "create --role admin|staff|metrics --name NAME [options]\nlist [options]\n"
             "revoke NAME [options]",
    .summary = "API keys for staff, administrators and metrics scrapers. A new key is\n"
               "printed once, alone on a line; only its hash is kept.",
    .version = SHOP_VERSION,
    .options = keys_options,
    .common = shop_cmd_store_options,
    .epilog = SHOP_EXIT_CODES_HELP,
};

static const cmdline users_line = {
    .program = "shop users",
    .usage = "passwd ID [options]\nforget ID [options]",
    .summary = "passwd: sets a user's password, read from standard input (at least 10\n"
               "characters, never on the command line); forget: erases the user's\n"
               "personal data everywhere.",
    .version = SHOP_VERSION,
    .options = users_options,
    .common = shop_cmd_store_options,
    .epilog = SHOP_EXIT_CODES_HELP,
};

/* Returns 0 to go on, or 1 + the exit code to stop with. */
static int parse(int argc, char **argv, options *o)
{
    const char *value;
    int key;
    o->line = strcmp(argv[0], "keys") == 0 ? keys_line : users_line;
    cmdline_start(&o->line, argc, argv);
    while ((key = cmdline_next(&o->line, &value)) > 0) {
        if (key == CMDLINE_WORD && o->word_count == 3)
            return 1 + cmdline_error(&o->line, "unexpected argument '%s'", value);
        if (key == CMDLINE_WORD) {
            o->words[o->word_count++] = value;
            continue;
        }
        const char **slot = key == 'd'   ? &o->db
                            : key == 'D' ? &o->data
                            : key == 'r' ? &o->role
                            : key == 'n' ? &o->name
                                         : &o->master_key_file;
        *slot = value;
    }
    if (key < 0)
        return 1 + o->line.exit_code;
    if (o->word_count < 2)
        return 1 + cmdline_error(&o->line, "what to do is missing");
    return 0;
}

static int print_key(const char *name, const char *role, const char *created_at, void *payload)
{
    int *count = payload;
    if ((*count)++ == 0)
        printf("%-24s %-8s %s\n", "NAME", "ROLE", "CREATED");
    printf("%-24s %-8s %s\n", name, role, created_at);
    return 0;
}

static int keys(td_store *store, const options *o)
{
    const char *verb = o->words[1];
    char key[SHOP_TOKEN_LEN + 1];
    int count = 0, error = 0;
    if (strcmp(verb, "create") == 0) {
        shop_role role = shop_role_parse(o->role);
        if ((error = shop_key_create(store, role, o->name, key)) == 0) {
            printf("%s\n", key);
            sodium_memzero(key, sizeof key);
        }
    } else if (strcmp(verb, "list") == 0) {
        if ((error = shop_key_list(store, print_key, &count)) == 0 && count == 0)
            printf("no keys\n");
    } else if (strcmp(verb, "revoke") == 0) {
        if ((error = shop_key_revoke(store, o->words[2])) == 0)
            printf("revoked %s\n", o->words[2]);
    }
    if (error < 0)
        fprintf(stderr, "shop keys: %s\n", shop_error().message);
    return error == 0 ? SHOP_EXIT_OK : error == TD_EINVAL ? SHOP_EXIT_INVALID : SHOP_EXIT_FAIL;
}

static int passwd(td_store *store, const char *id)
{
    char password[SHOP_PASSWORD_MAX + 2];
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "new password for %s (at least %d characters): ", id, SHOP_PASSWORD_MIN);
    int len = shop_cmd_read_line(STDIN_FILENO, password, sizeof password);
    int error = len < 0 ? TD_EIO : shop_set_password(store, id, password);
    sodium_memzero(password, sizeof password);
    if (error < 0) {
        fprintf(stderr, "shop users: %s\n", shop_error().message);
        return error == TD_EINVAL ? SHOP_EXIT_INVALID : SHOP_EXIT_FAIL;
    }
    printf("password set for %s\n", id);
    return 0;
}

static int forget(td_store *store, const options *o, const char *id)
{
    unsigned char master[TD_MASTER_KEY_BYTES];
    bool created = false;
    shop *s = NULL;
    shop_options so = {.data_dir = o->data, .passive = true, .master_key = master};
    if (shop_cmd_master_key(master, store, o->master_key_file, o->data, false, "shop users",
                            &created) < 0)
        return 1;
    int error = shop_open(&s, store, &so);
    sodium_memzero(master, sizeof master);
    if (error == 0)
        error = shop_forget_user(s, id);
    if (error < 0)
        fprintf(stderr, "shop users: %s\n", shop_error().message);
    else
        printf("forgot %s: their personal data now reads as erased\n", id);
    shop_close(s);
    return error == 0 ? SHOP_EXIT_OK : error == TD_EINVAL ? SHOP_EXIT_INVALID : SHOP_EXIT_FAIL;
}

static int users(td_store *store, const options *o)
{
    return strcmp(o->words[1], "passwd") == 0 ? passwd(store, o->words[2])
                                              : forget(store, o, o->words[2]);
}

/* The verb and its argument make sense, before the store is opened: 0 or
 * the exit code. */
static int check_words(const options *o)
{
    const char *verb = o->words[1];
    bool keys = strcmp(o->words[0], "keys") == 0;
    bool known = keys ? strcmp(verb, "create") == 0 || strcmp(verb, "list") == 0 ||
                            strcmp(verb, "revoke") == 0
                      : strcmp(verb, "passwd") == 0 || strcmp(verb, "forget") == 0;
    bool takes_id = strcmp(verb, "revoke") == 0 || !keys;
    if (!known)
        return cmdline_error(&o->line, "unknown action '%s'", verb);
    if (takes_id && o->word_count < 3)
        return cmdline_error(&o->line, "%s needs %s", verb,
                             keys ? "the key's NAME" : "the user's ID");
    if (!takes_id && o->word_count > 2)
        return cmdline_error(&o->line, "unexpected argument '%s'", o->words[2]);
    if (keys && strcmp(verb, "create") != 0 && (o->role || o->name))
        return cmdline_error(&o->line, "--role and --name go with create");
    if (keys && strcmp(verb, "create") == 0 && (o->role == NULL || o->name == NULL))
        return cmdline_error(&o->line, "keys create needs --role and --name");
    if (o->role && shop_role_parse(o->role) == 0)
        return cmdline_error(&o->line, "--role must be admin, staff or metrics, not '%s'", o->role);
    if (o->master_key_file && strcmp(verb, "forget") != 0)
        return cmdline_error(&o->line, "--master-key-file goes with forget");
    return 0;
}

int shop_credentials_main(int argc, char **argv)
{
    options o = {.data = "data", .words = {argv[0]}, .word_count = 1};
    int rc = parse(argc, argv, &o);
    if (rc != 0)
        return rc - 1;
    if ((rc = check_words(&o)) != 0)
        return rc;
    td_store *store = NULL;
    bool reading = strcmp(o.words[0], "keys") == 0 && strcmp(o.words[1], "list") == 0;
    if (shop_open_store(&store, o.db, o.data, reading ? SHOP_STORE_READ : SHOP_STORE_WRITE) < 0) {
        fprintf(stderr, "shop %s: %s\n", o.words[0], td_error_last());
        return SHOP_EXIT_FAIL;
    }
    rc = strcmp(o.words[0], "keys") == 0 ? keys(store, &o) : users(store, &o);
    td_store_free(store);
    return rc;
}
