/*
 * store.h: the event store and its units of work.
 *
 * A store holds events (append-only, per-stream versions, global positions)
 * and JSON documents (collection, key → JSON object) that services use for
 * snapshots and read models. It is opened from a URL:
 *
 *   sqlite:PATH  or a plain PATH    an embedded SQLite file (the default)
 *   sqlite:file:PATH?vfs=NAME       SQLite URI form, e.g. to pick a VFS
 *   postgres://USER@HOST:PORT/DB    a PostgreSQL database (also postgresql://,
 *   host=… dbname=…                 and libpq's keyword form); the store's
 *                                   tables live in the first schema of the
 *                                   search_path (?options=-csearch_path%3DNAME)
 *
 * Writes happen in units of work: td_transact() runs a function with a
 * transaction handle; everything the function appends or puts commits
 * together, or nothing does. Units from many threads are group-committed: the
 * store's writer thread runs them one after another inside one database
 * transaction, each under its own savepoint (a failing unit rolls back alone
 * and gets its own error), then makes them durable with one commit. A unit
 * is acknowledged (td_transact returns 0) only after that commit is on disk.
 *
 * A failed commit or write is fail-stop: the units in that commit get
 * TD_EIO and the store refuses every later write with TD_ECLOSED until it is
 * reopened, so nothing is acknowledged that may not be on disk.
 *
 * Reads run on their own connections, concurrently with the writer, and see
 * committed data only. Several processes may open one store; a writer
 * waits for another process's write lock up to busy_timeout_ms (TD_EBUSY).
 * On PostgreSQL a lost connection fails what was in flight with
 * TD_EUNAVAILABLE (nothing of it committed) and is made again with backoff.
 *
 * Threads: a td_store may be shared by any number of threads; every function
 * here is safe to call from any thread except where noted. A td_txn belongs
 * to the unit it was passed to and is valid only during that call, on the
 * writer thread. See docs/threading.md.
 */
#ifndef TIDINGS_STORE_H
#define TIDINGS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct td_store td_store;
typedef struct td_txn td_txn;
typedef struct td_tracer td_tracer; /* trace.h */

#define TD_STORE_OPTIONS_VERSION 3 /* 2, without skip_check, is accepted too */

typedef struct td_store_options {
    unsigned int version;   /* TD_STORE_OPTIONS_VERSION */
    bool create;            /* create the store if it does not exist */
    bool read_only;         /* refuse writes; start no writer */
    size_t max_event_bytes; /* data + metadata of one event; 0: 1 MiB */
    int busy_timeout_ms;    /* wait for another process's lock; 0: 5000 */
    size_t max_batch;       /* most units in one group commit; 0: 1024 */
    int poll_interval_ms;   /* td_store_wait's check for other processes; 0: 50. With a
                               backend that pushes commits (PostgreSQL's LISTEN/NOTIFY),
                               only while that connection is down */
    /* The writer runs the next batch while the last one's fsync is in
     * flight, on a thread of its own; callers are still answered only once
     * their commit is durable, and this process reads no event before it is
     * durable. Documents read in this process, and everything read by
     * other processes, may show a commit up to one fsync before it is
     * durable (so a power loss could take back what was seen, never what
     * was acknowledged). See docs/internals/store.md. */
    bool pipelined_commits;
    /* The writer thread's nice value (Linux: per thread), 0: unchanged. The
     * one writer is every write's bottleneck; when the cores are busy, a
     * negative value (-10, say) lets it run before other threads instead of
     * waiting its turn. Going below 0 needs CAP_SYS_NICE or a RLIMIT_NICE
     * that allows it; if refused, the writer keeps its priority and the
     * store says so in an info log record. Values are clamped to -20..19. */
    int writer_nice;
    /* Opening checks the store, in a time bounded whatever its size (a few
     * milliseconds on a million events): SQLite's own header checks, the
     * schema, the file's size, the last events' audit links and their
     * entries in every index, the edges of the documents. A store that fails
     * is refused with TD_ECORRUPT naming what is wrong (td_store_check
     * checks every page). true skips it: for an operator who knows, say to
     * copy out what can still be read. Since version 3. */
    bool skip_check;
} td_store_options;

#define TD_STORE_OPTIONS_INIT                                                                      \
    {                                                                                              \
        TD_STORE_OPTIONS_VERSION, true, false, 0, 0, 0, 0, false, 0, false                         \
    }

#define TD_DEFAULT_MAX_EVENT_BYTES (1024 * 1024)

/* Opens (and with opts->create, creates) the store at url; opts may be NULL
 * for the defaults. Upgrades an older schema. Fails with TD_ENOTFOUND (no
 * store and create is off), TD_ECORRUPT (not a tidings store: an empty file
 * is not one either; or a store that fails the check at open, see
 * skip_check), TD_EVERSION (written by a newer tidings), TD_EINVAL (bad
 * URL), TD_EIO, TD_ENOSPC (the disk is full); on failure the file is left
 * unchanged. A new store is made whole before it appears under its name.
 * Caller owns *out; free with td_store_free. */
int td_store_open(td_store **out, const char *url, const td_store_options *opts);

/* td_store_free, then deletes the store's files: for undoing a store just
 * made (a copy that failed half way). No other process may have it open.
 * SQLite: the file with its -wal and -shm. Accepts NULL. */
int td_store_destroy(td_store *store);

/* Waits for queued units, stops the writer, closes connections. Accepts NULL.
 * Must not be called while other threads still use the store. */
void td_store_free(td_store *store);

/* ---- units of work ---------------------------------------------------- */

/* A unit of work. Runs on the store's writer thread: keep it short, do no
 * blocking I/O in it, and do not call td_transact from it (TD_EINVAL).
 * Return 0 to commit, a negative code to roll back this unit alone; the code
 * and the thread's error message are passed to td_transact's caller. */
typedef int (*td_unit_fn)(td_txn *txn, void *payload);

/* Runs fn in a unit of work and returns once it is durable (0) or rolled
 * back (fn's code, TD_EIO, TD_EBUSY, TD_ECLOSED). */
int td_transact(td_store *store, td_unit_fn fn, void *payload);

#define TD_EXPECT_ANY       (-1) /* append whatever the stream's version */
#define TD_EXPECT_NO_STREAM 0    /* the stream must have no events yet */
/* any value N >= 1: the stream's current version must be exactly N */

/* Appends count events to stream atomically, with consecutive versions and
 * increasing positions. Checks the stream name, each event's type, source,
 * ids, traceparent, data and metadata (JSON objects, within max_event_bytes)
 * and the expected version; on any failure nothing of the call is written.
 * Fills in each event's position, version and stream, and, where unset, id,
 * occurred_at, schema_version and traceparent. The strings stay the caller's.
 * TD_ECONFLICT if the stream's version differs from expected_version. */
int td_txn_append(td_txn *txn, const char *stream, int64_t expected_version, td_event *events,
                  size_t count);

/* Writes one fully formed event as it is (id, version, position kept), as
 * import and migration need. The position must be above the store's head and
 * the version the stream's next (TD_ECONFLICT otherwise); an event whose id
 * is stored already with the same stream, version and position is skipped
 * (returns 1); with other values it is TD_EEXISTS. */
int td_txn_import(td_txn *txn, const td_event *event);

/* The stream's current version (0 when it has no events). */
int td_txn_stream_version(td_txn *txn, const char *stream, int64_t *out);

/* Events of a stream with version >= from_version, in order; limit 0 = all. */
int td_txn_read_stream(td_txn *txn, const char *stream, int64_t from_version, size_t limit,
                       td_event_fn fn, void *payload);

/* Documents: JSON objects under (collection, key). Collections follow the
 * category rule, keys are 1..200 bytes of printable ASCII. */
typedef int (*td_doc_fn)(const char *key, const char *json, size_t len, void *payload);

int td_txn_doc_put(td_txn *txn, const char *collection, const char *key, const char *json,
                   size_t len);
/* td_txn_doc_put for a document already held as JSON: it is serialised, not
 * parsed again (the cheaper call on hot paths). TD_EINVAL unless an object.
 * doc is borrowed. */
int td_txn_doc_put_json(td_txn *txn, const char *collection, const char *key, const json_t *doc);
/* Caller owns *json; free with td_free. TD_ENOTFOUND if absent. */
int td_txn_doc_get(td_txn *txn, const char *collection, const char *key, char **json, size_t *len);
/* TD_ENOTFOUND if absent. */
int td_txn_doc_delete(td_txn *txn, const char *collection, const char *key);
/* Documents with key > after_key (NULL: from the first), in key order. */
int td_txn_doc_list(td_txn *txn, const char *collection, const char *after_key, size_t limit,
                    td_doc_fn fn, void *payload);

/* Runs fn inside the unit under a savepoint of its own: if fn fails, what it
 * wrote is undone and its code returned, and the unit can go on (its other
 * work stays). Lets one unit of work carry several independent pieces. */
int td_txn_try(td_txn *txn, td_unit_fn fn, void *payload);

/* Names the event that caused this unit's work (a handler's input). Events
 * appended afterwards that lack their own correlation id, causation id or
 * traceparent get the cause's correlation id (or its id if it has none), the
 * cause's id as causation id, and a new span in the cause's trace. Borrowed:
 * cause must stay valid until the unit returns; NULL clears it. */
void td_txn_set_cause(td_txn *txn, const td_event *cause);

/* Sets the exact traceparent for events appended afterwards without one
 * (a handler's span, so what it publishes continues it). Copied; NULL clears. */
void td_txn_set_trace(td_txn *txn, const char *traceparent);

/* The store the unit of work belongs to. */
td_store *td_txn_store(td_txn *txn);

/* An observer of appends, run inside td_txn_append after the events are
 * written (position, version and id filled in) and inside the append's own
 * savepoint: a negative return rolls the append back and td_txn_append
 * returns it. The bus uses this for inline handlers. It may append (nesting
 * up to TD_APPEND_DEPTH_MAX) and write documents through txn. Set it before
 * the first unit of work; one hook per store (NULL removes it). */
typedef int (*td_append_hook)(td_txn *txn, const td_event *events, size_t count, void *payload);
#define TD_APPEND_DEPTH_MAX 8
void td_store_set_append_hook(td_store *store, td_append_hook hook, void *payload);

/* A listener told, on the writer thread right after each durable commit,
 * which positions that commit added (first..last; nothing when a commit
 * added no events). Keep it very short. Add listeners before the first unit
 * of work; at most TD_COMMIT_LISTENERS_MAX. */
/* Spans for appends (trace.h): for each event whose traceparent the store
 * makes (a new trace, or a child of the unit's cause), the span it names
 * goes to tracer once the event is durable, on the thread that waited for
 * it. Set before the first unit of work; borrowed, and must outlive the
 * store's writes. NULL: none. */
void td_store_set_tracer(td_store *store, td_tracer *tracer);

typedef void (*td_commit_fn)(td_store *store, int64_t first, int64_t last, void *payload);
#define TD_COMMIT_LISTENERS_MAX 8
int td_store_on_commit(td_store *store, td_commit_fn fn, void *payload);
void td_store_remove_commit_listener(td_store *store, td_commit_fn fn, void *payload);

/* Appends outside an explicit unit: one unit of its own. Data and metadata are
 * checked on the calling thread, which keeps the writer's work short. */
int td_store_append(td_store *store, const char *stream, int64_t expected_version, td_event *events,
                    size_t count);

/* ---- reads ------------------------------------------------------------ */

typedef struct td_read_query {
    int64_t after_position; /* events with position > this; 0: from the start */
    const char *stream;     /* NULL: any */
    const char *category;   /* NULL: any */
    const char *type;       /* NULL: any */
    td_time since;          /* occurred_at >= since; 0: any time */
    size_t limit;           /* 0: no limit */
} td_read_query;

#define TD_READ_QUERY_INIT                                                                         \
    {                                                                                              \
        0, NULL, NULL, NULL, 0, 0                                                                  \
    }

/* Projected reads: each event with some top-level fields of its data picked
 * out by the store as it reads, for readers that need a few values: much
 * cheaper than parsing every event's whole data (see docs/benchmarks.md).
 * fields: a NULL-terminated list of 1..TD_READ_FIELDS_MAX distinct names,
 * each 1..64 of [A-Za-z0-9_] starting with a letter. The callback gets the
 * event (data as stored, or upcast) and `values`, a JSON object holding each
 * field whose value is not null, in the order asked; borrowed for the call
 * (json_incref to keep it). Events older than their type's schema are
 * upcast first, then picked, so values always follow the current schema.
 * Return from the callback as from a td_event_fn. */
#define TD_READ_FIELDS_MAX 16
typedef int (*td_fields_fn)(const td_event *event, json_t *values, void *payload);
int td_store_read_fields(td_store *store, const td_read_query *query, const char *const *fields,
                         td_fields_fn fn, void *payload);

/* Inside a unit of work: the events the query selects, as this unit sees the
 * log (no other writer can commit meanwhile), with the handle's upcasters.
 * For work that must see everything up to the head atomically. */
int td_txn_read(td_txn *txn, const td_read_query *query, td_event_fn fn, void *payload);

/* Inside a unit of work: the position of the last event, including this
 * unit's own appends. */
int64_t td_txn_head(const td_txn *txn);

/* Events matching the query in position order. */
int td_store_read(td_store *store, const td_read_query *query, td_event_fn fn, void *payload);

/* Events of one stream (the aggregate) with version >= from_version. */
int td_store_read_stream(td_store *store, const char *stream, int64_t from_version, size_t limit,
                         td_event_fn fn, void *payload);

/* The event with this id, through fn. TD_ENOTFOUND if none. */
int td_store_read_event(td_store *store, const td_uuid *id, td_event_fn fn, void *payload);

int td_store_stream_version(td_store *store, const char *stream, int64_t *out);

/* The highest committed position (0 for an empty store). */
int td_store_head(td_store *store, int64_t *out);

/* The highest position this handle knows committed, without asking the
 * database: its own commits at once, other processes' as td_store_wait last
 * polled them. Every event up to it is visible to reads started afterwards,
 * so a reader may take it as "read up to here" when a filtered read comes
 * back short. Cheaper than td_store_head, which runs a query. */
int64_t td_store_known_head(td_store *store);

/* Waits until the head passes after_position or timeout_ms elapses (-1: no
 * limit), then sets *head. Commits of this process wake it at once; those of
 * other processes are seen within poll_interval_ms (PostgreSQL: as soon as
 * the server tells of them, through LISTEN/NOTIFY; polling only while that
 * connection is down). */
int td_store_wait(td_store *store, int64_t after_position, int timeout_ms, int64_t *head);

int td_store_doc_get(td_store *store, const char *collection, const char *key, char **json,
                     size_t *len);
int td_store_doc_list(td_store *store, const char *collection, const char *after_key, size_t limit,
                      td_doc_fn fn, void *payload);

/* Every collection that holds a document, by name (for copies of a whole
 * store). The name is borrowed for the call; return as td_event_fn does. */
typedef int (*td_collection_fn)(const char *collection, void *payload);
int td_store_doc_collections(td_store *store, td_collection_fn fn, void *payload);

/* ---- operations --------------------------------------------------------- */

/* What the writer thread has done since the store was opened: how well
 * group commit batches, and where its time goes. Zeros for a read-only
 * handle. */
typedef struct td_writer_stats {
    int64_t commits;       /* transactions committed, one per batch of units */
    int64_t units;         /* units of work run (td_transact, td_store_append) */
    int64_t units_failed;  /* of those, rolled back on their own */
    double busy_seconds;   /* running batches, commits included */
    double commit_seconds; /* inside COMMIT, which waits for the disk (pipelined: writes it) */
    int64_t syncs;         /* pipelined commits: log syncs, each for one batch or more */
    double sync_seconds;   /* pipelined commits: in those syncs, on the sync thread */
} td_writer_stats;
int td_store_writer_stats(td_store *store, td_writer_stats *out);

typedef struct td_store_stats {
    int64_t events;
    int64_t streams;
    int64_t types;
    int64_t documents;
    int64_t head;       /* highest position */
    int64_t bytes;      /* size on disk, including the write-ahead log */
    int schema_version; /* of the store's own tables */
} td_store_stats;

int td_store_stats_get(td_store *store, td_store_stats *out);

/* Calls fn(type, count, payload) for each event type, by type name. */
typedef int (*td_type_count_fn)(const char *type, int64_t count, void *payload);
int td_store_type_counts(td_store *store, td_type_count_fn fn, void *payload);

/* Checks the store in full (TD_ECORRUPT with the first problem): every page
 * (SQLite's integrity check), the check made at open, and the whole audit
 * chain. Reads the whole store. */
int td_store_check(td_store *store);

/* Whether the store takes writes, and if not, why. */
typedef enum td_store_state {
    TD_STORE_OK = 0, /* writes are taken */
    /* The last write failed because the disk is full (TD_ENOSPC): nothing of
     * it was written. Writes are still tried as they come and succeed again
     * once there is space; reads are unaffected. The state is that of the
     * last write tried, so it clears with the first write that succeeds. */
    TD_STORE_FULL = 1,
    /* Fail-stop: a commit or a sync failed (TD_EIO), or the database met
     * corruption (TD_ECORRUPT), in a write or a read. Writes are refused with
     * TD_ECLOSED until the store is reopened; reads go on where they can. */
    TD_STORE_FAILED = 2,
    /* The last write could not reach the database server (PostgreSQL: the
     * connection was lost, the server restarts or hangs): TD_EUNAVAILABLE,
     * nothing of it committed. Writes are still tried as they come, each
     * connecting again; the state clears with the first write that
     * succeeds. */
    TD_STORE_UNAVAILABLE = 3,
} td_store_state;

typedef struct td_store_health {
    td_store_state state;
    int code;          /* 0, TD_ENOSPC, TD_EUNAVAILABLE, TD_EIO or TD_ECORRUPT */
    td_time since;     /* when it entered the state; 0 when TD_STORE_OK */
    char message[256]; /* what the database said; "" when TD_STORE_OK */
} td_store_health;

/* The store's health as this handle knows it (no query is made). */
void td_store_health_get(td_store *store, td_store_health *out);

/* The backend's name ("sqlite", "postgres") and the URL it was opened
 * with, a password in it shown as "***". Borrowed. */
const char *td_store_backend(const td_store *store);
const char *td_store_url(const td_store *store);

/* Whether the handle was opened read-only (td_store_options.read_only). */
bool td_store_read_only(const td_store *store);

#ifdef __cplusplus
}
#endif
#endif
