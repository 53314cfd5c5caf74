/*
 * store.c: opening and closing stores, and the calls that need no unit of
 * work: reads, waiting for new events, statistics.
 *
 * The URL picks the backend; everything else is the same for every backend.
 * A store that may write has a writer (writer.c); all reads go through the
 * reader pool (readers.c), so they never queue behind the writer.
 *
 * Change watching: the writer reports every durable commit here, which
 * raises watch_head and wakes td_store_wait() callers at once. Commits by
 * other processes are pushed by backends that can (PostgreSQL's
 * LISTEN/NOTIFY, through a watch thread started by the first wait), and
 * otherwise, or while that connection is down, found by asking the backend
 * for its head every poll_interval_ms while someone waits.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/lock.h"
#include "store/store_int.h"
#include "tidings/audit.h"

/* ---- opening ----------------------------------------------------------- */

/* Version 2 ended with writer_nice: a caller built against it passes a
 * shorter struct, so only that much of it is read. */
#define OPTIONS_V2_SIZE (offsetof(td_store_options, writer_nice) + sizeof(int))

static int resolve_options(td_store_options *out, const td_store_options *in)
{
    static const td_store_options defaults = TD_STORE_OPTIONS_INIT;
    *out = defaults;
    if (in && in->version == 2)
        memcpy(out, in, OPTIONS_V2_SIZE);
    else if (in)
        *out = *in;
    if (out->version != 2 && out->version != TD_STORE_OPTIONS_VERSION)
        return td_error__set(TD_EINVAL, "td_store_options version %u is not %u (or 2)",
                             out->version, TD_STORE_OPTIONS_VERSION);
    if (out->max_event_bytes == 0)
        out->max_event_bytes = TD_DEFAULT_MAX_EVENT_BYTES;
    if (out->busy_timeout_ms <= 0)
        out->busy_timeout_ms = 5000;
    if (out->max_batch == 0)
        out->max_batch = 1024;
    if (out->poll_interval_ms <= 0)
        out->poll_interval_ms = 50;
    return 0;
}

/* A read met corruption: writes stop (the writer's fail-stop), and a
 * read-only handle remembers it for td_store_health. */
static void on_fault(void *payload, int code, const char *why)
{
    td_store *store = payload;
    if (store->writer) {
        td_writer__fail(store->writer, code, why);
        return;
    }
    pthread_mutex_lock(&store->watch_lock);
    if (store->fault == 0) {
        store->fault = code;
        store->fault_since = td_time_now();
        snprintf(store->fault_message, sizeof store->fault_message, "%s", why);
    }
    pthread_mutex_unlock(&store->watch_lock);
}

void td_store_health_get(td_store *store, td_store_health *out)
{
    memset(out, 0, sizeof *out);
    out->state = TD_STORE_OK;
    if (store->writer) {
        td_writer__health(store->writer, out);
        return;
    }
    pthread_mutex_lock(&store->watch_lock);
    if (store->fault) {
        out->state = TD_STORE_FAILED;
        out->code = store->fault;
        out->since = store->fault_since;
        snprintf(out->message, sizeof out->message, "%s", store->fault_message);
    }
    pthread_mutex_unlock(&store->watch_lock);
}

/* The bounded check at open (td_store_options.skip_check): the backend's
 * own, then the audit chain's last links. */
static int check_at_open(td_store *store, td_conn *conn)
{
    char why[400];
    int error = store->backend->check_quick(conn);
    if (error == 0)
        error = td_store__audit_tail(store, conn, AUDIT_TAIL_LINKS);
    if (error == 0)
        return 0;
    td_error__copy(why, sizeof why);
    return td_error__set(error,
                         "store '%s' fails its check at open: %s ('tidings check' checks it in "
                         "full; skip_check, or --skip-check, opens it anyway)",
                         store->target, why);
}

static int start(td_store *store)
{
    td_conn *conn = NULL;
    int error = td_readers__new(&store->readers, store->backend, store->target, &store->opts,
                                on_fault, store);
    if (error == 0 && !store->opts.read_only) {
        error = store->backend->open(&conn, store->target, &store->opts, true);
        if (error == 0 && !store->opts.skip_check)
            error = check_at_open(store, conn);
        if (error == 0)
            error = td_writer__start(&store->writer, store, conn);
        if (error < 0 && conn) /* the writer did not take it */
            store->backend->close(conn);
    } else if (error == 0 && !store->opts.skip_check &&
               (error = td_readers__acquire(store->readers, &conn)) == 0) {
        error = check_at_open(store, conn);
        td_readers__release(store->readers, conn);
    }
    /* The first read both checks a read-only store and learns the head. An
     * operator who skips the check may have a store whose last page cannot
     * be read: it opens all the same, failed (td_store_health), for what
     * can still be read. */
    if (error == 0 && (error = td_store_head(store, &store->watch_head)) == TD_ECORRUPT &&
        store->opts.skip_check)
        error = 0;
    return error;
}

int td_store_open(td_store **out, const char *url, const td_store_options *opts)
{
    TD_REQUIRE(out && url);
    const td_backend *backend = NULL;
    const char *target = NULL;
    int error;

    if (out == NULL)
        return td_error__set(TD_EINVAL, "td_store_open: out is NULL");
    if ((error = td_backend__find(url, &backend, &target)) < 0)
        return error;
    td_store *store = td_calloc(1, sizeof *store);
    if (store == NULL)
        return td_error__oom();
    pthread_mutex_init(&store->watch_lock, NULL);
    pthread_mutex_init(&store->listeners_lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&store->watch_cond, &attr);
    pthread_condattr_destroy(&attr);
    store->backend = backend;
    store->watch_wake[0] = store->watch_wake[1] = -1;
    if ((error = resolve_options(&store->opts, opts)) == 0) {
        char shown[1024];
        if (backend->display)
            backend->display(url, shown, sizeof shown);
        else
            snprintf(shown, sizeof shown, "%s", url);
        store->url = td_strdup(shown);
        store->target = td_strdup(target);
        error = store->url && store->target ? 0 : td_error__oom();
    }
    if (error == 0)
        error = start(store);
    if (error < 0) {
        td_store_free(store);
        return error;
    }
    *out = store;
    return 0;
}

int td_store_destroy(td_store *store)
{
    if (store == NULL) /* documented: accepts NULL, as td_store_free does */
        return 0;
    const td_backend *backend = store->backend;
    char *target = td_strdup(store->target);
    td_store_free(store);
    int error = target ? backend->destroy(target) : td_error__oom();
    td_free(target);
    return error;
}

static void stop_watch(td_store *store);

void td_store_free(td_store *store)
{
    if (store == NULL)
        return;
    stop_watch(store);
    td_writer__stop(store->writer);
    td_readers__free(store->readers);
    pthread_cond_destroy(&store->watch_cond);
    pthread_mutex_destroy(&store->watch_lock);
    pthread_mutex_destroy(&store->listeners_lock);
    td_free(store->url);
    td_free(store->target);
    td_free(store);
}

int td_store__lock(td_store *store, const char *name, td_store_lock **out)
{
    return store->backend->lock(store->target, name, (td_lock **)out);
}

void td_store__unlock(td_store *store, td_store_lock *lock)
{
    store->backend->unlock((td_lock *)lock);
}

int td_store__lock_check(td_store *store, td_store_lock *lock)
{
    if (lock == NULL || store->backend->lock_check == NULL)
        return 0;
    return store->backend->lock_check((td_lock *)lock);
}

int td_store__lock_keep(td_store *store, const char *name, td_store_lock **lock)
{
    if (*lock && td_store__lock_check(store, *lock) == 0)
        return 0;
    td_store__unlock(store, *lock);
    *lock = NULL;
    return td_store__lock(store, name, lock);
}

bool td_store__locks_by_session(const td_store *store)
{
    return store->backend->lock_check != NULL;
}

const char *td_store_backend(const td_store *store)
{
    if (store == NULL)
        return NULL;
    return store->backend->name;
}

const char *td_store_url(const td_store *store)
{
    if (store == NULL)
        return NULL;
    return store->url;
}

bool td_store_read_only(const td_store *store)
{
    return store->writer == NULL;
}

/* ---- writing -------------------------------------------------------------- */

void td_store_set_tracer(td_store *store, td_tracer *tracer)
{
    if (store == NULL)
        return;
    store->tracer = tracer;
}

void td_store__export_spans(td_store *store, td_append_span *spans, size_t count)
{
    int64_t end = td_trace_now_ns();
    for (size_t i = 0; store->tracer && i < count; i++) {
        const td_append_span *a = &spans[i];
        char name[TD_TYPE_MAX + 8];
        td_span span = {.kind = TD_SPAN_PRODUCER,
                        .name = name,
                        .start_ns = a->start_ns,
                        .end_ns = end,
                        .event_type = a->type,
                        .event_id = a->event_id,
                        .stream = a->stream,
                        .position = a->position};
        snprintf(name, sizeof name, "append %s", a->type);
        memcpy(span.trace_id, a->traceparent + 3, 32);
        memcpy(span.span_id, a->traceparent + 36, 16);
        memcpy(span.parent_span_id, a->parent, sizeof span.parent_span_id);
        td_tracer_export(store->tracer, &span);
    }
    td_free(spans);
}

void td_store_set_append_hook(td_store *store, td_append_hook hook, void *payload)
{
    if (store == NULL)
        return;
    store->append_hook = hook;
    store->append_hook_payload = payload;
}

static int writable(const td_store *store)
{
    if (store == NULL)
        return td_error__set(TD_EINVAL, "store is NULL");
    if (store->writer == NULL)
        return td_error__set(TD_EINVAL, "store was opened read-only");
    return 0;
}

int td_transact(td_store *store, td_unit_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    int error = writable(store);
    if (error == 0 && fn == NULL)
        error = td_error__set(TD_EINVAL, "td_transact: fn is NULL");
    return error < 0 ? error : td_writer__submit(store->writer, fn, payload, false);
}

typedef struct append_args {
    const char *stream;
    int64_t expected_version;
    td_event *events;
    size_t count;
} append_args;

static int append_unit(td_txn *txn, void *payload)
{
    append_args *a = payload;
    return td_txn_append(txn, a->stream, a->expected_version, a->events, a->count);
}

int td_store_append(td_store *store, const char *stream, int64_t expected_version, td_event *events,
                    size_t count)
{
    TD_REQUIRE(store);
    append_args args = {stream, expected_version, events, count};
    int error = writable(store);
    if (error == 0)
        error = td_stream_check(stream);
    if (error == 0 && (events == NULL || count == 0))
        error = td_error__set(TD_EINVAL, "no events to append");
    for (size_t i = 0; error == 0 && i < count; i++)
        error = td_txn__check_event(store, &events[i], true);
    return error < 0 ? error : td_writer__submit(store->writer, append_unit, &args, true);
}

/* ---- reads ------------------------------------------------------------------ */

int td_store__check_query(const td_read_query *q)
{
    if (q == NULL)
        return td_error__set(TD_EINVAL, "missing read query");
    if (q->after_position < 0)
        return td_error__set(TD_EINVAL, "negative position");
    if (q->stream && td_stream_check(q->stream) < 0)
        return TD_EINVAL;
    if (q->type && td_type_check(q->type) < 0)
        return TD_EINVAL;
    if (q->category && td_category_check(q->category) < 0)
        return TD_EINVAL;
    return 0;
}

/* ---- reads, upcast on the way out (upcast.h) ------------------------------- */

void td_store_set_upcasters(td_store *store, const td_upcasters *upcasters)
{
    if (store == NULL)
        return;
    store->upcasters = upcasters;
}

const td_upcasters *td_store_upcasters(const td_store *store)
{
    if (store == NULL)
        return NULL;
    return store->upcasters;
}

static int upcast_each(const td_event *ev, void *payload)
{
    td_upcast_read *w = payload;
    td_event *up;
    /* Checked as each event comes: the snapshot may have begun after the
     * read did, and a batch committed since then is marked by now. */
    if (w->capped_by && ev->position > td_store__visible_through(w->capped_by)) {
        w->hidden = true;
        return 1; /* reads run in position order: the rest is newer still */
    }
    if (w->upcasters == NULL)
        return w->fn(ev, w->payload);
    int error = td_upcast(w->upcasters, ev, &up);
    if (error < 0 || up == NULL)
        return error < 0 ? error : w->fn(ev, w->payload);
    error = w->fn(up, w->payload);
    td_event_free(up);
    return error;
}

td_event_fn td_store__read_fn(const td_store *store, td_upcast_read *wrap, td_event_fn fn,
                              void *payload, void **payload_out)
{
    *payload_out = payload;
    if (store->upcasters == NULL)
        return fn;
    *wrap = (td_upcast_read){store->upcasters, NULL, false, fn, payload};
    *payload_out = wrap;
    return upcast_each;
}

int64_t td_store__visible_through(const td_store *store)
{
    return store->writer && store->opts.pipelined_commits
               ? td_writer__visible_through(store->writer)
               : INT64_MAX;
}

/* The same for reads outside units: they also stop before events that are
 * committed but not durable yet (pipelined commits). */
static td_event_fn reader_fn(const td_store *store, td_upcast_read *wrap, td_event_fn fn,
                             void *payload, void **payload_out, bool as_stored)
{
    const td_upcasters *upcasters = as_stored ? NULL : store->upcasters;
    const td_store *capped_by = store->writer && store->opts.pipelined_commits ? store : NULL;
    *wrap = (td_upcast_read){upcasters, capped_by, false, fn, payload};
    *payload_out = payload;
    if (upcasters == NULL && capped_by == NULL)
        return fn;
    *payload_out = wrap;
    return upcast_each;
}

static int read_all(td_store *store, const td_read_query *query, td_event_fn fn, void *payload,
                    bool as_stored)
{
    td_conn *conn;
    td_upcast_read wrap;
    int error = td_store__check_query(query);
    if (error < 0 || (error = td_readers__acquire(store->readers, &conn)) < 0)
        return error;
    fn = reader_fn(store, &wrap, fn, payload, &payload, as_stored);
    error = store->backend->read(conn, query, fn, payload);
    td_readers__release(store->readers, conn);
    return error;
}

static int read_event(td_store *store, const td_uuid *id, td_event_fn fn, void *payload,
                      bool as_stored)
{
    td_conn *conn;
    td_upcast_read wrap;
    int error = td_readers__acquire(store->readers, &conn);
    if (error < 0)
        return error;
    fn = reader_fn(store, &wrap, fn, payload, &payload, as_stored);
    error = store->backend->read_event(conn, id, fn, payload);
    td_readers__release(store->readers, conn);
    if (error == 0 && wrap.hidden)
        error = td_error__set(TD_ENOTFOUND, "no such event (yet)");
    return error;
}

int td_store_writer_stats(td_store *store, td_writer_stats *out)
{
    TD_REQUIRE(store && out);
    *out = (td_writer_stats){0};
    if (store->writer)
        td_writer__stats(store->writer, out);
    return 0;
}

int td_store_read(td_store *store, const td_read_query *query, td_event_fn fn, void *payload)
{
    TD_REQUIRE(store && query && fn);
    return read_all(store, query, fn, payload, false);
}

int td_store_read_stored(td_store *store, const td_read_query *query, td_event_fn fn, void *payload)
{
    TD_REQUIRE(store && query && fn);
    return read_all(store, query, fn, payload, true);
}

int td_store_read_event(td_store *store, const td_uuid *id, td_event_fn fn, void *payload)
{
    TD_REQUIRE(store && id && fn);
    return read_event(store, id, fn, payload, false);
}

int td_store__read_event_stored(td_store *store, const td_uuid *id, td_event_fn fn, void *payload)
{
    return read_event(store, id, fn, payload, true);
}

int td_store_read_stream(td_store *store, const char *stream, int64_t from_version, size_t limit,
                         td_event_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    td_conn *conn;
    td_upcast_read wrap;
    int error = td_stream_check(stream);
    if (error < 0 || (error = td_readers__acquire(store->readers, &conn)) < 0)
        return error;
    fn = reader_fn(store, &wrap, fn, payload, &payload, false);
    error = store->backend->read_stream(conn, stream, from_version, limit, fn, payload);
    td_readers__release(store->readers, conn);
    return error;
}

int td_store_stream_version(td_store *store, const char *stream, int64_t *out)
{
    TD_REQUIRE(store && out);
    td_conn *conn;
    int error = td_stream_check(stream);
    if (error < 0 || (error = td_readers__acquire(store->readers, &conn)) < 0)
        return error;
    error = store->backend->stream_version(conn, stream, out);
    td_readers__release(store->readers, conn);
    return error;
}

int td_store_head(td_store *store, int64_t *out)
{
    TD_REQUIRE(store && out);
    td_conn *conn;
    int error = td_readers__acquire(store->readers, &conn);
    if (error < 0)
        return error;
    error = store->backend->head(conn, out);
    td_readers__release(store->readers, conn);
    int64_t through = td_store__visible_through(store);
    if (error == 0 && *out > through)
        *out = through;
    return error;
}

/* Pipelined commits: a document read may have seen a batch that is not
 * durable yet; returning only once it is keeps reads from running ahead of
 * the disk. */
static int await_durable(td_store *store)
{
    return store->writer && store->opts.pipelined_commits ? td_writer__await_durable(store->writer)
                                                          : 0;
}

int td_store__doc_get_committed(td_store *store, const char *collection, const char *key,
                                char **json, size_t *len)
{
    td_conn *conn;
    int error = td_store__check_doc_key(collection, key);
    if (error < 0 || (error = td_readers__acquire(store->readers, &conn)) < 0)
        return error;
    error = store->backend->doc_get(conn, collection, key, json, len);
    td_readers__release(store->readers, conn);
    return error;
}

int td_store_doc_get(td_store *store, const char *collection, const char *key, char **json,
                     size_t *len)
{
    TD_REQUIRE(store && json);
    int error = td_store__doc_get_committed(store, collection, key, json, len);
    int durable = await_durable(store); /* read first: what it saw is committed by now */
    if (durable < 0 && error == 0) {
        td_free(*json);
        *json = NULL;
    }
    return durable < 0 ? durable : error;
}

int td_store_doc_list(td_store *store, const char *collection, const char *after_key, size_t limit,
                      td_doc_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    td_conn *conn;
    int error = td_store__check_doc_key(collection, NULL);
    if (error < 0 || (error = td_readers__acquire(store->readers, &conn)) < 0)
        return error;
    error = store->backend->doc_list(conn, collection, after_key, limit, fn, payload);
    td_readers__release(store->readers, conn);
    int durable = await_durable(store); /* callers act on what they saw once it returns */
    return durable < 0 ? durable : error;
}

int td_store_doc_collections(td_store *store, td_collection_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    td_conn *conn;
    int error = td_readers__acquire(store->readers, &conn);
    if (error < 0)
        return error;
    error = store->backend->doc_collections(conn, fn, payload);
    td_readers__release(store->readers, conn);
    return error;
}

int td_store_stats_get(td_store *store, td_store_stats *out)
{
    TD_REQUIRE(store && out);
    td_conn *conn;
    int error = td_readers__acquire(store->readers, &conn);
    if (error < 0)
        return error;
    error = store->backend->stats(conn, out);
    td_readers__release(store->readers, conn);
    return error;
}

int td_store_type_counts(td_store *store, td_type_count_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    td_conn *conn;
    int error = td_readers__acquire(store->readers, &conn);
    if (error < 0)
        return error;
    error = store->backend->type_counts(conn, fn, payload);
    td_readers__release(store->readers, conn);
    return error;
}

int td_store_check(td_store *store)
{
    TD_REQUIRE(store);
    td_conn *conn;
    int64_t first_bad = 0;
    int error = td_readers__acquire(store->readers, &conn);
    if (error < 0)
        return error;
    error = store->backend->check(conn);
    if (error == 0)
        error = store->backend->check_quick(conn);
    td_readers__release(store->readers, conn);
    return error < 0 ? error : td_store_audit_verify(store, 0, 0, &first_bad, NULL);
}

/* ---- watching for commits ------------------------------------------------------ */

static void raise_head(td_store *store, int64_t head)
{
    pthread_mutex_lock(&store->watch_lock);
    if (head > store->watch_head) {
        store->watch_head = head;
        pthread_cond_broadcast(&store->watch_cond);
    }
    pthread_mutex_unlock(&store->watch_lock);
}

int td_store_on_commit(td_store *store, td_commit_fn fn, void *payload)
{
    TD_REQUIRE(store && fn);
    int error = td_error__set(TD_ETOOBIG, "more than %d commit listeners", TD_COMMIT_LISTENERS_MAX);
    pthread_mutex_lock(&store->listeners_lock);
    for (int i = 0; i < TD_COMMIT_LISTENERS_MAX; i++)
        if (store->listeners[i].fn == NULL) {
            store->listeners[i].fn = fn;
            store->listeners[i].payload = payload;
            error = 0;
            break;
        }
    pthread_mutex_unlock(&store->listeners_lock);
    return error;
}

void td_store_remove_commit_listener(td_store *store, td_commit_fn fn, void *payload)
{
    if (store == NULL)
        return;
    pthread_mutex_lock(&store->listeners_lock);
    for (int i = 0; i < TD_COMMIT_LISTENERS_MAX; i++)
        if (store->listeners[i].fn == fn && store->listeners[i].payload == payload)
            store->listeners[i].fn = NULL;
    pthread_mutex_unlock(&store->listeners_lock);
}

void td_store__committed(td_store *store, int64_t first, int64_t head)
{
    if (first <= head) {
        pthread_mutex_lock(&store->listeners_lock);
        for (int i = 0; i < TD_COMMIT_LISTENERS_MAX; i++)
            if (store->listeners[i].fn)
                store->listeners[i].fn(store, first, head, store->listeners[i].payload);
        pthread_mutex_unlock(&store->listeners_lock);
    }
    raise_head(store, head);
}

static struct timespec after_ms(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static int64_t ms_until(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
           (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Asks the backend, which also sees other processes' commits. */
static int poll_head(td_store *store)
{
    int64_t head = 0;
    int error = td_store_head(store, &head);
    if (error == 0)
        raise_head(store, head);
    return error;
}

int64_t td_store_known_head(td_store *store)
{
    pthread_mutex_lock(&store->watch_lock);
    int64_t head = store->watch_head;
    pthread_mutex_unlock(&store->watch_lock);
    return head;
}

/* ---- commits pushed by the database ------------------------------------------- */

/* Sleeps ms, or less when woken to stop. */
static void watch_pause(td_store *store, int ms)
{
    struct pollfd p = {.fd = store->watch_wake[0], .events = POLLIN};
    (void)poll(&p, 1, ms);
}

static bool watch_stopping(td_store *store)
{
    pthread_mutex_lock(&store->watch_lock);
    bool stop = store->watch_stopping;
    pthread_mutex_unlock(&store->watch_lock);
    return stop;
}

static void set_live(td_store *store, bool live)
{
    pthread_mutex_lock(&store->watch_lock);
    store->watch_live = live;
    pthread_cond_broadcast(&store->watch_cond); /* waiters go back to polling, or stop */
    pthread_mutex_unlock(&store->watch_lock);
}

/* The watch thread: keeps a connection the database tells of every
 * commit, connecting again with backoff when it is lost. Commits made
 * while it had none are found by asking for the head once it has one. */
static void *watch_main(void *arg)
{
    td_store *store = arg;
    td_conn *conn = NULL;
    int delay_ms = 50;
    td_thread__name("td-watch", NULL);
    while (!watch_stopping(store)) {
        int64_t head = 0;
        if (conn == NULL) {
            if (store->backend->watch_open(&conn, store->target, &store->opts) < 0) {
                conn = NULL;
                watch_pause(store, delay_ms);
                delay_ms = delay_ms * 2 > 2000 ? 2000 : delay_ms * 2;
                continue;
            }
            delay_ms = 50;
            if (td_store_head(store, &head) == 0)
                raise_head(store, head);
            set_live(store, true);
        }
        int rc = store->backend->watch_wait(conn, store->watch_wake[0], 5000, &head);
        if (rc > 0)
            raise_head(store, head);
        else if (rc < 0) {
            set_live(store, false);
            store->backend->close(conn);
            conn = NULL;
        }
    }
    if (conn)
        store->backend->close(conn);
    set_live(store, false);
    return NULL;
}

/* Starts the watch thread, once, for a backend that pushes commits;
 * watch_lock held. Without one (or if it cannot start) waits poll. */
static void start_watch(td_store *store)
{
    TD_ASSERT_HELD(&store->watch_lock);
    if (store->watch_started || store->backend->watch_open == NULL || store->watch_stopping)
        return;
    if (pipe(store->watch_wake) != 0) {
        store->watch_wake[0] = store->watch_wake[1] = -1;
        return;
    }
    if (pthread_create(&store->watch_thread, NULL, watch_main, store) != 0) {
        close(store->watch_wake[0]);
        close(store->watch_wake[1]);
        store->watch_wake[0] = store->watch_wake[1] = -1;
        return;
    }
    store->watch_started = true;
}

static void stop_watch(td_store *store)
{
    pthread_mutex_lock(&store->watch_lock);
    bool started = store->watch_started;
    store->watch_stopping = true;
    pthread_mutex_unlock(&store->watch_lock);
    if (!started)
        return;
    ssize_t n = write(store->watch_wake[1], "x", 1);
    (void)n; /* a full pipe wakes it as well */
    pthread_join(store->watch_thread, NULL);
    close(store->watch_wake[0]);
    close(store->watch_wake[1]);
}

int td_store_wait(td_store *store, int64_t after_position, int timeout_ms, int64_t *head)
{
    TD_REQUIRE(store);
    struct timespec deadline = after_ms(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&store->watch_lock);
    start_watch(store);
    pthread_mutex_unlock(&store->watch_lock);
    /* Asks the database only if this process knows of nothing newer: the
     * answer is then at hand without a query. */
    int error = td_store_known_head(store) > after_position ? 0 : poll_head(store);
    pthread_mutex_lock(&store->watch_lock);
    while (error == 0 && store->watch_head <= after_position) {
        bool pushed = store->watch_live; /* commits are told: nothing to poll */
        int64_t left = timeout_ms < 0 ? INT64_MAX : ms_until(&deadline);
        if (left <= 0)
            break;
        if (!pushed && left > store->opts.poll_interval_ms)
            left = store->opts.poll_interval_ms;
        int rc = 0;
        if (left == INT64_MAX) {
            pthread_cond_wait(&store->watch_cond, &store->watch_lock);
        } else {
            struct timespec slice = after_ms((int)(left > INT32_MAX ? INT32_MAX : left));
            rc = pthread_cond_timedwait(&store->watch_cond, &store->watch_lock, &slice);
        }
        if (rc == ETIMEDOUT && !pushed) {
            pthread_mutex_unlock(&store->watch_lock);
            error = poll_head(store);
            pthread_mutex_lock(&store->watch_lock);
        }
    }
    *head = store->watch_head;
    pthread_mutex_unlock(&store->watch_lock);
    return error;
}
