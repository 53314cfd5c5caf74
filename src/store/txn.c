/*
 * txn.c: what a unit of work can do: append and import events, read a
 * stream, and put, get, delete and list documents.
 *
 * Everything that is the same for every backend happens here: name and
 * payload checks, expected-version checks, position and version assignment,
 * and the defaults of unset envelope fields. All checks run before the first
 * row is written; an append of several events also runs under a savepoint of
 * its own, so a failing call leaves nothing behind even if the unit goes on.
 *
 * A td_txn is only valid during its unit, on the writer thread. While a read
 * callback runs, the transaction refuses writes and nested reads: both would
 * disturb the statement being stepped.
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "store/store_int.h"
#include "tidings/audit.h"

#define DOC_KEY_MAX   200
#define DOC_MAX_BYTES (16 * 1024 * 1024)

static int refuse_while_reading(const td_txn *txn)
{
    if (txn->reading)
        return td_error__set(TD_EINVAL, "the unit of work is inside a read callback");
    return 0;
}

int td_txn__check_event(const td_store *store, const td_event *ev, bool payloads)
{
    size_t data_len = td_json__length(ev->data, ev->data_len);
    size_t meta_len = td_json__length(ev->metadata, ev->metadata_len);
    size_t max = store->opts.max_event_bytes;
    int error = td_type_check(ev->type);
    if (error == 0 && ev->source)
        error = td_source_check(ev->source);
    if (error == 0 && ev->correlation_id)
        error = td_ref_id_check(ev->correlation_id);
    if (error == 0 && ev->causation_id)
        error = td_ref_id_check(ev->causation_id);
    if (error == 0 && ev->traceparent[0])
        error = td_traceparent_check(ev->traceparent);
    if (error == 0 &&
        (ev->schema_version < 0 || (ev->kind != TD_KIND_DOMAIN && ev->kind != TD_KIND_INTEGRATION)))
        error = td_error__set(TD_EINVAL, "invalid schema version or kind");
    if (error == 0 && ev->data == NULL)
        error = td_error__set(TD_EINVAL, "event data is missing");
    if (error == 0 && data_len + meta_len > max)
        error = td_error__set(TD_ETOOBIG, "event of %zu bytes is over the limit of %zu bytes",
                              data_len + meta_len, max);
    if (error == 0 && payloads)
        error = td_json__check_object("event data", ev->data, data_len, max);
    if (error == 0 && payloads && ev->metadata)
        error = td_json__check_object("event metadata", ev->metadata, meta_len, max);
    return error;
}

static int check_expected(const char *stream, int64_t expected, int64_t current)
{
    if (expected < TD_EXPECT_ANY)
        return td_error__set(TD_EINVAL, "invalid expected version %lld", (long long)expected);
    if (expected != TD_EXPECT_ANY && expected != current)
        return td_error__set(TD_ECONFLICT, "stream '%s' is at version %lld, expected %lld", stream,
                             (long long)current, (long long)expected);
    return 0;
}

int td_txn__try_contained(td_txn *txn, td_unit_fn fn, void *payload, int *fn_rc)
{
    const td_backend *b = txn->store->backend;
    int64_t saved_head = *txn->head;
    uint8_t saved_hash[32];
    memcpy(saved_hash, txn->last_hash, sizeof saved_hash);
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = b->savepoint(txn->conn);
    if (error < 0)
        return error;
    size_t queued = txn->queued_count, spans = txn->span_count;
    *fn_rc = fn(txn, payload);
    if (*fn_rc >= 0 && (error = b->release(txn->conn)) == 0)
        return 0;
    td_store__observers_truncate(txn, queued); /* their appends are undone */
    txn->span_count = spans;
    *txn->head = saved_head;
    memcpy(txn->last_hash, saved_hash, sizeof saved_hash);
    if (error < 0) { /* the release failed (a write held back): the savepoint is open */
        (void)b->rollback_to(txn->conn);
        return error;
    }
    return b->rollback_to(txn->conn);
}

int td_txn_try(td_txn *txn, td_unit_fn fn, void *payload)
{
    TD_REQUIRE(txn && fn);
    int rc = 0;
    int error = td_txn__try_contained(txn, fn, payload, &rc);
    return error < 0 ? error : rc < 0 ? rc : 0;
}

void td_txn_set_cause(td_txn *txn, const td_event *cause)
{
    if (txn == NULL)
        return;
    txn->cause = cause;
    if (cause)
        td_uuid_format(txn->cause_id, &cause->id);
}

void td_txn_set_trace(td_txn *txn, const char *traceparent)
{
    if (txn == NULL)
        return;
    txn->trace[0] = '\0';
    if (traceparent && td_traceparent_check(traceparent) == 0)
        memcpy(txn->trace, traceparent, TD_TRACEPARENT_LEN + 1);
}

td_store *td_txn_store(td_txn *txn)
{
    if (txn == NULL)
        return NULL;
    return txn->store;
}

/* Fills correlation, causation and trace context from the unit's cause. */
static int inherit(const td_txn *txn, td_event *ev)
{
    const td_event *cause = txn->cause;
    if (ev->traceparent[0] == '\0' && txn->trace[0] != '\0')
        memcpy(ev->traceparent, txn->trace, TD_TRACEPARENT_LEN + 1);
    if (cause == NULL)
        return 0;
    if (ev->correlation_id == NULL)
        ev->correlation_id = cause->correlation_id ? cause->correlation_id : txn->cause_id;
    if (ev->causation_id == NULL)
        ev->causation_id = txn->cause_id;
    if (ev->traceparent[0] == '\0' && cause->traceparent[0] != '\0')
        return td_traceparent__child(ev->traceparent, cause->traceparent);
    return 0;
}

/* Fills the store-assigned and defaulted fields of one event. */
static int assign(const td_txn *txn, td_event *ev, const char *stream, int64_t version,
                  int64_t position)
{
    int error = inherit(txn, ev);
    ev->stream = stream;
    ev->version = version;
    ev->position = position;
    if (td_uuid_is_nil(&ev->id))
        error = td_uuid_v7(&ev->id);
    if (ev->occurred_at == 0)
        ev->occurred_at = td_time_now();
    if (ev->schema_version == 0)
        ev->schema_version = 1;
    if (error == 0 && ev->traceparent[0] == '\0')
        error = td_traceparent__new(ev->traceparent);
    return error;
}

/* Inserts a copy of ev with its source and lengths resolved, linked into
 * the audit chain; the link is written back into ev. */
static void make_row(td_event *row, const td_event *ev, const char *category,
                     const uint8_t previous[32])
{
    *row = *ev;
    if (row->source == NULL)
        row->source = category;
    row->data_len = td_json__length(row->data, row->data_len);
    row->metadata = row->metadata ? row->metadata : "{}";
    row->metadata_len = td_json__length(row->metadata, ev->metadata ? ev->metadata_len : 0);
    td_event_hash(row->hash, previous, row);
}

static int insert(td_txn *txn, td_event *ev, const char *category)
{
    td_event row;
    make_row(&row, ev, category, txn->last_hash);
    int error = txn->store->backend->insert(txn->conn, &row);
    if (error == 0) {
        memcpy(txn->last_hash, row.hash, sizeof row.hash);
        memcpy(ev->hash, row.hash, sizeof row.hash);
    }
    return error;
}

/* Keeps the span of an append whose traceparent the store made, for the
 * tracer once the unit is durable (writer.c). Running out of memory loses
 * the span, never the append. */
static void note_span(td_txn *txn, const td_event *ev, const char *parent)
{
    if (txn->span_count == txn->span_cap) {
        size_t cap = txn->span_cap ? txn->span_cap * 2 : 4;
        td_append_span *grown = td_realloc(txn->spans, cap * sizeof *grown);
        if (grown == NULL)
            return;
        txn->spans = grown;
        txn->span_cap = cap;
    }
    td_append_span *a = &txn->spans[txn->span_count++];
    memcpy(a->traceparent, ev->traceparent, sizeof a->traceparent);
    snprintf(a->parent, sizeof a->parent, "%.16s", parent);
    snprintf(a->type, sizeof a->type, "%s", ev->type);
    snprintf(a->stream, sizeof a->stream, "%s", ev->stream);
    td_uuid_format(a->event_id, &ev->id);
    a->position = ev->position;
    a->start_ns = td_trace_now_ns();
}

/* append_rows for a backend that inserts many rows in one call: every
 * row made and chained first, then one insert_batch, or insert_later
 * (later) when the store makes every id. */
static int append_batch(td_txn *txn, const char *stream, int64_t current, td_event *events,
                        size_t count, const char *category, bool later)
{
    td_event *rows = td_malloc(count * sizeof *rows);
    bool *made_here = td_malloc(count * sizeof *made_here);
    int error = rows && made_here ? 0 : td_error__oom();
    for (size_t i = 0; i < count && error == 0; i++) {
        td_event *ev = &events[i];
        made_here[i] = ev->traceparent[0] == '\0' && txn->trace[0] == '\0';
        error = assign(txn, ev, stream, current + 1 + (int64_t)i, *txn->head + 1 + (int64_t)i);
        if (error == 0)
            make_row(&rows[i], ev, category, i ? rows[i - 1].hash : txn->last_hash);
    }
    if (error == 0 && later)
        error = txn->store->backend->insert_later(txn->conn, rows, count);
    else if (error == 0)
        error = txn->store->backend->insert_batch(txn->conn, rows, count);
    if (error == TD_EEXISTS)
        error = td_error__set(TD_EEXISTS, "an event with this id is stored already");
    for (size_t i = 0; i < count && error == 0; i++) {
        memcpy(events[i].hash, rows[i].hash, sizeof rows[i].hash);
        const td_event *cause = txn->cause;
        if (made_here[i] && txn->store->tracer)
            note_span(txn, &events[i],
                      cause && cause->traceparent[0] ? cause->traceparent + 36 : "");
    }
    if (error == 0)
        memcpy(txn->last_hash, rows[count - 1].hash, sizeof rows[count - 1].hash);
    td_free(rows);
    td_free(made_here);
    return error;
}

static int append_rows(td_txn *txn, const char *stream, int64_t current, td_event *events,
                       size_t count, const char *category)
{
    int error = 0;
    /* Ids the store makes cannot be taken already (a UUIDv7's time and 74
     * random bits): their inserts may be held back (insert_later); a caller's
     * own ids are inserted at once, so that a duplicate is the append's
     * TD_EEXISTS (the broker's intake and idempotent callers rely on it). */
    bool later = txn->store->backend->insert_later != NULL;
    for (size_t i = 0; i < count && later; i++)
        later = td_uuid_is_nil(&events[i].id);
    if (later || (count > 1 && txn->store->backend->insert_batch))
        return append_batch(txn, stream, current, events, count, category, later);
    for (size_t i = 0; i < count && error == 0; i++) {
        td_event *ev = &events[i];
        /* a traceparent the store makes names a span of its own: the append */
        bool made_here = ev->traceparent[0] == '\0' && txn->trace[0] == '\0';
        const td_event *cause = txn->cause;
        error = assign(txn, ev, stream, current + 1 + (int64_t)i, *txn->head + 1 + (int64_t)i);
        if (error == 0)
            error = insert(txn, ev, category);
        if (error == 0 && made_here && txn->store->tracer)
            note_span(txn, ev, cause && cause->traceparent[0] ? cause->traceparent + 36 : "");
        /* the unique index on id refuses a duplicate; its position and
         * (stream, version) are new by construction */
        if (error == TD_EEXISTS)
            error = td_error__set(TD_EEXISTS, "an event with this id is stored already");
    }
    return error;
}

static int run_hook(td_txn *txn, const td_event *events, size_t count)
{
    td_append_hook hook = txn->store->append_hook;
    if (hook == NULL)
        return 0;
    if (txn->depth >= TD_APPEND_DEPTH_MAX)
        return td_error__set(TD_EINVAL, "appends nested deeper than %d by append hooks",
                             TD_APPEND_DEPTH_MAX);
    txn->depth++;
    int error = hook(txn, events, count, txn->store->append_hook_payload);
    txn->depth--;
    return error;
}

int td_txn_append(td_txn *txn, const char *stream, int64_t expected_version, td_event *events,
                  size_t count)
{
    TD_REQUIRE(txn);
    const td_backend *b = txn->store->backend;
    char category[TD_CATEGORY_MAX + 1];
    int64_t current = 0;
    int error = refuse_while_reading(txn);
    if (error == 0 && (events == NULL || count == 0))
        error = td_error__set(TD_EINVAL, "no events to append");
    if (error == 0)
        error = td_stream_category(category, stream);
    for (size_t i = 0; error == 0 && i < count; i++)
        error = td_txn__check_event(txn->store, &events[i], !txn->prechecked);
    if (error == 0)
        error = b->stream_version(txn->conn, stream, &current);
    if (error == 0)
        error = check_expected(stream, expected_version, current);
    if (error < 0)
        return error;
    /* A lone insert is atomic by itself; several, or a hook's work, need a
     * savepoint so that a failure leaves nothing behind. */
    bool guarded = count > 1 || txn->store->append_hook;
    int64_t saved_head = *txn->head;
    uint8_t saved_hash[32];
    memcpy(saved_hash, txn->last_hash, sizeof saved_hash);
    size_t saved_queue = txn->queued_count, saved_spans = txn->span_count;
    if (guarded && (error = b->savepoint(txn->conn)) < 0)
        return error;
    error = append_rows(txn, stream, current, events, count, category);
    if (error == 0) {
        *txn->head += (int64_t)count;
        td_store__observers_queue(txn, events, count); /* before what the hook appends */
        error = run_hook(txn, events, count);
    }
    /* A failed release leaves the savepoint open: rolled back below. */
    if (error == 0 && guarded && (error = b->release(txn->conn)) == 0)
        guarded = false;
    if (error < 0) {
        td_store__observers_truncate(txn, saved_queue);
        txn->span_count = saved_spans;
        *txn->head = saved_head;
        memcpy(txn->last_hash, saved_hash, sizeof saved_hash);
    }
    if (guarded)
        (void)b->rollback_to(txn->conn);
    return error;
}

/* ---- import --------------------------------------------------------------- */

typedef struct same_ctx {
    const td_event *wanted;
    bool same;
} same_ctx;

static int compare_stored(const td_event *stored, void *payload)
{
    same_ctx *ctx = payload;
    ctx->same = stored->position == ctx->wanted->position &&
                stored->version == ctx->wanted->version &&
                strcmp(stored->stream, ctx->wanted->stream) == 0;
    return 0;
}

static int check_import_fields(td_txn *txn, const td_event *ev)
{
    int error = td_stream_check(ev->stream);
    if (error == 0)
        error = td_txn__check_event(txn->store, ev, !txn->prechecked);
    if (error == 0 && (ev->position < 1 || ev->version < 1 || ev->schema_version < 1 ||
                       td_uuid_is_nil(&ev->id) || ev->traceparent[0] == '\0'))
        error = td_error__set(TD_EINVAL, "an imported event needs its position, version, id, "
                                         "schema version and traceparent");
    return error;
}

int td_txn_import(td_txn *txn, const td_event *ev)
{
    TD_REQUIRE(txn && ev);
    const td_backend *b = txn->store->backend;
    char category[TD_CATEGORY_MAX + 1];
    same_ctx ctx = {ev, false};
    int64_t current = 0;
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = check_import_fields(txn, ev);
    if (error < 0)
        return error;
    error = b->read_event(txn->conn, &ev->id, compare_stored, &ctx);
    if (error == 0)
        return ctx.same ? 1
                        : td_error__set(TD_EEXISTS,
                                        "event %lld: its id is stored already "
                                        "with another stream, version or position",
                                        (long long)ev->position);
    if (error != TD_ENOTFOUND)
        return error;
    if ((error = b->stream_version(txn->conn, ev->stream, &current)) < 0)
        return error;
    if (ev->version != current + 1)
        return td_error__set(TD_ECONFLICT,
                             "event %lld: stream '%s' is at version %lld, the "
                             "event has version %lld",
                             (long long)ev->position, ev->stream, (long long)current,
                             (long long)ev->version);
    if (ev->position <= *txn->head)
        return td_error__set(TD_ECONFLICT, "event position %lld is not above the store's head %lld",
                             (long long)ev->position, (long long)*txn->head);
    td_stream_category(category, ev->stream);
    td_event row = *ev; /* the link is this store's, not the one imported */
    if ((error = insert(txn, &row, category)) == 0)
        *txn->head = ev->position;
    return error;
}

/* ---- reads ----------------------------------------------------------------- */

int td_txn_stream_version(td_txn *txn, const char *stream, int64_t *out)
{
    TD_REQUIRE(txn && out);
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = td_stream_check(stream);
    return error < 0 ? error : txn->store->backend->stream_version(txn->conn, stream, out);
}

int td_txn_read_stream(td_txn *txn, const char *stream, int64_t from_version, size_t limit,
                       td_event_fn fn, void *payload)
{
    TD_REQUIRE(txn && fn);
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = td_stream_check(stream);
    if (error < 0)
        return error;
    td_upcast_read wrap;
    fn = td_store__read_fn(txn->store, &wrap, fn, payload, &payload);
    txn->reading = true;
    error = txn->store->backend->read_stream(txn->conn, stream, from_version, limit, fn, payload);
    txn->reading = false;
    return error;
}

int td_txn_read(td_txn *txn, const td_read_query *query, td_event_fn fn, void *payload)
{
    TD_REQUIRE(txn && query && fn);
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = td_store__check_query(query);
    if (error < 0)
        return error;
    td_upcast_read wrap;
    fn = td_store__read_fn(txn->store, &wrap, fn, payload, &payload);
    txn->reading = true;
    error = txn->store->backend->read(txn->conn, query, fn, payload);
    txn->reading = false;
    return error;
}

int td_txn__read_stored(td_txn *txn, const td_read_query *query, td_event_fn fn, void *payload)
{
    TD_REQUIRE(txn && query && fn);
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = td_store__check_query(query);
    if (error < 0)
        return error;
    txn->reading = true;
    error = txn->store->backend->read(txn->conn, query, fn, payload);
    txn->reading = false;
    return error;
}

int64_t td_txn_head(const td_txn *txn)
{
    return *txn->head;
}

/* ---- documents --------------------------------------------------------------- */

int td_store__check_doc_key(const char *collection, const char *key)
{
    size_t n = 0;
    if (td_category_check(collection) < 0)
        return TD_EINVAL;
    if (key == NULL)
        return 0;
    for (; key[n]; n++)
        if (key[n] < 0x20 || key[n] > 0x7e)
            return td_error__set(TD_EINVAL, "document keys must be printable ASCII");
    if (n == 0 || n > DOC_KEY_MAX)
        return td_error__set(TD_EINVAL, "document keys must be 1..%d bytes", DOC_KEY_MAX);
    return 0;
}

int td_txn_doc_put(td_txn *txn, const char *collection, const char *key, const char *json,
                   size_t len)
{
    TD_REQUIRE(txn);
    size_t n = td_json__length(json, len);
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = td_store__check_doc_key(collection, key);
    if (error == 0 && json == NULL)
        error = td_error__set(TD_EINVAL, "missing document");
    if (error == 0)
        error = td_json__check_object("document", json, n, DOC_MAX_BYTES);
    return error < 0
               ? error
               : txn->store->backend->doc_put(txn->conn, collection, key, json, n, td_time_now());
}

int td_txn__doc_put_trusted(td_txn *txn, const char *collection, const char *key, const char *json,
                            size_t len)
{
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = td_store__check_doc_key(collection, key);
    if (error == 0 && len > DOC_MAX_BYTES)
        error = td_error__set(TD_ETOOBIG, "document of %zu bytes is over %d", len, DOC_MAX_BYTES);
    return error < 0
               ? error
               : txn->store->backend->doc_put(txn->conn, collection, key, json, len, td_time_now());
}

int td_txn_doc_put_json(td_txn *txn, const char *collection, const char *key, const json_t *doc)
{
    TD_REQUIRE(txn && collection && key && doc);
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = td_store__check_doc_key(collection, key);
    if (error == 0 && !json_is_object(doc))
        error = td_error__set(TD_EINVAL, "a document must be a JSON object");
    if (error < 0)
        return error;
    char *text = json_dumps(doc, JSON_COMPACT);
    if (text == NULL)
        return td_error__oom();
    size_t n = strlen(text);
    if (n > DOC_MAX_BYTES)
        error = td_error__set(TD_ETOOBIG, "document of %zu bytes is over %d", n, DOC_MAX_BYTES);
    else
        error = txn->store->backend->doc_put(txn->conn, collection, key, text, n, td_time_now());
    td_json__free(text);
    return error;
}

int td_txn_doc_get(td_txn *txn, const char *collection, const char *key, char **json, size_t *len)
{
    TD_REQUIRE(txn && json);
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = td_store__check_doc_key(collection, key);
    return error < 0 ? error : txn->store->backend->doc_get(txn->conn, collection, key, json, len);
}

int td_txn_doc_delete(td_txn *txn, const char *collection, const char *key)
{
    TD_REQUIRE(txn);
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = td_store__check_doc_key(collection, key);
    return error < 0 ? error : txn->store->backend->doc_delete(txn->conn, collection, key);
}

int td_txn_doc_list(td_txn *txn, const char *collection, const char *after_key, size_t limit,
                    td_doc_fn fn, void *payload)
{
    TD_REQUIRE(txn && fn);
    int error = refuse_while_reading(txn);
    if (error == 0)
        error = td_store__check_doc_key(collection, NULL);
    if (error < 0)
        return error;
    txn->reading = true;
    error = txn->store->backend->doc_list(txn->conn, collection, after_key, limit, fn, payload);
    txn->reading = false;
    return error;
}
