/*
 * users.c: the users context. A user is an aggregate (user-<id>) with one
 * event, UserRegistered, whose personal fields (email, full_name) are
 * sealed under the user's own key (seal.h; the subject is the stream,
 * user-<id>), so forgetting the user erases them from the log, the
 * snapshot and every copy.
 *
 * E-mail addresses are unique, compared without case, through the index
 * user_lookup/<keyed hash of the lowercased address>, written in the
 * registering unit, so two concurrent registrations of one address cannot
 * both succeed and the index holds no address. The user's credentials sit
 * beside it in auth_users/<id> (auth.h).
 *
 *   registered ──forget──▶ forgotten: key destroyed, index and credentials
 *                          deleted; orders, totals and stock stay
 *
 * Stores from before sealing kept an index by address (user_emails/<addr>):
 * shop_open moves it to the keyed index once (users_upgrade). Their events
 * and snapshots hold the data in the clear; reads erase it once the user is
 * forgotten (shop_open_as), and `shop migrate` seals it in a copy.
 */
#include <ctype.h>
#include <string.h>

#include "auth/auth.h"
#include "shop_int.h"

json_t *user_fold(json_t *state, const char *type, json_t *data)
{
    if (strcmp(type, "UserRegistered") == 0) {
        json_decref(state);
        return json_deep_copy(data);
    }
    return state;
}

void shop_user_subject(char out[SHOP_SUBJECT_LEN + 1], const char *user_id)
{
    snprintf(out, SHOP_SUBJECT_LEN + 1, "user-%s", user_id);
}

static void lower(char *out, const char *in, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

void shop_email_lookup(shop *s, const char *email, char out[TD_LOOKUP_HEX_LEN + 1])
{
    char key[256];
    lower(key, email, sizeof key);
    td_keyring_lookup(s->keyring, key, out);
}

typedef struct register_cmd {
    shop_cmd cmd;
    shop *shop;
    const char *id, *email, *full_name;
    const char *password_hash; /* or NULL */
    char lookup[TD_LOOKUP_HEX_LEN + 1];
} register_cmd;

static int put_credentials(td_txn *txn, const char *user_id, const char *lookup,
                           const char *password_hash)
{
    json_t *doc = json_pack("{s:s,s:s?}", "lookup", lookup, "password", password_hash);
    int error = doc ? td_txn_doc_put_json(txn, SHOP_AUTH_USERS, user_id, doc) : TD_ENOMEM;
    json_decref(doc);
    return error;
}

static int put_lookup(td_txn *txn, const char *lookup, const char *user_id)
{
    char body[80];
    snprintf(body, sizeof body, "{\"user_id\":\"%s\"}", user_id);
    return td_txn_doc_put(txn, SHOP_USER_LOOKUP, lookup, body, 0);
}

static int register_unit(td_txn *txn, void *payload)
{
    register_cmd *c = payload;
    char when[TD_TIME_STR_LEN + 1], *existing = NULL, subject[SHOP_SUBJECT_LEN + 1];
    shop_aggregate user;
    int error = td_txn_doc_get(txn, SHOP_USER_LOOKUP, c->lookup, &existing, NULL);
    td_free(existing);
    if (error == 0)
        return cmd_fail(&c->cmd, TD_EEXISTS, "email_taken", "/email",
                        "a user with this e-mail address exists already");
    if (error != TD_ENOTFOUND || (error = agg_load(txn, &user, "user", c->id, user_fold)) < 0)
        return error;
    shop_now(when);
    shop_user_subject(subject, c->id);
    json_t *data = json_pack("{s:s,s:s,s:s,s:s}", "user_id", c->id, "email", c->email, "full_name",
                             c->full_name, "registered_at", when);
    error = data ? td_keyring_seal(c->shop->keyring, txn, subject, data,
                                   shop_personal_fields("UserRegistered"), TD_SEAL_CREATE_KEY)
                 : TD_ENOMEM;
    shop_new_event ev = {"UserRegistered", "users", TD_KIND_INTEGRATION, data};
    if (error >= 0)
        error = agg_append(txn, &user, &ev, 1, user_fold);
    else
        json_decref(data);
    agg_dispose(&user);
    if (error == 0)
        error = put_lookup(txn, c->lookup, c->id);
    return error < 0 ? error : put_credentials(txn, c->id, c->lookup, c->password_hash);
}

int shop_register_user(shop *s, const char *email, const char *full_name, const char *password,
                       char id[SHOP_ID_LEN + 1])
{
    char hash[crypto_pwhash_STRBYTES] = "";
    int error = check_email(email, "/email");
    if (error == 0)
        error = check_text(full_name, "/full_name", SHOP_MAX_TEXT);
    if (error == 0 && password)
        error = shop_password_check(password);
    if (error == 0)
        error = shop_new_id(id);
    if (error == 0 && password) /* slow: before the unit, never on the writer */
        error = shop_password_hash(password, hash, sizeof hash);
    if (error < 0)
        return error;
    register_cmd c = {.cmd.created = id,
                      .shop = s,
                      .id = id,
                      .email = email,
                      .full_name = full_name,
                      .password_hash = password ? hash : NULL};
    shop_email_lookup(s, email, c.lookup);
    return shop_run(s->store, register_unit, &c);
}

/* Opens the user's sealed fields in place (erased ones read as null). */
int shop_open_personal(shop *s, json_t *data)
{
    int error = td_keyring_open(s->keyring, NULL, data);
    return error < 0 ? shop_fail_td(error) : 0;
}

int shop_seal_personal(shop *s, const char *user_id, json_t *data, const char *const *fields)
{
    char subject[SHOP_SUBJECT_LEN + 1];
    shop_user_subject(subject, user_id);
    int error = td_keyring_seal(s->keyring, NULL, subject, data, fields, 0);
    return error < 0 ? shop_fail_td(error) : 0;
}

int shop_get_user(shop *s, const char *user_id, json_t **out)
{
    int error = check_id(user_id, "/user_id");
    if (error == 0 && (error = agg_read(s->store, "user", user_fold, user_id, out, NULL)) < 0)
        return error == TD_ENOTFOUND ? shop_fail(error, "not_found", NULL, "no user %s", user_id)
                                     : shop_fail_td(error);
    if (error == 0 && (error = shop_open_as(s, "UserRegistered", *out)) < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return error;
}

/* ---- forgetting ------------------------------------------------------------------- */

typedef struct forget_cmd {
    shop_cmd cmd;
    shop *shop;
    const char *id;
} forget_cmd;

static int delete_if_there(td_txn *txn, const char *collection, const char *key)
{
    int error = td_txn_doc_delete(txn, collection, key);
    return error == TD_ENOTFOUND ? 0 : error;
}

static int forget_unit(td_txn *txn, void *payload)
{
    forget_cmd *c = payload;
    char subject[SHOP_SUBJECT_LEN + 1], *text = NULL;
    char when[TD_TIME_STR_LEN + 1];
    shop_aggregate user;
    int error = agg_load(txn, &user, "user", c->id, user_fold);
    bool exists = error == 0 && user.state != NULL;
    if (error == 0 && !exists)
        error = cmd_fail(&c->cmd, TD_ENOTFOUND, "not_found", NULL, "no user %s", c->id);
    shop_user_subject(subject, c->id);
    if (error == 0)
        error = td_keyring_forget(c->shop->keyring, txn, subject);
    shop_now(when);
    if (error == 0) { /* the other services' stores forget the user too (contexts.h) */
        shop_new_event ev = {"UserForgotten", "users", TD_KIND_INTEGRATION,
                             json_pack("{s:s,s:s}", "user_id", c->id, "forgotten_at", when)};
        error = agg_append(txn, &user, &ev, 1, user_fold);
    }
    agg_dispose(&user);
    if (error == 0)
        error = td_txn_doc_get(txn, SHOP_AUTH_USERS, c->id, &text, NULL);
    json_t *credentials = error == 0 ? json_loads(text, 0, NULL) : NULL;
    const char *lookup = json_string_value(json_object_get(credentials, "lookup"));
    td_free(text);
    if (error == 0 && lookup)
        error = delete_if_there(txn, SHOP_USER_LOOKUP, lookup);
    if (error == 0)
        error = delete_if_there(txn, SHOP_AUTH_USERS, c->id);
    json_decref(credentials);
    return error == TD_ENOTFOUND ? 0 : error; /* no credentials: nothing more to delete */
}

int shop_forget_user(shop *s, const char *user_id)
{
    int error = check_id(user_id, "/user_id");
    if (error < 0)
        return error;
    forget_cmd c = {.shop = s, .id = user_id};
    return shop_run(s->store, forget_unit, &c);
}

/* ---- stores from before sealing --------------------------------------------------------- */

typedef struct legacy_user {
    shop *shop;
    const char *address; /* lowercased: the old index's key */
    char user_id[SHOP_ID_LEN + 1];
    size_t seen;
} legacy_user;

static int upgrade_unit(td_txn *txn, void *payload)
{
    legacy_user *u = payload;
    char lookup[TD_LOOKUP_HEX_LEN + 1], *text = NULL;
    td_keyring_lookup(u->shop->keyring, u->address, lookup);
    int error = td_txn_doc_get(txn, SHOP_AUTH_USERS, u->user_id, &text, NULL);
    json_t *credentials = error == 0 ? json_loads(text, 0, NULL) : NULL;
    td_free(text);
    if (error == 0 || error == TD_ENOTFOUND)
        error = put_credentials(txn, u->user_id, lookup,
                                json_string_value(json_object_get(credentials, "password")));
    json_decref(credentials);
    if (error == 0)
        error = put_lookup(txn, lookup, u->user_id);
    return error < 0 ? error : td_txn_doc_delete(txn, "user_emails", u->address);
}

static int upgrade_one(const char *key, const char *json, size_t len, void *payload)
{
    legacy_user *u = payload;
    json_t *doc = json_loadb(json, len, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "user_id"));
    snprintf(u->user_id, sizeof u->user_id, "%s", id ? id : "");
    json_decref(doc);
    u->address = key;
    u->seen++;
    if (id == NULL)
        return shop_fail(TD_ECORRUPT, "internal_error", NULL, "user_emails/%s names no user", key);
    return td_transact(u->shop->store, upgrade_unit, u);
}

int users_upgrade(shop *s)
{
    legacy_user u = {.shop = s};
    int error = 0;
    if (td_store_read_only(s->store))
        return 0;
    do { /* a page at a time: each upgrade deletes its entry of the old index */
        u.seen = 0;
        error = td_store_doc_list(s->store, "user_emails", NULL, 100, upgrade_one, &u);
    } while (error == 0 && u.seen > 0);
    return error;
}
