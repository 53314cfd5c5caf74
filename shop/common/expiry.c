/*
 * expiry.c (shop): documents that expire, and the sweep (see expiry.h).
 */
#include "common/expiry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_PAGE 200
#define KEY_MAX    70 /* what an index entry holds of a key */

static void index_of(char out[TD_CATEGORY_MAX + 1], const char *collection)
{
    snprintf(out, TD_CATEGORY_MAX + 1, "%.56s_expiry", collection);
}

static void entry_of(char out[SHOP_EXPIRY_KEY_MAX], td_time expires_at, const char *key)
{
    snprintf(out, SHOP_EXPIRY_KEY_MAX, "%020lld|%.70s", (long long)expires_at, key);
}

int shop_expiring_put(td_txn *txn, const char *collection, const char *key, json_t *doc,
                      td_time expires_at)
{
    char index[TD_CATEGORY_MAX + 1], entry[SHOP_EXPIRY_KEY_MAX];
    if (strlen(key) > KEY_MAX)
        return TD_EINVAL;
    index_of(index, collection);
    entry_of(entry, expires_at, key);
    if (json_object_set_new(doc, "expires_at", json_integer((json_int_t)expires_at)) < 0)
        return TD_ENOMEM;
    int error = td_txn_doc_put_json(txn, collection, key, doc);
    return error < 0 ? error : td_txn_doc_put(txn, index, entry, "{}", 0);
}

int shop_expiring_delete(td_txn *txn, const char *collection, const char *key)
{
    char index[TD_CATEGORY_MAX + 1], entry[SHOP_EXPIRY_KEY_MAX], *text = NULL;
    int error = td_txn_doc_get(txn, collection, key, &text, NULL);
    json_t *doc = error == 0 ? json_loads(text, 0, NULL) : NULL;
    td_free(text);
    index_of(index, collection);
    entry_of(entry, (td_time)json_integer_value(json_object_get(doc, "expires_at")), key);
    json_decref(doc);
    if (error == 0)
        error = td_txn_doc_delete(txn, collection, key);
    if (error == 0 && (error = td_txn_doc_delete(txn, index, entry)) == TD_ENOTFOUND)
        error = 0; /* put before there was an index, or swept */
    return error;
}

bool shop_expired(const json_t *doc, td_time now)
{
    json_t *at = json_object_get(doc, "expires_at");
    return json_is_integer(at) && json_integer_value(at) <= now;
}

typedef struct sweep {
    const char *collection;
    char index[TD_CATEGORY_MAX + 1];
    td_time now;
    char (*entries)[SHOP_EXPIRY_KEY_MAX];
    size_t count;
    bool done;
} sweep;

static int note_expired(const char *entry, const char *json, size_t len, void *payload)
{
    sweep *w = payload;
    (void)json;
    (void)len;
    if (strtoll(entry, NULL, 10) > w->now) {
        w->done = true;
        return 1; /* the rest are valid */
    }
    snprintf(w->entries[w->count++], SHOP_EXPIRY_KEY_MAX, "%s", entry);
    return 0;
}

/* Deletes the expired entries and their documents, unless a document was
 * put again meanwhile with a later expiry. */
static int sweep_unit(td_txn *txn, void *payload)
{
    sweep *w = payload;
    int error = 0;
    for (size_t i = 0; error == 0 && i < w->count; i++) {
        const char *key = strchr(w->entries[i], '|');
        char *body = NULL;
        error = td_txn_doc_delete(txn, w->index, w->entries[i]);
        if (error == 0 && key &&
            (error = td_txn_doc_get(txn, w->collection, key + 1, &body, NULL)) == 0) {
            json_t *doc = json_loads(body, 0, NULL);
            if (doc == NULL || shop_expired(doc, w->now))
                error = td_txn_doc_delete(txn, w->collection, key + 1);
            json_decref(doc);
        }
        td_free(body);
        if (error == TD_ENOTFOUND) /* deleted meanwhile */
            error = 0;
    }
    return error;
}

int shop_expiring_sweep(td_store *store, const char *collection, size_t *deleted)
{
    sweep w = {.collection = collection, .entries = calloc(SWEEP_PAGE, SHOP_EXPIRY_KEY_MAX)};
    int error = w.entries ? 0 : TD_ENOMEM;
    index_of(w.index, collection);
    *deleted = 0;
    while (error == 0) {
        w.now = td_time_now();
        w.count = 0;
        w.done = false;
        error = td_store_doc_list(store, w.index, NULL, SWEEP_PAGE, note_expired, &w);
        if (error == 0 && w.count > 0)
            error = td_transact(store, sweep_unit, &w);
        *deleted += error == 0 ? w.count : 0;
        if (w.done || w.count < SWEEP_PAGE)
            break;
    }
    free(w.entries);
    return error;
}
