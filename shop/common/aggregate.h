/*
 * aggregate.h (shop): the shop's aggregates on libtidings' (tidings/
 * aggregate.h: stream <category>-<id>, snapshot in snap_<category>/<id>,
 * loaded and appended inside the caller's unit of work), with the shop's
 * schema versions, and the plumbing every command shares.
 *
 * Commands run their checks inside a unit of work, on the store's writer
 * thread: they record failures in a shop_cmd, and shop_run carries the
 * result back to the caller's thread as the shop error.
 */
#ifndef SHOP_COMMON_AGGREGATE_H
#define SHOP_COMMON_AGGREGATE_H

#include "shop.h"
#include "tidings/aggregate.h"

typedef td_aggregate_fold_fn shop_fold_fn;
typedef td_aggregate shop_aggregate;

/* Loads the aggregate (td_aggregate_load); events come upcast to the
 * current schema. */
int agg_load(td_txn *txn, shop_aggregate *a, const char *category, const char *id,
             shop_fold_fn fold);
void agg_dispose(shop_aggregate *a);

/* The schema version the shop writes type at (domain/event_versions.c). */
int32_t shop_schema_version(const char *type);

/* One event to append: type, source, kind and data (stolen; NULL from a
 * failed json_pack gives TD_ENOMEM). */
typedef struct shop_new_event {
    const char *type;
    const char *source;
    td_event_kind kind;
    json_t *data;
} shop_new_event;

/* td_aggregate_append at the shop's schema versions; takes the events'
 * data in every case. */
int agg_append(td_txn *txn, shop_aggregate *a, shop_new_event *events, size_t count,
               shop_fold_fn fold);

/* Reads a snapshot's state outside a unit of work. Caller owns *state. */
int agg_read(td_store *store, const char *category, shop_fold_fn fold, const char *id,
             json_t **state, int64_t *version);
/* The state as it was at version (folded from the first event, no snapshot).
 * Caller owns *state; TD_ENOTFOUND if the stream is not that long. */
int agg_read_at(td_store *store, const char *category, shop_fold_fn fold, const char *id,
                int64_t version, json_t **state);

/* ---- commands ------------------------------------------------------------------ */

typedef struct shop_cmd {
    const char *created; /* the id of the aggregate the command creates, or NULL */
    int status;
    const char *code;
    char field[128];
    char message[512];
} shop_cmd;

/* Records a failure of a command running in a unit; returns status. */
int cmd_fail(shop_cmd *cmd, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Runs fn in a unit of work, retrying version conflicts a few times (only
 * another process can cause them), and turns a failure into the shop error.
 * payload must start with a shop_cmd. */
int shop_run(td_store *store, td_unit_fn fn, void *payload);

/* Fills ev (initialised) with type, source, kind and data (stolen), the
 * data's text going to *text, which the caller frees with free() once the
 * event is appended. TD_ENOMEM if data is NULL. */
int shop_event(td_event *ev, char **text, const char *type, const char *source, td_event_kind kind,
               json_t *data);

/* Makes a new UUIDv7 in text form. */
int shop_new_id(char id[SHOP_ID_LEN + 1]);

#endif
