/*
 * transit.c: sealing for the wire what the services' stores keep sealed
 * under keys of their own, and sealing it again on arrival (transit.h).
 *
 *   sender's log      {"user_id":…, "_sealed":{subject, fields, box}}   its key for the user
 *   on the wire       {"user_id":…, "_transit":"<nonce, box>"}          the shared transit key
 *   receiver's log    {"user_id":…, "_sealed":{subject, fields, box}}   its own key for the user
 *
 * The transit key is derived from the master key (crypto_kdf, context
 * "shopwire"), so services sharing a master key share it and nothing else
 * needs distributing. The box is XSalsa20-Poly1305 (crypto_secretbox) over
 * a JSON object of the opened fields, with a random nonce per message.
 */
#include <stdio.h>
#include <string.h>

#include "services/transit.h"
#include "shop_int.h"

#define TRANSIT_MEMBER "_transit"
#define KDF_CONTEXT    "shopwire"
#define KDF_ID         1

struct shop_transit {
    td_store *store;
    unsigned services; /* SHOP_CTX_* bits this process runs */
    td_keyring *keyring;
    unsigned char key[crypto_secretbox_KEYBYTES];
};

int shop_transit_new(shop_transit **out, td_store *store, unsigned services,
                     const unsigned char master[TD_MASTER_KEY_BYTES])
{
    shop_transit *t = sodium_malloc(sizeof *t); /* guarded, kept out of swap */
    if (t == NULL)
        return TD_ENOMEM;
    memset(t, 0, sizeof *t);
    t->store = store;
    t->services = services;
    _Static_assert(TD_MASTER_KEY_BYTES == crypto_kdf_KEYBYTES, "the master key is a KDF key");
    int error = crypto_kdf_derive_from_key(t->key, sizeof t->key, KDF_ID, KDF_CONTEXT, master) == 0
                    ? td_keyring_new(&t->keyring, store, master)
                    : TD_EINVAL;
    if (error < 0) {
        shop_transit_free(t);
        return error;
    }
    *out = t;
    return 0;
}

void shop_transit_free(shop_transit *t)
{
    if (t == NULL)
        return;
    td_keyring_free(t->keyring);
    sodium_free(t); /* wipes the key */
}

/* ---- sending ------------------------------------------------------------------------ */

/* A sealed box that does not open here (damaged, or altered) would stop
 * the relay at its event for good: it goes as stored instead, which its
 * receivers cannot open either, and the log says which. */
static int undecipherable(const td_event *ev, const char *what)
{
    char id[TD_UUID_STR_LEN + 1];
    td_uuid_format(id, &ev->id);
    td_log(TD_LOG_WARN, NULL, "event %s (%s): its %s does not open: sent as stored", id, ev->type,
           what);
    return 1;
}

/* The order's card token, opened, into secret ("token", "method",
 * "user_id"); nothing when the document is gone (charged, cancelled) or
 * its customer forgotten: the payments service then declines. */
static int add_card_token(shop_transit *t, const td_event *ev, json_t *data, json_t *secret)
{
    const char *method_id = json_string_value(json_object_get(data, "payment_method_id"));
    char *text = NULL;
    if (method_id == NULL)
        return 0;
    int error = td_store_doc_get(t->store, SHOP_PAYMENT_METHODS, method_id, &text, NULL);
    if (error == TD_ENOTFOUND)
        return 0;
    json_t *doc = error == 0 ? json_loads(text, 0, NULL) : NULL;
    td_free(text);
    if (error == 0 && doc == NULL)
        error = td_error_report(TD_ECORRUPT, "payment_methods/%s is not JSON", method_id);
    const char *subject = error == 0 ? td_sealed_subject(doc) : NULL;
    char user[SHOP_ID_LEN + 1] = "";
    if (subject && strncmp(subject, "user-", 5) == 0)
        snprintf(user, sizeof user, "%s", subject + 5);
    if (error == 0 && (error = td_keyring_open(t->keyring, NULL, doc)) == 0 &&
        json_is_string(json_object_get(doc, "token")) && user[0])
        error = json_object_set(secret, "token", json_object_get(doc, "token")) ||
                        json_object_set(secret, "method", json_object_get(doc, "method")) ||
                        json_object_set_new(secret, "user_id", json_string(user))
                    ? TD_ENOMEM
                    : 0;
    json_decref(doc);
    if (error == TD_ECORRUPT) /* no token: the charge is declined */
        error = undecipherable(ev, "card token");
    return error == 1 ? 0 : error; /* forgotten or unreadable: no token */
}

/* Moves the personal fields of data, opened, into secret; 1 when they
 * cannot be opened (left as they are). */
static int take_personal(shop_transit *t, const td_event *ev, const char *const *fields,
                         json_t *data, json_t *secret)
{
    int opened = td_keyring_open(t->keyring, NULL, data);
    if (opened == TD_ECORRUPT)
        return undecipherable(ev, "personal data");
    if (opened < 0)
        return opened;
    for (size_t i = 0; fields[i]; i++) {
        json_t *v = json_object_get(data, fields[i]);
        if (v && !json_is_null(v) && json_object_set(secret, fields[i], v) < 0)
            return TD_ENOMEM;
        json_object_del(data, fields[i]); /* erased ones ("_erased" says so) go too */
    }
    return 0;
}

static int seal_for_wire(shop_transit *t, json_t *data, json_t *secret)
{
    char *plain = json_dumps(secret, JSON_COMPACT);
    if (plain == NULL)
        return TD_ENOMEM;
    size_t plain_len = strlen(plain),
           box_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plain_len;
    size_t text_len = sodium_base64_ENCODED_LEN(box_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    unsigned char *box = malloc(box_len);
    char *text = malloc(text_len);
    int error = box && text ? 0 : TD_ENOMEM;
    if (error == 0) {
        randombytes_buf(box, crypto_secretbox_NONCEBYTES);
        crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (unsigned char *)plain, plain_len,
                              box, t->key);
        sodium_bin2base64(text, text_len, box, box_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        error = json_object_set_new(data, TRANSIT_MEMBER, json_string(text)) < 0 ? TD_ENOMEM : 0;
    }
    sodium_memzero(plain, plain_len);
    free(plain); /* jansson's */
    free(box);
    free(text);
    return error;
}

int shop_transit_encode(const td_event *ev, char **body, void *payload)
{
    shop_transit *t = payload;
    const char *const *fields = shop_personal_fields(ev->type);
    bool payment = strcmp(ev->type, "ProcessPayment") == 0;
    if (t->services != SHOP_CTX_ALL && !shop_contexts_outbound(t->services, ev->type))
        return 2; /* no other service reads it: no queue is bound to it */
    if (fields == NULL && !payment)
        return 0; /* nothing of the sender's keys in it: as stored */
    json_t *data = NULL, *secret = json_object();
    int error = secret ? td_event_data(&data, ev) : TD_ENOMEM;
    if (error == 0 && fields && (error = take_personal(t, ev, fields, data, secret)) == 1) {
        json_decref(secret);
        json_decref(data);
        return 0; /* as stored */
    }
    if (error == 0 && payment)
        error = add_card_token(t, ev, data, secret);
    if (error == 0 && json_object_size(secret) > 0)
        error = seal_for_wire(t, data, secret);
    if (error == 0 && (*body = json_dumps(data, JSON_COMPACT)) == NULL)
        error = TD_ENOMEM;
    json_decref(secret); /* the opened values: jansson frees them unwiped */
    json_decref(data);
    return error < 0 ? error : 1;
}

/* ---- receiving ---------------------------------------------------------------------- */

/* The "_transit" member of data, opened: *out (owned). TD_EINVAL with why
 * when it does not open. */
static int open_from_wire(shop_transit *t, const char *text, json_t **out)
{
    unsigned char *box = malloc(strlen(text) + 1);
    size_t box_len = 0;
    int error = box ? 0 : TD_ENOMEM;
    if (error == 0 && (sodium_base642bin(box, strlen(text) + 1, text, strlen(text), NULL, &box_len,
                                         NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
                       box_len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES))
        error = td_error_report(TD_EINVAL, "its %s member is not a sealed box", TRANSIT_MEMBER);
    size_t plain_len = box_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
    char *plain = error == 0 ? malloc(plain_len + 1) : NULL;
    if (error == 0 && plain == NULL)
        error = TD_ENOMEM;
    if (error == 0 &&
        crypto_secretbox_open_easy((unsigned char *)plain, box + crypto_secretbox_NONCEBYTES,
                                   box_len - crypto_secretbox_NONCEBYTES, box, t->key) != 0)
        error = td_error_report(TD_EINVAL,
                                "the personal data sent with it does not open: the services were "
                                "started with different master keys, or it was altered");
    if (error == 0) {
        plain[plain_len] = '\0';
        *out = json_loads(plain, 0, NULL);
        if (!json_is_object(*out)) {
            json_decref(*out);
            error = td_error_report(TD_EINVAL, "the personal data sent with it is not an object");
        }
        sodium_memzero(plain, plain_len);
    }
    free(plain);
    free(box);
    return error;
}

/* A card token that came with ProcessPayment: into this store's
 * payment-method document, sealed under this store's key for the user. */
static int keep_card_token(shop_transit *t, td_txn *txn, json_t *data, json_t *secret)
{
    static const char *const token_field[] = {"token", NULL};
    const char *method_id = json_string_value(json_object_get(data, "payment_method_id"));
    const char *user = json_string_value(json_object_get(secret, "user_id"));
    char subject[SHOP_SUBJECT_LEN + 1];
    if (method_id == NULL || user == NULL || !json_is_string(json_object_get(secret, "token")))
        return 0;
    if (check_id(method_id, "/payment_method_id") < 0 || check_id(user, "/user_id") < 0)
        return td_error_report(TD_EINVAL, "ProcessPayment names a payment method or user that is "
                                          "not an id");
    shop_user_subject(subject, user);
    json_t *doc =
        json_pack("{s:O,s:O,s:O}", "order_id", json_object_get(data, "order_id"), "method",
                  json_object_get(secret, "method"), "token", json_object_get(secret, "token"));
    int error =
        doc ? td_keyring_seal(t->keyring, txn, subject, doc, token_field, TD_SEAL_CREATE_KEY)
            : TD_ENOMEM;
    if (error == 0)
        error = td_txn_doc_put_json(txn, SHOP_PAYMENT_METHODS, method_id, doc);
    json_decref(doc);
    return error == 1 ? 0 : error; /* forgotten here: no document, the charge is declined */
}

static int forget(shop_transit *t, td_txn *txn, const td_event *ev)
{
    json_t *data = NULL;
    char subject[SHOP_SUBJECT_LEN + 1];
    int error = td_event_data(&data, ev);
    const char *user = error == 0 ? json_string_value(json_object_get(data, "user_id")) : NULL;
    if (error == 0 && (user == NULL || check_id(user, "/user_id") < 0))
        error = td_error_report(TD_EINVAL, "UserForgotten names no user");
    if (error == 0) {
        shop_user_subject(subject, user);
        error = td_keyring_forget(t->keyring, txn, subject);
    }
    json_decref(data);
    return error;
}

int shop_transit_decode(td_txn *txn, const td_event *ev, char **out, void *payload)
{
    shop_transit *t = payload;
    if (strcmp(ev->type, "UserForgotten") == 0)
        return forget(t, txn, ev); /* kept as received: it holds no personal data */
    json_t *data = NULL, *secret = NULL;
    if (td_event_data(&data, ev) < 0)
        return 0; /* not JSON: the append says so */
    const char *wire = json_string_value(json_object_get(data, TRANSIT_MEMBER));
    if (wire == NULL) {
        json_decref(data);
        return 0; /* nothing sealed for the wire: as received */
    }
    int error = open_from_wire(t, wire, &secret);
    json_object_del(data, TRANSIT_MEMBER);
    const char *const *fields = shop_personal_fields(ev->type);
    for (size_t i = 0; error == 0 && fields && fields[i]; i++) {
        json_t *v = json_object_get(secret, fields[i]);
        if (v && json_object_set(data, fields[i], v) < 0)
            error = TD_ENOMEM;
    }
    if (error == 0 && fields) /* under this store's key for the customer */
        error = shop_seal_event_data(t->keyring, txn, t->store, ev->type, data);
    if (error >= 0 && strcmp(ev->type, "ProcessPayment") == 0)
        error = keep_card_token(t, txn, data, secret);
    if (error >= 0 && (*out = json_dumps(data, JSON_COMPACT)) == NULL)
        error = TD_ENOMEM;
    json_decref(secret);
    json_decref(data);
    return error < 0 ? error : 1;
}
