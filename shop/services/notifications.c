/*
 * notifications.c: the notifications context. A subscription on order
 * streams sends the customer an e-mail when an order is received
 * (OrderCreated, as the RFC's OrderCreatedEventHandler does), confirmed
 * (status Processing) or cancelled, and publishes OrderConfirmationEmail
 * (integration) for a confirmation. The mailer names each message after its
 * event, and the integration event is published with an inbox claim, so a
 * redelivered event neither mails twice nor publishes twice.
 *
 * What the e-mails say is letters.c's; the customer's address and name are
 * read from their snapshot and opened (seal.h); a forgotten customer gets no more e-mail, and the
 * integration event carries the address and name sealed under the customer's key.
 */
#include <stdio.h>
#include <string.h>

#include "services/letters.h"
#include "shop_int.h"

typedef struct confirmation {
    shop *shop;
    const td_event *cause;
    const char *stream, *user_id;
    json_t *data; /* the event's, sealed in the unit */
    bool force;   /* a replay that asks for effects again */
} confirmation;

static int confirm_unit(td_txn *txn, void *payload)
{
    confirmation *c = payload;
    char subject[SHOP_SUBJECT_LEN + 1], *text = NULL;
    td_event ev;
    int first = td_inbox_claim(txn, "notifications", &c->cause->id);
    if (first < 0 || (first > 0 && !c->force))
        return first < 0 ? first : 0;
    shop_user_subject(subject, c->user_id);
    json_t *data = json_deep_copy(c->data); /* a unit may run again: seal a copy */
    int error = data ? 0 : TD_ENOMEM;
    if (error == 0 && json_object_get(data, "_sealed") == NULL) /* no key yet: make one */
        error = td_keyring_seal(c->shop->keyring, txn, subject, data,
                                shop_personal_fields("OrderConfirmationEmail"), TD_SEAL_CREATE_KEY);
    if (error < 0) {
        json_decref(data);
        return error;
    }
    if ((error = shop_event(&ev, &text, "OrderConfirmationEmail", "notifications",
                            TD_KIND_INTEGRATION, data)) == 0) {
        td_txn_set_cause(txn, c->cause);
        error = td_txn_append(txn, c->stream, TD_EXPECT_ANY, &ev, 1);
    }
    free(text);
    return error;
}

static int publish_confirmation(shop *s, td_delivery *d, const td_event *cause, const char *order,
                                json_t *order_state, json_t *user)
{
    char stream[TD_STREAM_MAX + 1];
    snprintf(stream, sizeof stream, "notification-%s", order);
    confirmation c = {s,
                      cause,
                      stream,
                      json_string_value(json_object_get(order_state, "user_id")),
                      json_pack("{s:s,s:O,s:O,s:O}", "order_id", order, "customer_email",
                                json_object_get(user, "email"), "customer_name",
                                json_object_get(user, "full_name"), "total_amount",
                                json_object_get(order_state, "total_amount")),
                      td_delivery_forces_effects(d)};
    char subject[SHOP_SUBJECT_LEN + 1];
    shop_user_subject(subject, c.user_id ? c.user_id : "");
    int error = c.data && c.user_id ? 0 : TD_ENOMEM;
    if (error == 0) /* sealed here, off the writer, when the customer has a key */
        error = td_keyring_seal(s->keyring, NULL, subject, c.data,
                                shop_personal_fields("OrderConfirmationEmail"), 0);
    if (error == TD_ENOTFOUND || error == 1) /* no key: the unit makes one; forgotten: erased */
        error = 0;
    if (error == 0)
        error = td_transact(s->store, confirm_unit, &c);
    json_decref(c.data);
    return error;
}

/* Which e-mail an order event calls for, or NULL. */
static const char *kind_of(const td_event *ev, json_t *data)
{
    const char *to = json_string_value(json_object_get(data, "to_status"));
    if (strcmp(ev->type, "OrderCreated") == 0)
        return "order_received";
    if (strcmp(ev->type, "OrderStatusChanged") != 0 || to == NULL)
        return NULL;
    return strcmp(to, "Processing") == 0  ? "order_confirmed"
           : strcmp(to, "Cancelled") == 0 ? "order_cancelled"
                                          : NULL;
}

static int mail(shop *s, td_delivery *d, const char *kind, const char *order, json_t *user,
                json_t *order_state)
{
    shop_letter letter;
    if (shop_letter_write(&letter, kind, order, user, order_state) < 0)
        return td_delivery_fail(d, TD_ENOMEM, "cannot write the e-mail");
    /* The message is named after its event, so a redelivery adds nothing; a
     * replay that forces effects sends it again, under a name of its own. */
    char key[TD_UUID_STR_LEN * 2 + 16];
    td_uuid again;
    snprintf(key, sizeof key, "%s", td_delivery_idempotency_key(d));
    if (td_delivery_forces_effects(d) && td_uuid_v7(&again) == 0) {
        char suffix[TD_UUID_STR_LEN + 1];
        td_uuid_format(suffix, &again);
        snprintf(key, sizeof key, "%s.again-%s", td_delivery_idempotency_key(d), suffix);
    }
    shop_mail m = {key,
                   kind,
                   order,
                   json_string_value(json_object_get(user, "email")),
                   json_string_value(json_object_get(user, "full_name")),
                   letter.subject,
                   letter.text,
                   letter.html};
    int error = s->mailer.send(s->mailer.self, &m);
    shop_letter_free(&letter);
    return error < 0 ? td_delivery_fail(d, error, "cannot deliver the e-mail") : 0;
}

static int handle(td_delivery *d, const td_event *ev, void *payload)
{
    shop *s = payload;
    json_t *data = NULL, *order_state = NULL, *user = NULL;
    if (td_event_data(&data, ev) < 0)
        return td_delivery_fail(d, TD_EPERMANENT, "%s: data is not JSON", ev->type);
    const char *kind = kind_of(ev, data);
    const char *order = json_string_value(json_object_get(data, "order_id"));
    int error = 0;
    int erased = 0;
    if (kind && order &&
        (error = agg_read(s->store, "order", order_fold, order, &order_state, NULL)) == 0 &&
        (error = agg_read(s->store, "user", user_fold,
                          json_string_value(json_object_get(order_state, "user_id")), &user,
                          NULL)) == 0 &&
        (error = erased = td_keyring_open(s->keyring, NULL, user)) == 0)
        error = mail(s, d, kind, order, user, order_state);
    if (error == TD_ENOTFOUND) /* what the event names was never written: retrying cannot help */
        error = td_delivery_fail(d, TD_EPERMANENT, "%s names an order or user that does not exist",
                                 ev->type);
    if (erased == 1) /* the customer was forgotten: no more e-mail */
        error = 0;
    if (error == 0 && kind && !erased && strcmp(kind, "order_confirmed") == 0)
        error = publish_confirmation(s, d, ev, order, order_state, user);
    json_decref(user);
    json_decref(order_state);
    json_decref(data);
    return error;
}

int notifications_new(shop *s, unsigned part, td_subscription **out)
{
    td_subscription_options opts = shop_subscription_options(s, "notifications");
    opts.lanes = shop_partition_lanes(s, s->opts.io_lanes); /* each waits for fsyncs */
    opts.partition = shop_partition(s, part);
    opts.match.category = "order";
    return td_subscription_new(out, s->store, &opts, handle, s);
}
