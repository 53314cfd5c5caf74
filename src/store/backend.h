/*
 * backend.h: the table of functions a storage backend provides (internal).
 *
 * store.c, writer.c and txn.c hold everything that is the same for every
 * backend: URL parsing, group commit, savepoints, position assignment,
 * expected-version checks, validation, the reader pool and change waiting.
 * A backend only moves rows: it opens connections, runs transactions and
 * stores and finds events and documents. All SQL lives in the backend files.
 *
 * A td_conn is used by one thread at a time. Writer connections may call
 * every function; reader connections only the read group. Events handed to
 * callbacks are borrowed for the call. Every function returns 0 or a TD_E…
 * code with the thread's error message set.
 */
#ifndef TD_STORE_BACKEND_H
#define TD_STORE_BACKEND_H

#include <stdbool.h>

#include "tidings/store.h"

/* 2: url_help, claim, display, begin_at_head, watch_open, watch_wait,
 * lock_check, and TD_EUNAVAILABLE as a fault (take_fault).
 * 3: insert_batch.
 * 4: insert_later; doc_put and release may report a failure of a write
 *    held back, and a failed release leaves its savepoint open. */
#define TD_BACKEND_VERSION 4

typedef struct td_conn td_conn;
typedef struct td_lock td_lock;

/* A projected row: the event and the picked values, a JSON array text with
 * one element per field asked for (null where the data has none). */
typedef int (*td_row_fields_fn)(const td_event *event, const char *values, size_t len,
                                void *payload);

typedef struct td_backend {
    unsigned int version; /* TD_BACKEND_VERSION */
    const char *name;
    const char *url_help; /* the URL forms it takes, for messages: "sqlite:PATH" */

    /* Whether url names a store of this backend: 1 and *target (the part of
     * url the backend's functions take, pointing into url), 0 if it names
     * another backend's, < 0 (with a message) if it is this backend's but
     * malformed. Backends are asked in the order of td_backends. */
    int (*claim)(const char *url, const char **target);
    /* Optional: url as it may be shown (in logs, on /health): a password it
     * holds replaced by "***". NULL: url is shown as it is. */
    void (*display)(const char *url, char *out, size_t size);

    /* Opens a connection to target. A writer creates (opts->create) and
     * migrates the schema; a reader only checks it. Nothing is written to a
     * target that turns out not to be a store. */
    int (*open)(td_conn **out, const char *target, const td_store_options *opts, bool writer);
    void (*close)(td_conn *conn);

    /* --- writer only --- */
    int (*begin)(td_conn *conn); /* takes the write lock, waiting up to the busy timeout */
    /* Optional: begin, then the head position and the audit link of the
     * event at the head (zeros if none), read under the write lock, in as
     * few round trips as the backend can. NULL: begin, head, hash_before. */
    int (*begin_at_head)(td_conn *conn, int64_t *head, uint8_t last_hash[32]);
    int (*commit)(td_conn *conn); /* durable when it returns 0, unless pipelined: */
    /* With opts->pipelined_commits, commit only writes its log, and this
     * makes everything committed before the call durable. Called from
     * another thread than the writer's, concurrently with its work. */
    int (*sync_log)(td_conn *conn);
    void (*rollback)(td_conn *conn);
    bool (*in_transaction)(td_conn *conn);
    int (*savepoint)(td_conn *conn);
    /* A failed release leaves the savepoint open: roll back to it. A
     * server backend may hold a unit's writes back (insert_later, doc_put)
     * and send them with its next statement whose answer is needed or at
     * the release of the outermost savepoint, the unit's: the failure of
     * such a write is then that call's (the writer rolls the unit back).
     * Only insert_later's rows may be carried past their unit's end (to a
     * later unit's statement or the COMMIT); their failure is then the
     * batch's (take_fault). */
    int (*release)(td_conn *conn);
    int (*rollback_to)(td_conn *conn); /* undoes and ends the innermost savepoint */
    /* Stores a complete event: every field set, source resolved. */
    int (*insert)(td_conn *conn, const td_event *event);
    /* Optional: insert for each of count events, in order, as one call
     * (a server backend sends them in one round trip); the first failure's
     * code, and then none of them may be kept by the caller's savepoint.
     * NULL: insert one at a time. */
    int (*insert_batch)(td_conn *conn, const td_event *events, size_t count);
    /* Optional: insert_batch for events whose ids the store made (no caller
     * can hold a duplicate to be told of at once): a server backend holds
     * them back (see release), so a unit's writes cost it one round trip
     * in all. NULL: insert_batch (or insert). */
    int (*insert_later)(td_conn *conn, const td_event *events, size_t count);
    int (*doc_put)(td_conn *conn, const char *collection, const char *key, const char *json,
                   size_t len, td_time now);
    int (*doc_delete)(td_conn *conn, const char *collection, const char *key);

    /* --- reads, on any connection --- */
    int (*head)(td_conn *conn, int64_t *out);
    /* The audit link of the last event before position (zeros if none). */
    int (*hash_before)(td_conn *conn, int64_t position, uint8_t out[32]);
    int (*stream_version)(td_conn *conn, const char *stream, int64_t *out);
    int (*read)(td_conn *conn, const td_read_query *query, td_event_fn fn, void *payload);
    /* read, also picking fields (checked names, 1..TD_READ_FIELDS_MAX) out
     * of each event's data. */
    int (*read_fields)(td_conn *conn, const td_read_query *query, const char *const *fields,
                       td_row_fields_fn fn, void *payload);
    int (*read_stream)(td_conn *conn, const char *stream, int64_t from_version, size_t limit,
                       td_event_fn fn, void *payload);
    int (*read_event)(td_conn *conn, const td_uuid *id, td_event_fn fn, void *payload);
    int (*doc_get)(td_conn *conn, const char *collection, const char *key, char **json,
                   size_t *len);
    int (*doc_list)(td_conn *conn, const char *collection, const char *after_key, size_t limit,
                    td_doc_fn fn, void *payload);
    int (*doc_collections)(td_conn *conn, td_collection_fn fn, void *payload);
    int (*stats)(td_conn *conn, td_store_stats *out);
    int (*type_counts)(td_conn *conn, td_type_count_fn fn, void *payload);
    int (*check)(td_conn *conn); /* in full: reads every page */
    /* A check bounded whatever the store's size, made at open: the schema,
     * the file's size, the last events through every index, the edges of
     * the documents. TD_ECORRUPT naming what is wrong. */
    int (*check_quick)(td_conn *conn);

    /* The worst failure of the database itself seen on conn since the last
     * call, and clears it: TD_ECORRUPT (the file is damaged), TD_EIO (the
     * disk failed, or a commit's outcome is unknown), TD_ENOSPC (the disk
     * is full), TD_EUNAVAILABLE (the connection to a database server was
     * lost and nothing of the transaction committed), another code (a write
     * of an earlier unit of the batch that the backend held back failed:
     * the transaction is lost, the batch fails with it and writes go on),
     * or 0. A unit's own return
     * codes say nothing about the database (a handler may report a network
     * failure as TD_EIO); this does. why (may be NULL) gets its message. */
    int (*take_fault)(td_conn *conn, char *why, size_t why_size);

    /* A lock named `name` (letters, digits, '_', '.', '-') beside the store
     * at target that its holder keeps until unlock or its death, whichever
     * comes first: released by the kernel (or the server), never by a
     * timeout. Tells a live holder on this host from a dead one. Taken
     * without waiting: TD_EBUSY if another holder (another process, or
     * another lock of this process) has it. *out is NULL where the target
     * has no such locks (an in-memory database). */
    int (*lock)(const char *target, const char *name, td_lock **out);
    void (*unlock)(td_lock *lock); /* accepts NULL */
    /* Optional: 0 while lock is still held, TD_EBUSY once it is not (its
     * holder's session with a server ended). NULL: a lock is held until
     * unlock (a kernel's lock). */
    int (*lock_check)(td_lock *lock);

    /* Optional: wake-ups pushed by the database. watch_open opens a
     * connection that is told of every commit (of any process) with the
     * head it reached; watch_wait waits on it up to timeout_ms, or until
     * wake_fd is readable: 1 with *head when told of a commit (the highest
     * head among those told), 0 when nothing came, < 0 when the connection
     * is lost (close it and open another). NULL: the store polls. */
    int (*watch_open)(td_conn **out, const char *target, const td_store_options *opts);
    int (*watch_wait)(td_conn *conn, int wake_fd, int timeout_ms, int64_t *head);

    /* Deletes the store at target, which nothing has open any more. */
    int (*destroy)(const char *target);
} td_backend;

extern const td_backend td_sqlite_backend;
extern const td_backend td_pg_backend;

/* Every backend this build has, in the order URLs are offered to them
 * (backends.c); NULL-terminated. */
extern const td_backend *const td_backends[];

/* The backend that claims url, and its target (store.c reports URLs none
 * claims, naming the forms each takes). */
int td_backend__find(const char *url, const td_backend **backend, const char **target);

#endif
