/*
 * tokens.c (shop auth): bearer tokens: customers' sessions and API keys,
 * and telling who a token belongs to (see auth.h).
 *
 * A token is a prefix and 32 random bytes; the store keeps only the hash
 * of the whole token, so a copy of the database lets nobody in. A session
 * is an expiring document (common/expiry.h), deleted by the keeper's sweep
 * once expired. A session of a forgotten user is worth nothing: its user's
 * credentials are gone, and authentication checks them.
 */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "common/expiry.h"
#include "shop_int.h"

#define SESSION_PREFIX "shop_s_"
#define KEY_PREFIX     "shop_k_"
#define PREFIX_LEN     7
#define SECRET_BYTES   32

static const struct {
    shop_role role;
    const char *name;
} roles[] = {
    {SHOP_ROLE_ANONYMOUS, "anonymous"}, {SHOP_ROLE_CUSTOMER, "customer"},
    {SHOP_ROLE_STAFF, "staff"},         {SHOP_ROLE_ADMIN, "admin"},
    {SHOP_ROLE_METRICS, "metrics"},
};

const char *shop_role_name(shop_role role)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (roles[i].role == role)
            return roles[i].name;
    return "unknown";
}

shop_role shop_role_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(roles[i].name, name) == 0 && roles[i].role >= SHOP_ROLE_STAFF)
            return roles[i].role;
    return 0;
}

/* ---- tokens ------------------------------------------------------------------------- */

static void new_token(char out[SHOP_TOKEN_LEN + 1], const char *prefix)
{
    unsigned char secret[SECRET_BYTES];
    randombytes_buf(secret, sizeof secret);
    memcpy(out, prefix, PREFIX_LEN);
    sodium_bin2base64(out + PREFIX_LEN, SHOP_TOKEN_LEN + 1 - PREFIX_LEN, secret, sizeof secret,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(secret, sizeof secret);
}

static void token_hash(const char *token, char out[TD_LOOKUP_HEX_LEN + 1])
{
    unsigned char hash[TD_LOOKUP_HEX_LEN / 2];
    crypto_generichash(hash, sizeof hash, (const unsigned char *)token, strlen(token), NULL, 0);
    sodium_bin2hex(out, TD_LOOKUP_HEX_LEN + 1, hash, sizeof hash);
}

/* A token of the right shape: prefix, then 43 base64url characters. */
static bool well_formed(const char *token, const char *prefix)
{
    if (strlen(token) != SHOP_TOKEN_LEN || strncmp(token, prefix, PREFIX_LEN) != 0)
        return false;
    for (const char *p = token + PREFIX_LEN; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

static json_t *read_doc(td_store *store, const char *collection, const char *key, int *error)
{
    char *text = NULL;
    *error = td_store_doc_get(store, collection, key, &text, NULL);
    json_t *doc = *error == 0 ? json_loads(text, 0, NULL) : NULL;
    td_free(text);
    if (*error == 0 && doc == NULL)
        *error = TD_ECORRUPT;
    return doc;
}

static int invalid_token(void)
{
    return shop_fail(TD_ENOTFOUND, "invalid_token", NULL,
                     "the token is unknown, revoked or expired");
}

static int session_principal(shop *s, const char *hash, shop_principal *out)
{
    int error = 0;
    json_t *session = read_doc(s->store, SHOP_AUTH_SESSIONS, hash, &error), *user = NULL;
    const char *user_id = json_string_value(json_object_get(session, "user_id"));
    if (error == 0 && user_id && strlen(user_id) == SHOP_ID_LEN &&
        !shop_expired(session, td_time_now()))
        user = read_doc(s->store, SHOP_AUTH_USERS, user_id, &error); /* gone once forgotten */
    if (error == 0 && user) {
        out->role = SHOP_ROLE_CUSTOMER;
        memcpy(out->user_id, user_id, SHOP_ID_LEN + 1);
        memcpy(out->session, hash, TD_LOOKUP_HEX_LEN + 1);
    }
    bool found = error == 0 && user;
    json_decref(user);
    json_decref(session);
    return found ? 0 : error == 0 || error == TD_ENOTFOUND ? invalid_token() : shop_fail_td(error);
}

static int key_principal(td_store *store, const char *hash, shop_principal *out)
{
    int error = 0;
    json_t *key = read_doc(store, SHOP_AUTH_KEYS, hash, &error);
    shop_role role = shop_role_parse(json_string_value(json_object_get(key, "role")));
    const char *name = json_string_value(json_object_get(key, "name"));
    if (error == 0 && role && name) {
        out->role = role;
        snprintf(out->name, sizeof out->name, "%s", name);
    }
    json_decref(key);
    if (error == 0 && (!role || !name))
        error = TD_ENOTFOUND;
    return error == 0 ? 0 : error == TD_ENOTFOUND ? invalid_token() : shop_fail_td(error);
}

int shop_authenticate(shop *s, const char *token, shop_principal *out)
{
    char hash[TD_LOOKUP_HEX_LEN + 1];
    memset(out, 0, sizeof *out);
    out->role = SHOP_ROLE_ANONYMOUS;
    bool session = well_formed(token, SESSION_PREFIX);
    if (!session && !well_formed(token, KEY_PREFIX))
        return invalid_token();
    token_hash(token, hash);
    int error = session ? session_principal(s, hash, out) : key_principal(s->store, hash, out);
    if (error < 0)
        out->role = SHOP_ROLE_ANONYMOUS;
    return error;
}

/* ---- sessions --------------------------------------------------------------------------- */

typedef struct session_cmd {
    shop_cmd cmd;
    const char *user_id;
    char hash[TD_LOOKUP_HEX_LEN + 1];
    td_time created_at, expires_at;
} session_cmd;

static int session_unit(td_txn *txn, void *payload)
{
    session_cmd *c = payload;
    char *text = NULL;
    int error = td_txn_doc_get(txn, SHOP_AUTH_USERS, c->user_id, &text, NULL);
    td_free(text);
    if (error == TD_ENOTFOUND) /* forgotten meanwhile */
        return cmd_fail(&c->cmd, TD_ENOTFOUND, "invalid_credentials", NULL,
                        "the e-mail address or the password is wrong");
    json_t *doc =
        json_pack("{s:s,s:I}", "user_id", c->user_id, "created_at", (json_int_t)c->created_at);
    if (error == 0)
        error = doc ? shop_expiring_put(txn, SHOP_AUTH_SESSIONS, c->hash, doc, c->expires_at)
                    : TD_ENOMEM;
    json_decref(doc);
    return error;
}

int shop_session_start(shop *s, const char *user_id, int64_t ttl_s, shop_session *out)
{
    session_cmd c = {.user_id = user_id, .created_at = td_time_now()};
    if (ttl_s <= 0)
        ttl_s = s->opts.session_ttl_s > 0 ? s->opts.session_ttl_s : SHOP_SESSION_TTL_S;
    c.expires_at = c.created_at + (td_time)ttl_s * 1000000;
    new_token(out->token, SESSION_PREFIX);
    token_hash(out->token, c.hash);
    memcpy(out->user_id, user_id, SHOP_ID_LEN + 1);
    out->expires_at = c.expires_at;
    int error = shop_run(s->store, session_unit, &c);
    if (error < 0)
        sodium_memzero(out->token, sizeof out->token);
    return error;
}

typedef struct end_cmd {
    shop_cmd cmd;
    const char *hash;
} end_cmd;

static int end_unit(td_txn *txn, void *payload)
{
    end_cmd *c = payload;
    int error = shop_expiring_delete(txn, SHOP_AUTH_SESSIONS, c->hash);
    return error == TD_ENOTFOUND
               ? cmd_fail(&c->cmd, TD_ENOTFOUND, "invalid_token", NULL, "the session has ended")
               : error;
}

int shop_logout(shop *s, const shop_principal *who)
{
    if (who->role != SHOP_ROLE_CUSTOMER || who->session[0] == '\0')
        return shop_fail(TD_EINVAL, "no_session", NULL,
                         "only a customer's session ends this way; API keys are revoked with "
                         "'shop keys revoke'");
    end_cmd c = {.hash = who->session};
    return shop_run(s->store, end_unit, &c);
}

/* ---- API keys ------------------------------------------------------------------------------ */

static int check_key_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    bool ok = n > 0 && n <= SHOP_KEY_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= 'a' && name[i] <= 'z') ||
             (name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '.' ||
             name[i] == '-';
    return ok ? 0
              : shop_fail(TD_EINVAL, "validation_failed", "/name",
                          "a key's name is 1..%d of A-Z a-z 0-9 _ . -", SHOP_KEY_NAME_MAX);
}

typedef struct key_cmd {
    shop_cmd cmd;
    const char *name, *role;
    char hash[TD_LOOKUP_HEX_LEN + 1];
} key_cmd;

static int key_create_unit(td_txn *txn, void *payload)
{
    key_cmd *c = payload;
    char *text = NULL, when[TD_TIME_STR_LEN + 1];
    int error = td_txn_doc_get(txn, SHOP_AUTH_KEY_NAMES, c->name, &text, NULL);
    td_free(text);
    if (error == 0)
        return cmd_fail(&c->cmd, TD_EEXISTS, "exists", "/name", "a key named '%s' exists already",
                        c->name);
    shop_now(when);
    json_t *key = json_pack("{s:s,s:s,s:s}", "name", c->name, "role", c->role, "created_at", when);
    json_t *named =
        json_pack("{s:s,s:s,s:s}", "hash", c->hash, "role", c->role, "created_at", when);
    error = error == TD_ENOTFOUND && key && named
                ? td_txn_doc_put_json(txn, SHOP_AUTH_KEYS, c->hash, key)
            : error == TD_ENOTFOUND ? TD_ENOMEM
                                    : error;
    if (error == 0)
        error = td_txn_doc_put_json(txn, SHOP_AUTH_KEY_NAMES, c->name, named);
    json_decref(key);
    json_decref(named);
    return error;
}

int shop_key_create(td_store *store, shop_role role, const char *name, char out[SHOP_TOKEN_LEN + 1])
{
    int error = check_key_name(name);
    if (error == 0 && role != SHOP_ROLE_ADMIN && role != SHOP_ROLE_STAFF &&
        role != SHOP_ROLE_METRICS)
        error = shop_fail(TD_EINVAL, "validation_failed", "/role",
                          "a key's role is admin, staff or metrics");
    if (error < 0)
        return error;
    key_cmd c = {.name = name, .role = shop_role_name(role)};
    new_token(out, KEY_PREFIX);
    token_hash(out, c.hash);
    error = shop_run(store, key_create_unit, &c);
    if (error < 0)
        sodium_memzero(out, SHOP_TOKEN_LEN + 1);
    return error;
}

static int key_revoke_unit(td_txn *txn, void *payload)
{
    key_cmd *c = payload;
    char *text = NULL;
    int error = td_txn_doc_get(txn, SHOP_AUTH_KEY_NAMES, c->name, &text, NULL);
    json_t *named = error == 0 ? json_loads(text, 0, NULL) : NULL;
    const char *hash = json_string_value(json_object_get(named, "hash"));
    td_free(text);
    if (error == TD_ENOTFOUND)
        error = cmd_fail(&c->cmd, TD_ENOTFOUND, "not_found", NULL, "no key named '%s'", c->name);
    if (error == 0 && hash &&
        (error = td_txn_doc_delete(txn, SHOP_AUTH_KEYS, hash)) == TD_ENOTFOUND)
        error = 0;
    if (error == 0)
        error = td_txn_doc_delete(txn, SHOP_AUTH_KEY_NAMES, c->name);
    json_decref(named);
    return error;
}

int shop_key_revoke(td_store *store, const char *name)
{
    int error = check_key_name(name);
    key_cmd c = {.name = name};
    return error < 0 ? error : shop_run(store, key_revoke_unit, &c);
}

typedef struct key_listing {
    shop_key_fn fn;
    void *payload;
    char last[SHOP_KEY_NAME_MAX + 1];
    size_t seen;
    bool stopped; /* fn asked to stop */
} key_listing;

static int list_one(const char *name, const char *json, size_t len, void *payload)
{
    key_listing *l = payload;
    json_t *doc = json_loadb(json, len, 0, NULL);
    const char *role = json_string_value(json_object_get(doc, "role"));
    const char *created = json_string_value(json_object_get(doc, "created_at"));
    int rc = l->fn(name, role ? role : "?", created ? created : "?", l->payload);
    json_decref(doc);
    snprintf(l->last, sizeof l->last, "%s", name);
    l->seen++;
    l->stopped = rc != 0;
    return rc;
}

int shop_key_list(td_store *store, shop_key_fn fn, void *payload)
{
    key_listing l = {fn, payload, "", 0, false};
    int error = 0;
    do {
        l.seen = 0;
        error = td_store_doc_list(store, SHOP_AUTH_KEY_NAMES, l.last[0] ? l.last : NULL, 100,
                                  list_one, &l);
    } while (error == 0 && l.seen == 100 && !l.stopped);
    return error < 0 ? shop_fail_td(error) : 0;
}

typedef struct role_search {
    const char *role;
    bool found;
} role_search;

static int has_role(const char *name, const char *role, const char *created_at, void *payload)
{
    role_search *r = payload;
    (void)name;
    (void)created_at;
    r->found = strcmp(role, r->role) == 0;
    return r->found ? 1 : 0;
}

int shop_key_any(td_store *store, shop_role role, bool *out)
{
    role_search r = {shop_role_name(role), false};
    int error = shop_key_list(store, has_role, &r);
    *out = r.found;
    return error < 0 ? error : 0;
}
