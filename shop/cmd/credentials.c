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
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cmd/common.h"
#include "cmd/commands.h"

typedef struct options {
    const char *db, *data, *role, *name, *master_key_file;
    const char *words[3];
    int word_count;
} options;

static int usage(FILE *out, int code)
{
    fprintf(
        out,
        "usage: shop keys create --role admin|staff|metrics --name NAME [--db URL | --data DIR]\n"
        "       shop keys list [--db URL | --data DIR]\n"
        "       shop keys revoke NAME [--db URL | --data DIR]\n"
        "  API keys for staff, administrators and metrics scrapers; a new key is printed\n"
        "  once, alone on a line, and only its hash is kept\n"
        "usage: shop users passwd ID [--db URL | --data DIR]\n"
        "       shop users forget ID [--db URL | --data DIR] [--master-key-file FILE]\n"
        "  passwd: sets a user's password, read from standard input (at least 10\n"
        "  characters); forget: erases the user's personal data everywhere\n");
    return code;
}

static int parse(int argc, char **argv, options *o)
{
    static const struct option longs[] = {
        {"db", required_argument, NULL, 'd'},
        {"data", required_argument, NULL, 'D'},
        {"role", required_argument, NULL, 'r'},
        {"name", required_argument, NULL, 'n'},
        {"master-key-file", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", longs, NULL)) != -1 || optind < argc) {
        if (c == -1 && o->word_count == 3) {
            fprintf(stderr, "shop %s: unexpected argument '%s'\n", o->words[0], argv[optind]);
            return 2;
        }
        if (c == -1) { /* a word: keep it and go on past it */
            o->words[o->word_count++] = argv[optind++];
            continue;
        }
        if (c == 'h') {
            usage(stdout, 0);
            return 1;
        }
        if (c == ':' || c == '?') {
            fprintf(stderr, "shop %s: %s '%s'\n", o->words[0],
                    c == ':' ? "a value is needed for" : "unknown option", argv[optind - 1]);
            return 2;
        }
        const char **slot = c == 'd'   ? &o->db
                            : c == 'D' ? &o->data
                            : c == 'r' ? &o->role
                            : c == 'n' ? &o->name
                                       : &o->master_key_file;
        *slot = optarg;
    }
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
    int count = 0, error;
    if (strcmp(verb, "create") == 0) {
        shop_role role = shop_role_parse(o->role);
        if (role == 0 || o->name == NULL)
            return usage(stderr, 2);
        if ((error = shop_key_create(store, role, o->name, key)) == 0) {
            printf("%s\n", key);
            sodium_memzero(key, sizeof key);
        }
    } else if (strcmp(verb, "list") == 0) {
        if ((error = shop_key_list(store, print_key, &count)) == 0 && count == 0)
            printf("no keys\n");
    } else if (strcmp(verb, "revoke") == 0 && o->words[2]) {
        if ((error = shop_key_revoke(store, o->words[2])) == 0)
            printf("revoked %s\n", o->words[2]);
    } else {
        return usage(stderr, 2);
    }
    if (error < 0)
        fprintf(stderr, "shop keys: %s\n", shop_error().message);
    return error == 0 ? 0 : error == TD_EINVAL ? 4 : 1;
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
        return error == TD_EINVAL ? 4 : 1;
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
    return error == 0 ? 0 : error == TD_EINVAL ? 4 : 1;
}

static int users(td_store *store, const options *o)
{
    const char *verb = o->words[1], *id = o->words[2];
    if (id && strcmp(verb, "passwd") == 0)
        return passwd(store, id);
    if (id && strcmp(verb, "forget") == 0)
        return forget(store, o, id);
    return usage(stderr, 2);
}

int shop_credentials_main(int argc, char **argv)
{
    options o = {.data = "data", .words = {argv[0]}, .word_count = 1};
    int rc = parse(argc, argv, &o); /* argv[0], the command, is getopt's program name */
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    if (o.word_count < 2)
        return usage(stderr, 2);
    td_store *store = NULL;
    bool reading = strcmp(o.words[0], "keys") == 0 && strcmp(o.words[1], "list") == 0;
    if (shop_open_store(&store, o.db, o.data, reading ? SHOP_STORE_READ : SHOP_STORE_WRITE) < 0) {
        fprintf(stderr, "shop %s: %s\n", o.words[0], td_error_last());
        return 1;
    }
    rc = strcmp(o.words[0], "keys") == 0 ? keys(store, &o) : users(store, &o);
    td_store_free(store);
    return rc;
}
