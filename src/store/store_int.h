/*
 * store_int.h: the store's parts and how they meet (internal).
 *
 *   td_store ── backend table (backend.h)
 *     ├── writer (writer.c): one thread, one connection, group commit
 *     ├── readers (readers.c): a pool of read connections
 *     └── watch: the highest position known committed, and a condition
 *         variable that commits broadcast on (store.c)
 */
#ifndef TD_STORE_INT_H
#define TD_STORE_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "store/backend.h"
#include "store/observers.h"
#include "store/txn_internal.h"
#include "tidings/trace.h"
#include "tidings/upcast.h"

typedef struct td_writer td_writer;
typedef struct td_readers td_readers;

struct td_store {
    const td_backend *backend;
    char *url;    /* as it may be shown: a password in it as "***" */
    char *target; /* the backend's part of the URL as given */
    td_store_options opts;
    td_writer *writer; /* NULL when read-only */
    td_readers *readers;

    const td_upcasters *upcasters; /* borrowed; set before reads start (upcast.h) */

    td_append_hook append_hook; /* set before the first unit; read by the writer */
    void *append_hook_payload;
    td_tracer *tracer; /* spans for appends (trace.h); set before the first unit */

    /* observers of appends (observers.c): changed only by units of work */
    struct {
        td_append_hook fn;
        void *payload;
    } observers[TD_OBSERVERS_MAX];
    size_t observer_count;

    struct {
        td_commit_fn fn;
        void *payload;
    } listeners[TD_COMMIT_LISTENERS_MAX];
    pthread_mutex_t listeners_lock; /* listeners change rarely; the writer reads them */

    pthread_mutex_t watch_lock;
    pthread_cond_t watch_cond;
    int64_t watch_head; /* highest position known committed */
    /* Commits pushed by the database (backend watch_open), under watch_lock:
     * a thread started by the first wait keeps a watch connection; while it
     * is live, waits do not poll. */
    bool watch_started, watch_live, watch_stopping;
    pthread_t watch_thread;
    int watch_wake[2]; /* a pipe that wakes the watch thread to stop */

    /* A read-only handle's own record of corruption met by a read (a
     * writable one keeps it in its writer, which then refuses writes);
     * under watch_lock. */
    int fault;
    td_time fault_since;
    char fault_message[256];
};

/* What a read through an upcasting handle passes to the backend in place
 * of the caller's callback and payload (store.c). */
typedef struct td_upcast_read {
    const td_upcasters *upcasters; /* NULL: hand events over as stored */
    const td_store *capped_by;     /* stop before events not durable yet; NULL: never */
    bool hidden;                   /* such an event was met */
    td_event_fn fn;
    void *payload;
} td_upcast_read;

/* The callback and payload a read hands the backend: the caller's own when
 * the handle has no upcasters, else td_store__upcast_each with *wrap. */
td_event_fn td_store__read_fn(const td_store *store, td_upcast_read *wrap, td_event_fn fn,
                              void *payload, void **payload_out);

/* Refuses a malformed read query with a message (store.c). */
int td_store__check_query(const td_read_query *query);

/* The span of an append whose traceparent the store made (txn.c), kept
 * until the unit's commit is durable, then exported by the thread that
 * waited for it (writer.c). */
typedef struct td_append_span {
    char traceparent[TD_TRACEPARENT_LEN + 1]; /* the event's: its trace and span ids */
    char parent[17];                          /* the cause's span id, or "" */
    char type[TD_TYPE_MAX + 1];
    char stream[TD_STREAM_MAX + 1];
    char event_id[TD_UUID_STR_LEN + 1];
    int64_t position;
    int64_t start_ns;
} td_append_span;

/* Exports a unit's append spans, ending now, and frees them (writer.c). */
void td_store__export_spans(td_store *store, td_append_span *spans, size_t count);

/* The handle a unit of work gets; lives on the writer thread's stack. */
struct td_txn {
    td_store *store;
    td_conn *conn;
    int64_t *head;      /* the writer's running head position, advanced by appends */
    uint8_t *last_hash; /* the writer's running audit link, 32 bytes */
    bool prechecked;    /* payloads were checked on the caller's thread */
    bool reading;       /* inside a read callback: writes and nested reads refused */
    int depth;          /* nesting of appends made by append hooks */
    const td_event *cause;
    char cause_id[TD_UUID_STR_LEN + 1];
    char trace[TD_TRACEPARENT_LEN + 1]; /* "" unless set by td_txn_set_trace */

    /* txn.c: spans of appends whose traceparent the store made (owned) */
    td_append_span *spans;
    size_t span_count, span_cap;

    /* observers.c: the unit's appended events, for the observers (owned) */
    size_t observed; /* taken for the observers in this unit */
    td_event **queued;
    size_t queued_count, queued_cap;
};

/* The last position this process may read: INT64_MAX, unless pipelined
 * commits have written events that are not durable yet (store.c). */
int64_t td_store__visible_through(const td_store *store);

/* writer.c */
int td_writer__start(td_writer **out, td_store *store, td_conn *conn);
void td_writer__stop(td_writer *writer); /* drains the queue, joins, closes conn */
int td_writer__submit(td_writer *writer, td_unit_fn fn, void *payload, bool prechecked);
void td_writer__stats(td_writer *writer, td_writer_stats *out);
/* Fills in the failed or full state, if any (out starts as TD_STORE_OK). */
void td_writer__health(td_writer *writer, td_store_health *out);
/* Stops writes from now on (TD_EIO or TD_ECORRUPT), as a failed commit does;
 * for corruption that a read met. */
void td_writer__fail(td_writer *writer, int code, const char *why);
/* Pipelined commits: the last position that is durable with every one
 * before it, as far as readers may go; INT64_MAX when nothing waits. */
int64_t td_writer__visible_through(td_writer *writer);
/* Pipelined commits: waits until every batch committed so far is durable
 * (at most one sync); TD_EIO if a sync failed. */
int td_writer__await_durable(td_writer *writer);

/* readers.c: on_fault is told of corruption a read met (the backend's
 * take_fault), on the reading thread. */
typedef void (*td_fault_fn)(void *payload, int code, const char *why);
int td_readers__new(td_readers **out, const td_backend *backend, const char *target,
                    const td_store_options *opts, td_fault_fn on_fault, void *payload);
void td_readers__free(td_readers *readers);
int td_readers__acquire(td_readers *readers, td_conn **out);
void td_readers__release(td_readers *readers, td_conn *conn);

/* store.c: called by the writer after each durable commit; first..last are
 * the positions it added (first > last when none). */
void td_store__committed(td_store *store, int64_t first, int64_t last);

/* observers.c: queues appended events for the observers (none: nothing),
 * and hands the queue to them once the unit's function has returned (the
 * writer); < 0 only for what must fail the unit. */
void td_store__observers_queue(td_txn *txn, const td_event *events, size_t count);
int td_store__observers_drain(td_txn *txn);
/* Forgets queued events past the first keep (their appends rolled back). */
void td_store__observers_truncate(td_txn *txn, size_t keep);
/* Frees the queue (the writer, after each unit). */
void td_store__observers_reset(td_txn *txn);

/* audit.c: the check at open's part of the audit chain: the last `links`
 * events each follow the one before (TD_ECORRUPT naming the first that
 * does not). Reads through conn, which the caller holds. */
#define AUDIT_TAIL_LINKS 64
int td_store__audit_tail(td_store *store, td_conn *conn, int64_t links);

/* txn.c: checks a document's collection and key (key NULL: collection only). */
int td_store__check_doc_key(const char *collection, const char *key);

/* txn.c: checks an event's caller-supplied fields and payloads. */
int td_txn__check_event(const td_store *store, const td_event *event, bool payloads);

#endif
