/*
 * aggregate.c (shop): snapshots, appends and command plumbing (see
 * aggregate.h).
 */
#include "common/aggregate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"

#define CONFLICT_RETRIES 3

static void snapshot_collection(char buf[80], const char *category)
{
    snprintf(buf, 80, "snap_%s", category);
}

static int parse_snapshot(const char *text, size_t len, json_t **state, int64_t *version)
{
    json_error_t err;
    json_t *doc = json_loadb(text, len, 0, &err);
    json_int_t v = 0;
    json_t *s = NULL;
    if (doc == NULL || json_unpack(doc, "{s:I,s:o}", "version", &v, "state", &s) < 0) {
        json_decref(doc);
        return TD_ECORRUPT;
    }
    *state = json_incref(s);
    *version = v;
    json_decref(doc);
    return 0;
}

/* Folds the events after a snapshot onto it. */
typedef struct catch_up {
    shop_aggregate *a;
    shop_fold_fn fold;
} catch_up;

static int fold_one(const td_event *ev, void *payload)
{
    catch_up *c = payload;
    json_t *data;
    int error = td_event_data(&data, ev);
    if (error < 0)
        return error;
    c->a->state = c->fold(c->a->state, ev->type, data); /* the fold takes the old state */
    json_decref(data);
    if (c->a->state == NULL)
        return shop_fail(TD_ECORRUPT, "internal_error", NULL,
                         "event %lld (%s) of %s-%s cannot be applied", (long long)ev->position,
                         ev->type, c->a->category, c->a->id);
    c->a->version = ev->version;
    return 0;
}

static void stream_of(char stream[TD_STREAM_MAX + 1], const shop_aggregate *a)
{
    snprintf(stream, TD_STREAM_MAX + 1, "%s-%s", a->category, a->id);
}

static void start(shop_aggregate *a, const char *category, const char *id)
{
    memset(a, 0, sizeof *a);
    a->category = category;
    snprintf(a->id, sizeof a->id, "%s", id);
}

int agg_load(td_txn *txn, shop_aggregate *a, const char *category, const char *id,
             shop_fold_fn fold)
{
    char collection[80], *text = NULL, stream[TD_STREAM_MAX + 1];
    size_t len = 0;
    start(a, category, id);
    snapshot_collection(collection, category);
    int error = td_txn_doc_get(txn, collection, id, &text, &len);
    if (error == 0)
        error = parse_snapshot(text, len, &a->state, &a->version);
    td_free(text);
    catch_up c = {a, fold};
    stream_of(stream, a);
    if (error == 0 || error == TD_ENOTFOUND)
        error = td_txn_read_stream(txn, stream, a->version + 1, 0, fold_one, &c);
    if (error < 0)
        agg_dispose(a);
    return error;
}

int agg_read(td_store *store, const char *category, shop_fold_fn fold, const char *id,
             json_t **state, int64_t *version)
{
    char collection[80], *text = NULL, stream[TD_STREAM_MAX + 1];
    size_t len = 0;
    shop_aggregate a;
    start(&a, category, id);
    snapshot_collection(collection, category);
    int error = td_store_doc_get(store, collection, id, &text, &len);
    if (error == 0)
        error = parse_snapshot(text, len, &a.state, &a.version);
    td_free(text);
    catch_up c = {&a, fold};
    stream_of(stream, &a);
    if (error == 0 || error == TD_ENOTFOUND)
        error = td_store_read_stream(store, stream, a.version + 1, 0, fold_one, &c);
    if (error == 0 && a.state == NULL)
        error = TD_ENOTFOUND;
    if (error < 0) {
        agg_dispose(&a);
        return error;
    }
    *state = a.state;
    if (version)
        *version = a.version;
    return 0;
}

int agg_read_at(td_store *store, const char *category, shop_fold_fn fold, const char *id,
                int64_t version, json_t **state)
{
    char stream[TD_STREAM_MAX + 1];
    shop_aggregate a;
    start(&a, category, id);
    catch_up c = {&a, fold};
    stream_of(stream, &a);
    int error = td_store_read_stream(store, stream, 1, (size_t)version, fold_one, &c);
    if (error == 0 && (a.state == NULL || a.version != version))
        error = TD_ENOTFOUND;
    if (error < 0) {
        agg_dispose(&a);
        return error;
    }
    *state = a.state;
    return 0;
}

void agg_dispose(shop_aggregate *a)
{
    json_decref(a->state);
    a->state = NULL;
}

static int write_snapshot(td_txn *txn, const shop_aggregate *a)
{
    char collection[80];
    snapshot_collection(collection, a->category);
    json_t *doc = json_pack("{s:I,s:O}", "version", (json_int_t)a->version, "state", a->state);
    int error = doc ? td_txn_doc_put_json(txn, collection, a->id, doc) : TD_ENOMEM;
    json_decref(doc);
    return error;
}

int agg_append(td_txn *txn, shop_aggregate *a, shop_new_event *events, size_t count,
               shop_fold_fn fold)
{
    char stream[TD_STREAM_MAX + 1];
    td_event evs[8];
    char *texts[8] = {0};
    int error = count <= 8 ? 0 : TD_EINVAL;
    stream_of(stream, a);
    for (size_t i = 0; error == 0 && i < count; i++) {
        td_event_init(&evs[i]);
        evs[i].type = events[i].type;
        evs[i].source = events[i].source;
        evs[i].kind = events[i].kind;
        evs[i].schema_version = shop_schema_version(events[i].type);
        texts[i] = events[i].data ? json_dumps(events[i].data, JSON_COMPACT) : NULL;
        evs[i].data = texts[i];
        if (texts[i] == NULL)
            error = TD_ENOMEM;
    }
    if (error == 0)
        error = td_txn_append(txn, stream, a->version, evs, count);
    for (size_t i = 0; error == 0 && i < count; i++)
        if ((a->state = fold(a->state, events[i].type, events[i].data)) == NULL)
            error = TD_ENOMEM;
    if (error == 0) {
        a->version += (int64_t)count;
        error = write_snapshot(txn, a);
    }
    for (size_t i = 0; i < count; i++) {
        free(texts[i]);
        json_decref(events[i].data);
    }
    return error;
}

int cmd_fail(shop_cmd *cmd, int status, const char *code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd->message, sizeof cmd->message, fmt, ap);
    va_end(ap);
    cmd->status = status;
    cmd->code = code;
    snprintf(cmd->field, sizeof cmd->field, "%s", field ? field : "");
    return status;
}

/* The calling thread's unit guard (shop.h). */
static _Thread_local shop_unit_guard_fn guard_fn;
static _Thread_local void *guard_payload;

void shop_set_unit_guard(shop_unit_guard_fn fn, void *payload)
{
    guard_fn = fn;
    guard_payload = payload;
}

typedef struct guarded {
    td_unit_fn fn;
    shop_cmd *cmd;
    shop_unit_guard_fn guard;
    void *guard_payload;
} guarded;

/* The command, then the guard, in one unit. */
static int guarded_unit(td_txn *txn, void *payload)
{
    guarded *g = payload;
    int error = g->fn(txn, g->cmd);
    if (error < 0 || g->guard == NULL)
        return error;
    const char *code = NULL;
    char message[sizeof g->cmd->message] = "";
    error = g->guard(txn, g->guard_payload, g->cmd->created, &code, message, sizeof message);
    if (error < 0 && code)
        cmd_fail(g->cmd, error, code, NULL, "%s", message);
    return error;
}

int shop_run(td_store *store, td_unit_fn fn, void *payload)
{
    shop_cmd *cmd = payload;
    guarded g = {fn, cmd, guard_fn, guard_payload};
    int error = TD_ECONFLICT;
    for (int attempt = 0; attempt < CONFLICT_RETRIES && error == TD_ECONFLICT; attempt++) {
        cmd->status = 0;
        cmd->code = NULL;
        error = td_transact(store, guarded_unit, &g);
        if (cmd->code) /* a domain decision, not a race: do not retry */
            break;
    }
    if (error == 0)
        return 0;
    if (cmd->code)
        return shop_fail(error, cmd->code, cmd->field[0] ? cmd->field : NULL, "%s", cmd->message);
    return shop_fail_td(error);
}

int shop_event(td_event *ev, char **text, const char *type, const char *source, td_event_kind kind,
               json_t *data)
{
    td_event_init(ev);
    *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (*text == NULL)
        return TD_ENOMEM;
    ev->type = type;
    ev->source = source;
    ev->kind = kind;
    ev->data = *text;
    return 0;
}

int shop_new_id(char id[SHOP_ID_LEN + 1])
{
    td_uuid uuid;
    int error = td_uuid_v7(&uuid);
    if (error < 0)
        return shop_fail_td(error);
    td_uuid_format(id, &uuid);
    return 0;
}
