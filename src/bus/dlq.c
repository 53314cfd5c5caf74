/*
 * dlq.c: the operator's side of the dead-letter queue (tidings/dlq.h).
 *
 * Listing reads the entries' documents. Retry and drop do not touch delivery
 * themselves: they mark the entry, leave a request for the subscription
 * (requests.c carries it out) and add a line to the audit trail, all in one
 * unit of work, so a request is never half made.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/state.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"

/* The subscription, or a partition of it. */
static bool of_subscription(const char *wanted, const char *name)
{
    char whole[TD_SUBSCRIPTION_NAME_MAX + 1];
    td_partition p;
    return strcmp(wanted, name) == 0 ||
           (td_partition_parse(name, whole, sizeof whole, &p) && strcmp(wanted, whole) == 0);
}

static bool fits(const td_dlq_filter *f, const td_dead_letter *e)
{
    return f == NULL || ((!f->subscription || of_subscription(f->subscription, e->subscription)) &&
                         (!f->type || strcmp(f->type, e->type) == 0) &&
                         (!f->stream || strcmp(f->stream, e->stream) == 0));
}

typedef struct list_ctx {
    const td_dlq_filter *filter;
    td_dead_letter_fn fn;
    void *payload;
} list_ctx;

static int list_one(const char *key, const char *json, size_t len, void *payload)
{
    list_ctx *ctx = payload;
    td_dead_letter e;
    json_t *holder = NULL;
    int rc = td_state__dead_letter_from_json(&e, &holder, key, json, len);
    if (rc == 0 && fits(ctx->filter, &e))
        rc = ctx->fn(&e, ctx->payload);
    json_decref(holder);
    return rc;
}

int td_dlq_list(td_store *store, const td_dlq_filter *filter, td_dead_letter_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    list_ctx ctx = {filter, fn, payload};
    return td_store_doc_list(store, TD_COLL_DEAD_LETTERS, NULL, 0, list_one, &ctx);
}

static int check_id(const char *id)
{
    td_uuid ignored;
    if (id == NULL || td_uuid_parse(&ignored, id) < 0)
        return td_error__set(TD_EINVAL, "invalid dead letter id '%.40s'", id ? id : "");
    return 0;
}

int td_dlq_get(td_store *store, const char *id, td_dead_letter_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    char *json = NULL;
    size_t len = 0;
    list_ctx ctx = {NULL, fn, payload};
    int error = check_id(id);
    if (error == 0)
        error = td_store_doc_get(store, TD_COLL_DEAD_LETTERS, id, &json, &len);
    if (error == TD_ENOTFOUND)
        error = td_error__set(TD_ENOTFOUND, "no dead letter %s", id);
    if (error == 0)
        error = list_one(id, json, len, &ctx);
    td_free(json);
    return error < 0 ? error : 0;
}

/* ---- requests --------------------------------------------------------------- */

typedef struct request_args {
    const char *id;
    const char *action;
    const char *who;
} request_args;

static int audit(td_txn *txn, const td_dead_letter *e, const char *action, const char *who)
{
    td_uuid key;
    char key_text[TD_UUID_STR_LEN + 1], event_id[TD_UUID_STR_LEN + 1];
    int error = td_uuid_v7(&key);
    if (error < 0)
        return error;
    td_uuid_format(key_text, &key);
    td_uuid_format(event_id, &e->event_id);
    json_t *json = json_pack(
        "{s:I,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s}", "at", (json_int_t)td_time_now(), "who", who,
        "action", action, "dead_letter", e->id, "subscription", e->subscription, "position",
        (json_int_t)e->position, "event_id", event_id, "stream", e->stream, "type", e->type);
    char *text = NULL;
    if ((error = td_json__dump_steal(&text, NULL, json)) == 0)
        error = td_txn_doc_put(txn, TD_COLL_DLQ_AUDIT, key_text, text, 0);
    td_free(text);
    return error;
}

static int request_unit(td_txn *txn, void *payload)
{
    request_args *a = payload;
    char *json = NULL, key[TD_STATE_KEY_MAX + 1];
    size_t len = 0;
    td_dead_letter e;
    json_t *holder = NULL;
    int error = td_txn_doc_get(txn, TD_COLL_DEAD_LETTERS, a->id, &json, &len);
    if (error == TD_ENOTFOUND)
        error = td_error__set(TD_ENOTFOUND, "no dead letter %s", a->id);
    if (error == 0)
        error = td_state__dead_letter_from_json(&e, &holder, a->id, json, len);
    if (error == 0 && (strcmp(e.status, "dead") != 0 || e.request))
        error = td_error__set(TD_EINVAL,
                              "dead letter %s is %s%s%s: only dead entries can be "
                              "retried or dropped",
                              a->id, e.status, e.request ? " with a pending " : "",
                              e.request ? e.request : "");
    if (error == 0) {
        e.request = a->action;
        error = td_state__put_dead_letter(txn, &e);
    }
    if (error == 0 && (error = td_state__key(key, e.subscription, a->id)) == 0) {
        char *text = NULL;
        error = td_json__dump_steal(&text, NULL,
                                    json_pack("{s:s,s:s,s:I}", "action", a->action, "who", a->who,
                                              "at", (json_int_t)td_time_now()));
        if (error == 0)
            error = td_txn_doc_put(txn, TD_COLL_DLQ_REQUESTS, key, text, 0);
        td_free(text);
    }
    if (error == 0)
        error = audit(txn, &e, a->action, a->who);
    json_decref(holder);
    td_free(json);
    return error;
}

static int request(td_store *store, const char *id, const char *action, const char *who)
{
    request_args a = {id, action, who && who[0] ? who : "unknown"};
    int error = check_id(id);
    return error < 0 ? error : td_transact(store, request_unit, &a);
}

int td_dlq_retry(td_store *store, const char *id, const char *who)
{
    TD_REQUIRE(store && id);
    return request(store, id, "retry", who);
}

int td_dlq_drop(td_store *store, const char *id, const char *who)
{
    TD_REQUIRE(store && id);
    return request(store, id, "drop", who);
}

typedef struct id_list {
    char (*ids)[TD_DEAD_LETTER_ID_LEN + 1];
    size_t count, cap;
} id_list;

static int collect_dead(const td_dead_letter *e, void *payload)
{
    id_list *l = payload;
    if (strcmp(e->status, "dead") != 0 || e->request)
        return 0;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        void *ids = td_realloc(l->ids, cap * sizeof *l->ids);
        if (ids == NULL)
            return td_error__oom();
        l->ids = ids;
        l->cap = cap;
    }
    memcpy(l->ids[l->count++], e->id, TD_DEAD_LETTER_ID_LEN + 1);
    return 0;
}

int td_dlq_retry_all(td_store *store, const td_dlq_filter *filter, const char *who, size_t *count)
{
    TD_REQUIRE(store);
    id_list l = {NULL, 0, 0};
    *count = 0;
    int error = td_dlq_list(store, filter, collect_dead, &l);
    for (size_t i = 0; error == 0 && i < l.count; i++)
        if ((error = td_dlq_retry(store, l.ids[i], who)) == 0)
            (*count)++;
    td_free(l.ids);
    return error;
}

typedef struct audit_ctx {
    td_dlq_audit_fn fn;
    void *payload;
} audit_ctx;

static int audit_one(const char *key, const char *json, size_t len, void *payload)
{
    audit_ctx *ctx = payload;
    (void)key;
    (void)len;
    return ctx->fn(json, ctx->payload);
}

int td_dlq_audit(td_store *store, td_dlq_audit_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    audit_ctx ctx = {fn, payload};
    return td_store_doc_list(store, TD_COLL_DLQ_AUDIT, NULL, 0, audit_one, &ctx);
}
