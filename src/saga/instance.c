/*
 * instance.c: a saga instance's document, and the deadline index that the
 * timer scans in due order. Both change in the transition's unit of work.
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "saga/saga_int.h"
#include "store/txn_internal.h"

int td_saga__key(char buf[TD_SAGA_KEY_MAX + 1], const char *saga, const char *correlation_id)
{
    int n = snprintf(buf, TD_SAGA_KEY_MAX + 1, "%s|%s", saga, correlation_id);
    return n < 0 || n > TD_SAGA_KEY_MAX ? td_error__set(TD_ETOOBIG, "saga key too long") : 0;
}

int td_saga__deadline_key(char buf[TD_SAGA_KEY_MAX + 1], const char *saga, td_time deadline,
                          const char *correlation_id)
{
    int n = snprintf(buf, TD_SAGA_KEY_MAX + 1, "%s|%020lld|%s", saga, (long long)deadline,
                     correlation_id);
    return n < 0 || n > TD_SAGA_KEY_MAX ? td_error__set(TD_ETOOBIG, "saga key too long") : 0;
}

int td_saga__load(td_txn *txn, td_saga *saga, const char *correlation_id, td_saga_loaded *out)
{
    char key[TD_SAGA_KEY_MAX + 1];
    json_error_t err;
    memset(out, 0, sizeof *out);
    int error = td_saga__key(key, saga->def->name, correlation_id);
    if (error == 0)
        error = td_txn_doc_get(txn, TD_COLL_SAGAS, key, &out->text, &out->len);
    if (error == TD_ENOTFOUND)
        return 0;
    if (error == 0 && (out->instance = td_json_cache_take(saga->instances, key, out->text, out->len,
                                                          0, &err)) == NULL)
        error = td_error__set(TD_ECORRUPT, "saga instance %s is not JSON: %s", key, err.text);
    if (error < 0)
        td_saga__loaded_done(saga, correlation_id, out, false);
    return error;
}

void td_saga__loaded_done(td_saga *saga, const char *correlation_id, td_saga_loaded *loaded,
                          bool unchanged)
{
    char key[TD_SAGA_KEY_MAX + 1];
    if (unchanged && loaded->instance && td_saga__key(key, saga->def->name, correlation_id) == 0) {
        td_json_cache_give_back(saga->instances, key, loaded->text, loaded->len, loaded->instance);
        loaded->instance = NULL;
    }
    json_decref(loaded->instance);
    td_free(loaded->text);
    memset(loaded, 0, sizeof *loaded);
}

json_t *td_saga__fresh(const char *saga, const char *correlation_id)
{
    td_time now = td_time_now();
    return json_pack("{s:s,s:s,s:n,s:b,s:{},s:n,s:[],s:[],s:[],s:I,s:I}", "saga", saga,
                     "correlation_id", correlation_id, "state", "completed", 0, "data", "deadline",
                     "compensations", "history", "ignored", "started_at", (json_int_t)now,
                     "updated_at", (json_int_t)now);
}

void td_saga__record(json_t *instance, const char *list, const td_event *event, const char *from,
                     const char *to)
{
    json_t *entries = json_object_get(instance, list);
    json_t *entry =
        json_pack("{s:I,s:s,s:I,s:s?,s:s?}", "at", (json_int_t)td_time_now(), "event", event->type,
                  "position", (json_int_t)event->position, "from", from, "to", to);
    if (entries && entry) {
        json_array_append_new(entries, entry);
        if (strcmp(list, "ignored") == 0 && json_array_size(entries) > TD_SAGA_IGNORED_KEPT)
            json_array_remove(entries, 0);
    } else {
        json_decref(entry);
    }
}

/* Moves the instance's entry in the deadline index from old to new. */
static int move_deadline(td_txn *txn, const td_saga_ctx *ctx, td_time old_deadline)
{
    char key[TD_SAGA_KEY_MAX + 1];
    const char *saga = ctx->saga->def->name;
    int error = 0;
    if (old_deadline == ctx->deadline)
        return 0;
    if (old_deadline &&
        (error = td_saga__deadline_key(key, saga, old_deadline, ctx->correlation_id)) == 0) {
        error = td_txn_doc_delete(txn, TD_COLL_SAGA_DEADLINES, key);
        error = error == TD_ENOTFOUND ? 0 : error;
    }
    if (error == 0 && ctx->deadline &&
        (error = td_saga__deadline_key(key, saga, ctx->deadline, ctx->correlation_id)) == 0)
        error = td_txn_doc_put(txn, TD_COLL_SAGA_DEADLINES, key, "{}", 0);
    return error;
}

int td_saga__save(td_txn *txn, td_saga_ctx *ctx, td_time old_deadline)
{
    char key[TD_SAGA_KEY_MAX + 1];
    json_object_set_new(ctx->instance, "deadline",
                        ctx->deadline ? json_integer(ctx->deadline) : json_null());
    json_object_set_new(ctx->instance, "updated_at", json_integer(td_time_now()));
    int error = move_deadline(txn, ctx, old_deadline);
    if (error == 0)
        error = td_saga__key(key, ctx->saga->def->name, ctx->correlation_id);
    char *text = error == 0 ? json_dumps(ctx->instance, JSON_COMPACT) : NULL;
    if (error == 0 && text == NULL)
        error = td_error__oom();
    size_t len = text ? strlen(text) : 0;
    if (error == 0) /* serialised by jansson: valid JSON by construction */
        error = td_txn__doc_put_trusted(txn, TD_COLL_SAGAS, key, text, len);
    if (error == 0) /* for the next load; nobody changes the instance after its save */
        td_json_cache_keep(ctx->saga->instances, key, text, len, json_incref(ctx->instance));
    td_json__free(text);
    return error;
}
