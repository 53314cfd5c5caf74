/*
 * users.c: the users context. A user is an aggregate (user-<id>) with one
 * event, UserRegistered. E-mail addresses are unique, compared without case:
 * the index document user_emails/<address> is written in the registering
 * unit, so two concurrent registrations of one address cannot both succeed.
 */
#include <ctype.h>
#include <string.h>

#include "shop_int.h"

json_t *user_fold(json_t *state, const char *type, json_t *data)
{
    if (strcmp(type, "UserRegistered") == 0) {
        json_decref(state);
        return json_deep_copy(data);
    }
    return state;
}

typedef struct register_cmd {
    shop_cmd cmd;
    const char *id, *email, *full_name;
} register_cmd;

static void lower(char *out, const char *in, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

static int register_unit(td_txn *txn, void *payload)
{
    register_cmd *c = payload;
    char key[256], when[TD_TIME_STR_LEN + 1], *existing = NULL, index[80];
    shop_aggregate user;
    lower(key, c->email, sizeof key);
    int error = td_txn_doc_get(txn, "user_emails", key, &existing, NULL);
    td_free(existing);
    if (error == 0)
        return cmd_fail(&c->cmd, TD_EEXISTS, "email_taken", "/email",
                        "a user with this e-mail address exists already");
    if (error != TD_ENOTFOUND || (error = agg_load(txn, &user, "user", c->id, user_fold)) < 0)
        return error;
    shop_now(when);
    shop_new_event ev = {"UserRegistered", "users", TD_KIND_DOMAIN,
                         json_pack("{s:s,s:s,s:s,s:s}", "user_id", c->id, "email", c->email,
                                   "full_name", c->full_name, "registered_at", when)};
    error = agg_append(txn, &user, &ev, 1, user_fold);
    agg_dispose(&user);
    snprintf(index, sizeof index, "{\"user_id\":\"%s\"}", c->id);
    return error < 0 ? error : td_txn_doc_put(txn, "user_emails", key, index, 0);
}

int shop_register_user(shop *s, const char *email, const char *full_name, char id[SHOP_ID_LEN + 1])
{
    int error = check_email(email, "/email");
    if (error == 0)
        error = check_text(full_name, "/full_name", SHOP_MAX_TEXT);
    if (error == 0)
        error = shop_new_id(id);
    if (error < 0)
        return error;
    register_cmd c = {.id = id, .email = email, .full_name = full_name};
    return shop_run(s->store, register_unit, &c);
}

int shop_get_user(shop *s, const char *user_id, json_t **out)
{
    int error = check_id(user_id, "/user_id");
    if (error == 0 && (error = agg_read(s->store, "user", user_fold, user_id, out, NULL)) < 0)
        return error == TD_ENOTFOUND ? shop_fail(error, "not_found", NULL, "no user %s", user_id)
                                     : shop_fail_td(error);
    return error;
}
