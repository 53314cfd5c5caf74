/*
 * pg_int.h: what the PostgreSQL backend's files share (internal).
 *
 *   pg_conn.c    connecting, running statements with a deadline, errors,
 *                reconnecting, and the URL forms the backend claims
 *   pg_schema.c  opening: identity, migrations, the checks, destroy
 *   pg.c         the table of operations: transactions, events, documents
 *   pg_locks.c   session advisory locks (td_backend.lock)
 *   pg_watch.c   LISTEN/NOTIFY wake-ups (td_backend.watch_*)
 *
 * A store lives in one schema of a database: the first of the
 * connection's search_path (current_schema(), `public` unless the URL says
 * otherwise, e.g. ?options=-csearch_path%3Dshop). Its tables are named
 * without a schema and found through the search_path.
 */
#ifndef TD_STORE_PG_INT_H
#define TD_STORE_PG_INT_H

#include <libpq-fe.h>
#include <stdint.h>

#include "store/backend.h"

/* Savepoints a writer's transaction may have open at once (a unit, its
 * handlers', its appends'); one more is refused. */
#define PG_SAVEPOINTS_MAX 32

/* Parameters of a statement the backend runs (the INSERT of an event has
 * the most). */
#define PG_PARAMS_MAX 15

/* Statements a writer's transaction may hold back before it sends them
 * (and waits for their answers) on its own, and their parameters' bytes. */
#define PG_QUEUE_MAX       1024
#define PG_QUEUE_BYTES_MAX (4 * 1024 * 1024)

/* A statement held back (td_pg__defer, td_pg__defer_prepared): a savepoint
 * command (text) or a run of a prepared statement with copies of its
 * parameters. */
typedef struct pg_queued {
    const char *name; /* the prepared statement's name; NULL: command */
    char command[96]; /* "SAVEPOINT s12", "RELEASE s12", "NOTIFY …", "COMMIT" */
    bool sure;        /* a write only a bug or the server's trouble can fail */
    const char *what; /* names the operation in the message of its failure */
    int params;
    char *data; /* owned: the parameters' bytes, values point into it */
    const char *values[PG_PARAMS_MAX];
    int lengths[PG_PARAMS_MAX], formats[PG_PARAMS_MAX];
    size_t size; /* of data */
} pg_queued;

/* Prepared statements each connection keeps, by purpose. */
enum {
    PG_INSERT,
    PG_HEAD,
    PG_HASH_BEFORE,
    PG_STREAM_VERSION,
    PG_READ_STREAM,
    PG_READ_EVENT,
    PG_DOC_PUT,
    PG_DOC_GET,
    PG_DOC_DELETE,
    PG_DOC_LIST,
    PG_DOC_COLLECTIONS,
    PG_STMT_COUNT
};

/* Read queries by the filters they use, as in the SQLite backend. */
enum { PG_READ_STREAM_F = 1, PG_READ_CATEGORY = 2, PG_READ_TYPE = 4, PG_READ_SINCE = 8 };
#define PG_READ_VARIANTS 16

/* The first half of the two-int advisory lock keys the store takes
 * ('TDNG'); the second is the events table's oid. */
#define TD_PG_LOCK_CLASS 0x54444E47

struct td_conn {
    PGconn *pg;   /* NULL once lost; the next call outside a transaction reconnects */
    char *target; /* the URL or keyword string, for reconnecting */
    bool writer;
    int busy_timeout_ms;
    /* The writer's open transaction: its id (pg_current_xact_id), for
     * asking the server after a lost COMMIT whether it committed, and the
     * highest position it inserted and kept, for the commit's NOTIFY and
     * the stream versions below. A savepoint rolled back takes its inserts
     * back, so notify_head is noted at each open savepoint (head_marks)
     * and restored when it is rolled back. */
    bool in_txn;
    char xid[32];
    int64_t notify_head;
    int64_t head_marks[PG_SAVEPOINTS_MAX];
    /* The open savepoints' numbers (named "s<number>"), innermost last:
     * unique within the transaction, so that a ROLLBACK TO never reaches
     * an older savepoint of the same name when a newer one was never made
     * (its SAVEPOINT skipped after a failure the unit had not seen yet). */
    uint32_t savepoint_ids[PG_SAVEPOINTS_MAX];
    uint32_t savepoint_serial;
    size_t savepoints; /* open, in head_marks and savepoint_ids */
    /* The store: the events table's oid names its locks and channel. */
    unsigned int store_oid;
    char channel[40];
    /* Statements of the open transaction held back, in order: savepoint
     * commands, and writes whose answers nobody needs at once (documents,
     * events with ids the store made). They go to the server in front of
     * the next statement whose answer is needed, in the same round trip
     * (pipeline mode), or when the unit ends (pg.c); the first failure
     * among them is the failure of the call that sent them. */
    pg_queued *queue;
    size_t queued, queue_cap, queue_bytes;
    size_t queued_writes; /* of them, not commands */
    size_t queued_unsure; /* of those, writes the server may refuse (documents) */
    /* The first `carried` entries belong to units already released: their
     * answers are looked at with a later unit's or at COMMIT, and a failure
     * among them fails the whole batch (batch_fault). */
    size_t carried;
    /* The code of a failure of a carried write since take_fault last
     * looked: the transaction is lost, the batch must fail (not stop
     * writes); its message in batch_message. */
    int batch_fault;
    char batch_message[256];
    /* The writer's stream versions (pg.c), valid while no other writer has
     * committed since: versions_head is the head after this connection's
     * last commit (-1: none kept), begin_head the one its transaction
     * began at. */
    struct pg_versions *versions;
    int64_t versions_head, begin_head;
    bool prepared[PG_STMT_COUNT];
    bool read_prepared[PG_READ_VARIANTS];
    /* The worst failure of the database itself since take_fault last looked. */
    int fault;
    char fault_message[256];
};

/* The backend's schema version this build writes. */
int td_pg__schema_latest(void);

/* pg_conn.c ---------------------------------------------------------------- */

/* Connects conn->pg to conn->target (session settings made, statements to
 * be prepared again); TD_EUNAVAILABLE when the server cannot be reached. */
int td_pg__connect(td_conn *conn);
/* Reconnects a lost connection outside a transaction, trying again with
 * backoff for up to wait_ms; 0 at once when it is fine. */
int td_pg__ensure(td_conn *conn, int wait_ms);
/* Drops the server connection (it is lost or in an unknown state). */
void td_pg__drop(td_conn *conn);

/* The client's limit on one statement's answer: past it the server counts
 * as hung, the connection is dropped and the call fails TD_EUNAVAILABLE. */
int td_pg__deadline_ms(const td_conn *conn);

/* Waits for the answer to what was sent on conn, up to timeout_ms (0: no
 * limit). *out: the first failed result, else the last one (caller
 * PQclears); NULL when none came. Returns 0 or the TD_E… code of a failure
 * (message set, fault noted); what names the operation in messages. */
int td_pg__finish(td_conn *conn, int timeout_ms, const char *what, PGresult **out);

/* Queues command (a savepoint command, without ';') to run before the
 * next statement sent on conn. */
int td_pg__defer(td_conn *conn, const char *command);
/* Queues a run of prepared statement name (prepared now if it is not yet
 * on this connection), its parameters copied (as PQexecPrepared takes
 * them; lengths and formats may be NULL for text). Its answer is looked at
 * when it is sent (td_pg__flush, or in front of the next statement): a
 * failure is then that call's. Sends what is queued first when the queue
 * is full. */
int td_pg__defer_prepared(td_conn *conn, bool *prepared, const char *name, const char *sql,
                          int count, const char *const *values, const int *lengths,
                          const int *formats, const char *what, bool sure);
/* Sends what is queued, if anything, and waits for its answers: one round
 * trip. 0, or the code of the first failure (the rest is then skipped by
 * the server: the transaction is failed until a ROLLBACK TO). */
int td_pg__flush(td_conn *conn);
/* As td_pg__flush, the last statement's result in *out (may be NULL). */
int td_pg__flush_result(td_conn *conn, const char *what, PGresult **out);
/* Drops the queued statements from index `from` on, unsent. */
void td_pg__unqueue(td_conn *conn, size_t from);
/* Drops the queued statement at index at, unsent. */
void td_pg__unqueue_one(td_conn *conn, size_t at);
/* The index of the queued command `command`, or conn->queued if none. */
size_t td_pg__queued_command(const td_conn *conn, const char *command);

/* Runs sql (one or more statements, no parameters), behind what is
 * queued in the same round trip when that is only commands (else what is
 * queued is sent first), and checks it ran: 0, or the code of the first
 * failure. Text results, if any, in *out (may be NULL). */
int td_pg__exec(td_conn *conn, const char *sql, const char *what, int timeout_ms, PGresult **out);

/* Runs sql with text parameters (NULL: SQL NULL), unprepared; binary
 * results when binary. */
int td_pg__query(td_conn *conn, const char *sql, int count, const char *const *values, bool binary,
                 const char *what, int timeout_ms, PGresult **out);

/* Runs prepared statement name (prepared from sql on first use on this
 * connection; *prepared remembers it), parameters as PQexecPrepared takes
 * them; results in binary. */
int td_pg__prepared(td_conn *conn, bool *prepared, const char *name, const char *sql, int count,
                    const char *const *values, const int *lengths, const int *formats,
                    const char *what, PGresult **out);

/* Runs prepared statement name (prepared as td_pg__prepared does) count
 * times in one round trip (libpq's pipeline mode), row i's parameters from
 * row(arg, i, …); results are not kept. 0, or the code of the first
 * failure (the later ones are then not run). */
typedef void (*td_pg_row_fn)(void *arg, size_t i, const char *const **values, const int **lengths,
                             const int **formats);
int td_pg__pipeline(td_conn *conn, bool *prepared, const char *name, const char *sql, int params,
                    size_t count, td_pg_row_fn row, void *arg, const char *what);

/* The TD_E… code of a failed result (or of the connection, res NULL), with
 * the message "what: why" set and the database's own failures noted on
 * conn for take_fault. */
int td_pg__error(td_conn *conn, const PGresult *res, const char *what);

/* Notes a failure of the database itself on conn (take_fault), with the
 * thread's current message. */
void td_pg__note_fault(td_conn *conn, int code);

/* A connection's parameters before the URL's own (which override them):
 * timeouts, keepalives, encoding, application name. */
PGconn *td_pg__connectdb(const char *target, int busy_timeout_ms);

/* The URL forms the backend takes, and showing them without a password. */
int td_pg__claim(const char *url, const char **target);
void td_pg__display(const char *url, char *out, size_t size);

/* Binary values of results. */
int64_t td_pg__int8(const PGresult *res, int row, int col);
int32_t td_pg__int4(const PGresult *res, int row, int col);

/* pg_schema.c ---------------------------------------------------------------- */

int td_pg__open(td_conn **out, const char *target, const td_store_options *opts, bool writer);
void td_pg__close(td_conn *conn);
int td_pg__destroy(const char *target);
int td_pg__check(td_conn *conn);
int td_pg__check_quick(td_conn *conn);
/* Looks up the store's oid, channel and lock keys on a connection that
 * found a complete store. */
int td_pg__identify_store(td_conn *conn);

/* pg_locks.c ------------------------------------------------------------------ */

int td_pg__lock(const char *target, const char *name, td_lock **out);
void td_pg__unlock(td_lock *lock);
int td_pg__lock_check(td_lock *lock);

/* pg_watch.c ------------------------------------------------------------------ */

int td_pg__watch_open(td_conn **out, const char *target, const td_store_options *opts);
int td_pg__watch_wait(td_conn *conn, int wake_fd, int timeout_ms, int64_t *head);

#endif
