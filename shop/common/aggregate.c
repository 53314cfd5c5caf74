/*
 * aggregate.c (shop): the shop's aggregates on libtidings' (its schema
 * versions, its data taken), and command plumbing (see aggregate.h).
 */
#include "common/aggregate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"

#define CONFLICT_RETRIES 3

int agg_load(td_txn *txn, shop_aggregate *a, const char *category, const char *id,
             shop_fold_fn fold)
{
    return td_aggregate_load(txn, a, category, id, fold);
}

void agg_dispose(shop_aggregate *a)
{
    td_aggregate_dispose(a);
}

int agg_read(td_store *store, const char *category, shop_fold_fn fold, const char *id,
             json_t **state, int64_t *version)
{
    return td_aggregate_read(store, category, id, fold, state, version);
}

int agg_read_at(td_store *store, const char *category, shop_fold_fn fold, const char *id,
                int64_t version, json_t **state)
{
    return td_aggregate_read_at(store, category, id, version, fold, state);
}

int agg_append(td_txn *txn, shop_aggregate *a, shop_new_event *events, size_t count,
               shop_fold_fn fold)
{
    td_aggregate_event evs[TD_AGGREGATE_APPEND_MAX] = {0}; /* -O2 cannot see count bounds the use */
    int error = count <= TD_AGGREGATE_APPEND_MAX ? 0 : TD_EINVAL;
    for (size_t i = 0; error == 0 && i < count; i++) {
        evs[i] = (td_aggregate_event){events[i].type, events[i].source, events[i].kind,
                                      shop_schema_version(events[i].type), events[i].data};
        if (events[i].data == NULL)
            error = TD_ENOMEM; /* a json_pack that failed */
    }
    if (error == 0)
        error = td_aggregate_append(txn, a, evs, count, fold);
    for (size_t i = 0; i < count; i++)
        json_decref(events[i].data);
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
