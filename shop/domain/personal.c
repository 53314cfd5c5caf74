/*
 * personal.c: which fields of the shop's events are personal data, and
 * whose (seal.h). One table, read by the commands that write these events
 * and by `shop migrate`, which seals them in events written before sealing.
 *
 *   UserRegistered          email, full_name          the user (user_id)
 *   OrderCreated            shipping_address          the customer (user_id)
 *   OrderConfirmationEmail  customer_email, name      the order's customer
 */
#include <string.h>

#include "shop_int.h"

static const char *const user_fields[] = {"email", "full_name", NULL};
static const char *const order_fields[] = {"shipping_address", NULL};
static const char *const confirmation_fields[] = {"customer_email", "customer_name", NULL};

static const struct {
    const char *type;
    const char *const *fields;
} table[] = {
    {"UserRegistered", user_fields},
    {"OrderCreated", order_fields},
    {"OrderConfirmationEmail", confirmation_fields},
};

const char *const *shop_personal_fields(const char *type)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].type, type) == 0)
            return table[i].fields;
    return NULL;
}

/* The user an event's personal data belongs to: its user_id, or for a
 * confirmation its order's customer, from the order's snapshot in store. */
static int owner_of(td_store *store, const char *type, json_t *data, char out[SHOP_ID_LEN + 1])
{
    const char *user = json_string_value(json_object_get(data, "user_id"));
    const char *order = json_string_value(json_object_get(data, "order_id"));
    json_t *state = NULL;
    int error = 0;
    if (user == NULL && order && strcmp(type, "OrderConfirmationEmail") == 0 &&
        (error = agg_read(store, "order", order_fold, order, &state, NULL)) == 0)
        user = json_string_value(json_object_get(state, "user_id"));
    if (error == 0 && (user == NULL || strlen(user) != SHOP_ID_LEN))
        error = TD_ENOTFOUND;
    if (error == 0)
        memcpy(out, user, SHOP_ID_LEN + 1);
    json_decref(state);
    return error;
}

int shop_seal_event_data(td_keyring *keyring, td_txn *txn, td_store *owners, const char *type,
                         json_t *data)
{
    const char *const *fields = shop_personal_fields(type);
    char user[SHOP_ID_LEN + 1], subject[SHOP_SUBJECT_LEN + 1];
    bool any = false;
    for (size_t i = 0; fields && fields[i]; i++)
        any = any || json_object_get(data, fields[i]) != NULL;
    if (!any || json_object_get(data, "_sealed"))
        return 0; /* nothing personal, or sealed already */
    int error = owner_of(owners, type, data, user);
    if (error < 0)
        return error;
    shop_user_subject(subject, user);
    error = td_keyring_seal(keyring, txn, subject, data, fields, TD_SEAL_CREATE_KEY);
    return error < 0 ? error : 1;
}

int shop_open_as(shop *s, const char *type, json_t *data)
{
    const char *const *fields = shop_personal_fields(type);
    char user[SHOP_ID_LEN + 1], subject[SHOP_SUBJECT_LEN + 1];
    bool clear = false, forgotten = false;
    if (json_object_get(data, "_sealed"))
        return shop_open_personal(s, data);
    for (size_t i = 0; fields && fields[i]; i++)
        clear = clear || json_object_get(data, fields[i]) != NULL;
    if (!clear || owner_of(s->store, type, data, user) < 0)
        return 0; /* nothing personal in the clear, or nobody's */
    shop_user_subject(subject, user);
    int error = td_keyring_forgotten(s->keyring, NULL, subject, &forgotten);
    if (error == 0 && forgotten)
        error = td_keyring_erase(data, fields);
    return error < 0 ? shop_fail_td(error) : 0;
}
