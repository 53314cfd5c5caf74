/*
 * passwords.c (shop auth): customers' passwords and logging in.
 *
 * Passwords are kept only as Argon2id hashes (libsodium crypto_pwhash_str,
 * the interactive limits: about 60 ms and 64 MiB per hash here). Hashing
 * is the costliest thing the shop does for one request, so at most
 * SHOP_AUTH_HASHERS run at once (a counting semaphore); the others wait
 * their turn rather than exhaust memory and cores. A login for an address
 * nobody registered verifies against a fixed hash all the same, so the
 * answer takes as long and says the same as for a wrong password.
 */
#include <pthread.h>
#include <semaphore.h>
#include <string.h>

#include "auth/auth.h"
#include "shop_int.h"

static sem_t hashers;
static pthread_once_t hashers_once = PTHREAD_ONCE_INIT;
static char decoy[crypto_pwhash_STRBYTES]; /* a hash nobody's password matches */

static void start_hashers(void)
{
    static const char nobody[] = "no password is this one, not even by chance";
    if (sem_init(&hashers, 0, SHOP_AUTH_HASHERS) != 0 ||
        crypto_pwhash_str(decoy, nobody, sizeof nobody - 1, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        decoy[0] = '\0'; /* then every login fails closed */
}

static void take_hasher(void)
{
    (void)pthread_once(&hashers_once, start_hashers);
    while (sem_wait(&hashers) != 0)
        ; /* EINTR */
}

static void give_hasher(void)
{
    sem_post(&hashers);
}

int shop_password_check(const char *password)
{
    int error = check_text(password, "/password", SHOP_PASSWORD_MAX);
    if (error == 0 && strlen(password) < SHOP_PASSWORD_MIN)
        error = shop_fail(TD_EINVAL, "validation_failed", "/password",
                          "password must be at least %d characters", SHOP_PASSWORD_MIN);
    return error;
}

int shop_password_hash(const char *password, char *out, size_t size)
{
    if (size < crypto_pwhash_STRBYTES)
        return shop_fail(TD_EINVAL, "internal_error", NULL, "password hash buffer too small");
    take_hasher();
    int rc = crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                               crypto_pwhash_MEMLIMIT_INTERACTIVE);
    give_hasher();
    return rc == 0 ? 0 : shop_fail(TD_ENOMEM, "internal_error", NULL, "cannot hash the password");
}

static bool verify(const char *hash, const char *password)
{
    take_hasher();
    bool ok = hash && hash[0] && crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
    give_hasher();
    return ok;
}

/* The password hash of the account behind email: *user_id and *hash, or
 * hash NULL when there is none (no such address, no password set). */
static int find_account(shop *s, const char *email, char user_id[SHOP_ID_LEN + 1],
                        json_t **credentials)
{
    char lookup[TD_LOOKUP_HEX_LEN + 1], *text = NULL;
    shop_email_lookup(s, email, lookup);
    *credentials = NULL;
    user_id[0] = '\0';
    int error = td_store_doc_get(s->store, SHOP_USER_LOOKUP, lookup, &text, NULL);
    json_t *index = error == 0 ? json_loads(text, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(index, "user_id"));
    td_free(text);
    text = NULL;
    if (id && strlen(id) == SHOP_ID_LEN) {
        memcpy(user_id, id, SHOP_ID_LEN + 1);
        error = td_store_doc_get(s->store, SHOP_AUTH_USERS, user_id, &text, NULL);
        *credentials = error == 0 ? json_loads(text, 0, NULL) : NULL;
        td_free(text);
    }
    json_decref(index);
    return error == TD_ENOTFOUND ? 0 : error;
}

int shop_login(shop *s, const char *email, const char *password, int64_t ttl_s, shop_session *out)
{
    char user_id[SHOP_ID_LEN + 1];
    json_t *credentials = NULL;
    if (email == NULL || password == NULL)
        return shop_fail(TD_EINVAL, "validation_failed", email ? "/password" : "/email",
                         "email and password are required");
    int error = find_account(s, email, user_id, &credentials);
    const char *hash = json_string_value(json_object_get(credentials, "password"));
    bool ok = verify(hash ? hash : decoy, password) && hash != NULL;
    json_decref(credentials);
    if (error < 0)
        return shop_fail_td(error);
    if (!ok)
        return shop_fail(TD_ENOTFOUND, "invalid_credentials", NULL,
                         "the e-mail address or the password is wrong");
    return shop_session_start(s, user_id, ttl_s, out);
}

typedef struct password_cmd {
    shop_cmd cmd;
    const char *user_id, *hash;
} password_cmd;

static int password_unit(td_txn *txn, void *payload)
{
    password_cmd *c = payload;
    char *text = NULL;
    int error = td_txn_doc_get(txn, SHOP_AUTH_USERS, c->user_id, &text, NULL);
    json_t *credentials = error == 0 ? json_loads(text, 0, NULL) : NULL;
    td_free(text);
    if (error == TD_ENOTFOUND) /* no such user, or forgotten */
        return cmd_fail(&c->cmd, TD_ENOTFOUND, "not_found", NULL, "no user %s", c->user_id);
    if (error == 0 && (credentials == NULL ||
                       json_object_set_new(credentials, "password", json_string(c->hash)) < 0))
        error = TD_ECORRUPT;
    if (error == 0)
        error = td_txn_doc_put_json(txn, SHOP_AUTH_USERS, c->user_id, credentials);
    json_decref(credentials);
    return error;
}

int shop_set_password(td_store *store, const char *user_id, const char *password)
{
    char hash[crypto_pwhash_STRBYTES];
    int error = check_id(user_id, "/user_id");
    if (error == 0)
        error = shop_password_check(password);
    if (error == 0)
        error = shop_password_hash(password, hash, sizeof hash);
    if (error < 0)
        return error;
    password_cmd c = {.user_id = user_id, .hash = hash};
    return shop_run(store, password_unit, &c);
}
