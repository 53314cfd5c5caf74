/*
 * auth.h (shop): who is calling, and the credentials that say so.
 *
 * Four roles and a scraper's: anonymous (no credentials), customer (a
 * registered user with a session token from their password), staff and
 * admin (API keys), and metrics (an API key that may only scrape
 * /metrics). Credentials travel as bearer tokens:
 *
 *   shop_s_<43 base64url characters>   a customer's session: 32 random bytes
 *   shop_k_<43 base64url characters>   an API key: 32 random bytes
 *
 * The prefix lets a secret scanner recognise a leaked token. The store
 * keeps only their BLAKE2b hashes (a token is random, so a fast hash is
 * enough), and passwords only as Argon2id hashes (crypto_pwhash_str):
 *
 *   auth_users/<user id>      {"password": "$argon2id$…" (absent: none set),
 *                              "lookup": keyed hash of the e-mail}
 *   user_lookup/<keyed hash>  {"user_id"}: the lowercased e-mail's owner
 *   auth_sessions/<hash>      {"user_id","created_at","expires_at"}
 *   auth_keys/<hash>          {"name","role","created_at"}
 *   auth_key_names/<name>     {"hash","role","created_at"}
 *
 * Password hashing is slow on purpose (about 60 ms and 64 MiB each), so it
 * runs outside units of work and at most SHOP_AUTH_HASHERS at a time; a
 * login for an unknown address runs one too, so timing does not tell
 * whether an account exists.
 *
 * Threads: every function here is safe from any thread.
 */
#ifndef SHOP_AUTH_AUTH_H
#define SHOP_AUTH_AUTH_H

#include "shop.h"

#define SHOP_TOKEN_LEN         50 /* "shop_x_" and 43 characters */
#define SHOP_KEY_NAME_MAX      64
#define SHOP_PASSWORD_MIN      10
#define SHOP_PASSWORD_MAX      1024
#define SHOP_AUTH_HASHERS      2           /* password hashes at once */
#define SHOP_SESSION_TTL_S     (24 * 3600) /* default session lifetime */
#define SHOP_SESSION_TTL_MAX_S (365 * 24 * 3600)

typedef enum shop_role {
    SHOP_ROLE_ANONYMOUS = 1 << 0,
    SHOP_ROLE_CUSTOMER = 1 << 1,
    SHOP_ROLE_STAFF = 1 << 2,
    SHOP_ROLE_ADMIN = 1 << 3,
    SHOP_ROLE_METRICS = 1 << 4,
} shop_role;

typedef struct shop_principal {
    shop_role role;
    char user_id[SHOP_ID_LEN + 1];       /* a customer's */
    char name[SHOP_KEY_NAME_MAX + 1];    /* an API key's name */
    char session[TD_LOOKUP_HEX_LEN + 1]; /* a customer's session (its hash) */
} shop_principal;

/* "admin", "staff", "metrics", "customer", "anonymous". */
const char *shop_role_name(shop_role role);
/* An API key's role from its name (admin, staff, metrics); 0 if none. */
shop_role shop_role_parse(const char *name);

/* Who token is: 0 with *out, or TD_ENOTFOUND (unknown, revoked, expired,
 * or the user forgotten) with the shop error invalid_token. */
int shop_authenticate(shop *s, const char *token, shop_principal *out);

/* ---- customers ------------------------------------------------------------------ */

typedef struct shop_session {
    char token[SHOP_TOKEN_LEN + 1];
    char user_id[SHOP_ID_LEN + 1];
    td_time expires_at;
} shop_session;

/* Checks password and starts a session of ttl_s seconds (0: the default).
 * A wrong e-mail and a wrong password fail alike: TD_ENOTFOUND with
 * invalid_credentials. */
int shop_login(shop *s, const char *email, const char *password, int64_t ttl_s, shop_session *out);
/* Ends the principal's session (a customer's). */
int shop_logout(shop *s, const shop_principal *who);
/* Sets (or replaces) a user's password: at least SHOP_PASSWORD_MIN
 * characters. For users registered before passwords existed. */
int shop_set_password(td_store *store, const char *user_id, const char *password);

/* The lookup hash of an e-mail address (lowercased first). */
void shop_email_lookup(shop *s, const char *email, char out[TD_LOOKUP_HEX_LEN + 1]);

/* ---- API keys (need only the store) ------------------------------------------------ */

/* Makes a key named name (1..64 of [A-Za-z0-9_.-]) for role (admin, staff
 * or metrics): *out is the key, to be shown once; only its hash is kept.
 * TD_EEXISTS if the name is taken. */
int shop_key_create(td_store *store, shop_role role, const char *name,
                    char out[SHOP_TOKEN_LEN + 1]);
/* Revokes the key named name (TD_ENOTFOUND if none). */
int shop_key_revoke(td_store *store, const char *name);
/* Calls fn for each key, by name: its role and when it was made. */
typedef int (*shop_key_fn)(const char *name, const char *role, const char *created_at,
                           void *payload);
int shop_key_list(td_store *store, shop_key_fn fn, void *payload);
/* Whether any key of role exists. */
int shop_key_any(td_store *store, shop_role role, bool *out);

/* ---- internal to shop/ ----------------------------------------------------------------- */

/* Argon2id hash of password into out (crypto_pwhash_STRBYTES), waiting
 * for one of the SHOP_AUTH_HASHERS slots. */
int shop_password_hash(const char *password, char *out, size_t size);
/* Checks a password's length and text (validation_failed on /password). */
int shop_password_check(const char *password);

#endif
