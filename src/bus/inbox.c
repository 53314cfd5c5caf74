/*
 * inbox.c: remembering which events a consumer has handled, so an effect
 * outside the store (an e-mail, a payment call) is not repeated when an event
 * is delivered again. One document per (consumer, event id).
 */
#include <stdio.h>

#include "bus/state.h"
#include "core/alloc.h"
#include "core/error.h"

static int inbox_key(char key[TD_STATE_KEY_MAX + 1], const char *consumer, const td_uuid *id)
{
    char text[TD_UUID_STR_LEN + 1];
    int error = td_state__check_name(consumer);
    if (error < 0)
        return error;
    td_uuid_format(text, id);
    return td_state__key(key, consumer, text);
}

int td_inbox_claim(td_txn *txn, const char *consumer, const td_uuid *event_id)
{
    TD_REQUIRE(txn && event_id);
    char key[TD_STATE_KEY_MAX + 1], *existing = NULL, body[48];
    int error = inbox_key(key, consumer, event_id);
    if (error == 0)
        error = td_txn_doc_get(txn, TD_COLL_INBOX, key, &existing, NULL);
    td_free(existing);
    if (error == 0)
        return 1;
    if (error != TD_ENOTFOUND)
        return error;
    snprintf(body, sizeof body, "{\"at\":%lld}", (long long)td_time_now());
    return td_txn_doc_put(txn, TD_COLL_INBOX, key, body, 0);
}

int td_inbox_seen(td_store *store, const char *consumer, const td_uuid *event_id, bool *seen)
{
    TD_REQUIRE(store && consumer && event_id && seen);
    char key[TD_STATE_KEY_MAX + 1], *existing = NULL;
    int error = inbox_key(key, consumer, event_id);
    if (error == 0)
        error = td_store_doc_get(store, TD_COLL_INBOX, key, &existing, NULL);
    td_free(existing);
    *seen = error == 0;
    return error == TD_ENOTFOUND ? 0 : error;
}
