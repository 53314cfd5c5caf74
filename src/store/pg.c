/*
 * pg.c: the PostgreSQL backend's operations (the table in backend.h).
 *
 * Positions: every batch of the store's writers, in any process, takes
 * one transaction-scoped advisory lock (TD_PG_LOCK_CLASS, the events
 * table's oid) before it reads the head and assigns positions, and holds
 * it until its COMMIT. PostgreSQL makes a commit visible before it
 * releases the transaction's locks, so the next holder reads a head that
 * includes it: positions are contiguous and commit in order, and a reader
 * never sees position N+1 before N. docs/internals/store.md says why this
 * and not the alternatives.
 *
 * Statements are prepared once per connection; rows come back in binary
 * and are handed to callbacks as td_event views into the PGresult, valid
 * for the call. Reads go in pages (PAGE_ROWS), each one statement whose
 * whole result is in hand before its rows are handed over: a read never
 * holds a statement open while a callback runs, and a lost connection
 * between pages is retried from the last position handed over.
 *
 * Round trips: the writer's savepoint commands, document writes and
 * INSERTs of events with ids the store made are held back on the
 * connection (pg_conn.c's queue) and sent in pipeline mode with the next
 * statement whose answer is needed. A unit that wrote documents waits for
 * their answers at its RELEASE (a refusal fails that unit alone); one that
 * only appended such events carries them to a later round trip or the
 * COMMIT, and their failure (a bug, or the server's trouble) fails the
 * batch through take_fault. docs/internals/store.md, "Round trips".
 *
 * Durability: the writer's connection runs synchronous_commit = on, so
 * COMMIT returns once the commit record is flushed. A COMMIT whose answer
 * is lost is resolved by asking the server, on a new connection, what
 * became of the transaction (pg_xact_status): committed, the batch is
 * durable; aborted, it failed and nothing of it is there; no answer
 * within the time allowed, its state is unknown, and the writer stops
 * (TD_EIO, naming the transaction).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "store/pg_int.h"

#define EVENT_COLUMNS                                                                              \
    "position, id, stream, version, type, schema_version, kind, source, occurred_at, "             \
    "correlation_id, causation_id, traceparent, metadata, data, hash"

/* Rows read per statement: large enough that a long read pays few round
 * trips, small enough that a page of big events stays a few MiB. */
#define PAGE_ROWS 500

static const char *const statement_sql[PG_STMT_COUNT] = {
    [PG_INSERT] = ("INSERT INTO events (" EVENT_COLUMNS ") "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"),
    [PG_HEAD] = "SELECT coalesce(max(position), 0) FROM events",
    [PG_HASH_BEFORE] = "SELECT hash FROM events WHERE position < $1 ORDER BY position DESC LIMIT 1",
    [PG_STREAM_VERSION] = "SELECT coalesce(max(version), 0) FROM events WHERE stream = $1",
    [PG_READ_STREAM] = ("SELECT " EVENT_COLUMNS " FROM events WHERE stream = $1 AND version >= $2 "
                        "ORDER BY version LIMIT $3"),
    [PG_READ_EVENT] = ("SELECT " EVENT_COLUMNS " FROM events WHERE id = $1"),
    [PG_DOC_PUT] = ("INSERT INTO documents (collection, key, body, updated_at) VALUES ($1, $2, $3, "
                    "$4) ON CONFLICT (collection, key) DO UPDATE SET body = excluded.body, "
                    "updated_at = excluded.updated_at"),
    [PG_DOC_GET] = "SELECT body FROM documents WHERE collection = $1 AND key = $2",
    [PG_DOC_DELETE] = "DELETE FROM documents WHERE collection = $1 AND key = $2",
    [PG_DOC_LIST] = ("SELECT key, body FROM documents WHERE collection = $1 AND key > $2 "
                     "ORDER BY key LIMIT $3"),
    [PG_DOC_COLLECTIONS] = "SELECT DISTINCT collection FROM documents ORDER BY collection",
};

static const char *const statement_name[PG_STMT_COUNT] = {
    [PG_INSERT] = "insert",
    [PG_HEAD] = "head",
    [PG_HASH_BEFORE] = "hash",
    [PG_STREAM_VERSION] = "stream_version",
    [PG_READ_STREAM] = "read_stream",
    [PG_READ_EVENT] = "read_event",
    [PG_DOC_PUT] = "doc_put",
    [PG_DOC_GET] = "doc_get",
    [PG_DOC_DELETE] = "doc_delete",
    [PG_DOC_LIST] = "doc_list",
    [PG_DOC_COLLECTIONS] = "doc_collections",
};

/* Runs statement id with text parameters (lengths/formats NULL) or as
 * given. */
static int run(td_conn *conn, int id, int count, const char *const *values, const int *lengths,
               const int *formats, const char *what, PGresult **out)
{
    return td_pg__prepared(conn, &conn->prepared[id], statement_name[id], statement_sql[id], count,
                           values, lengths, formats, what, out);
}

/* A read outside a transaction runs again once on a new connection if the
 * old one was lost: nothing of its result was handed over yet. */
static bool may_retry(td_conn *conn, int error)
{
    return error == TD_EUNAVAILABLE && !conn->in_txn && td_pg__ensure(conn, 1000) == 0;
}

static int run_read(td_conn *conn, int id, int count, const char *const *values, const char *what,
                    PGresult **out)
{
    int error = conn->in_txn ? 0 : td_pg__ensure(conn, 0);
    if (error == 0)
        error = run(conn, id, count, values, NULL, NULL, what, out);
    if (may_retry(conn, error))
        error = run(conn, id, count, values, NULL, NULL, what, out);
    return error;
}

static void int_text(char *out, size_t size, int64_t v)
{
    snprintf(out, size, "%lld", (long long)v);
}

/* ---- stream versions known to the writer ---------------------------------------- */

/* Each append asks for its stream's version; under the store's write lock
 * only this transaction writes, and with the head unchanged since this
 * connection's last commit nobody else has written since either (every
 * writer takes the lock, and every commit that adds events raises the
 * head). So the writer keeps the versions it read and wrote: kept across
 * transactions while the head it finds at BEGIN is the one it left; all
 * forgotten when it is not, when a savepoint or the transaction is rolled
 * back, or when the connection is lost. A cache: a slot taken by another
 * stream just loses its entry. */
#define VERSION_SLOTS  1024
#define VERSION_PROBES 8

typedef struct pg_versions {
    struct {
        char stream[TD_STREAM_MAX + 1];
        int64_t version;
    } slot[VERSION_SLOTS];
} pg_versions;

static uint32_t stream_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void versions_forget(td_conn *conn)
{
    if (conn->versions)
        memset(conn->versions, 0, sizeof *conn->versions);
    conn->versions_head = -1;
}

static bool versions_get(td_conn *conn, const char *stream, int64_t *out)
{
    if (conn->versions == NULL || strlen(stream) > TD_STREAM_MAX)
        return false;
    uint32_t h = stream_hash(stream);
    for (int i = 0; i < VERSION_PROBES; i++) {
        size_t k = (h + (uint32_t)i) % VERSION_SLOTS;
        if (conn->versions->slot[k].stream[0] == '\0')
            return false;
        if (strcmp(conn->versions->slot[k].stream, stream) == 0) {
            *out = conn->versions->slot[k].version;
            return true;
        }
    }
    return false;
}

static void versions_put(td_conn *conn, const char *stream, int64_t version)
{
    if (!conn->in_txn || strlen(stream) > TD_STREAM_MAX)
        return;
    if (conn->versions == NULL && (conn->versions = td_calloc(1, sizeof *conn->versions)) == NULL)
        return;
    uint32_t h = stream_hash(stream);
    size_t k = h % VERSION_SLOTS;
    for (int i = 0; i < VERSION_PROBES; i++) {
        size_t j = (h + (uint32_t)i) % VERSION_SLOTS;
        if (conn->versions->slot[j].stream[0] == '\0' ||
            strcmp(conn->versions->slot[j].stream, stream) == 0) {
            k = j;
            break;
        }
    }
    snprintf(conn->versions->slot[k].stream, sizeof conn->versions->slot[k].stream, "%s", stream);
    conn->versions->slot[k].version = version;
}

/* ---- transactions ------------------------------------------------------------ */

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drops the statements held back (ROLLBACK makes them moot, and COMMIT
 * those that are only savepoint commands: it releases every savepoint). */
static void drop_pending(td_conn *conn)
{
    td_pg__unqueue(conn, 0);
}

/* Forgets a lost connection noted as the fault of a batch that is begun
 * again (its units never ran). */
static int take_lost_fault(td_conn *conn)
{
    int fault = conn->fault;
    if (fault == TD_EUNAVAILABLE)
        conn->fault = 0;
    return fault;
}

/* BEGIN, the store's write lock, the transaction's id and, when asked, the
 * head and its audit link: one round trip. Each statement of a simple query
 * takes its own snapshot (READ COMMITTED), so the last one reads the head
 * after the lock is granted. */
static int begin_locked(td_conn *conn, int64_t *head, uint8_t last_hash[32])
{
    char sql[512];
    PGresult *res = NULL;
    int error = td_pg__ensure(conn, conn->busy_timeout_ms);
    if (error < 0)
        return error;
    snprintf(sql, sizeof sql,
             "BEGIN; SELECT pg_advisory_xact_lock(%d, %u); "
             "SELECT pg_current_xact_id()::text%s",
             TD_PG_LOCK_CLASS, conn->store_oid,
             head ? ", (SELECT coalesce(max(position), 0) FROM events), "
                    "(SELECT hash FROM events ORDER BY position DESC LIMIT 1)"
                  : "");
    drop_pending(conn);
    if (head == NULL) {
        versions_forget(conn); /* nothing tells whether they still hold */
        conn->begin_head = -1;
    }
    conn->in_txn = true;
    conn->notify_head = 0;
    conn->savepoints = 0;
    conn->savepoint_serial = 0;
    conn->batch_fault = 0;
    conn->xid[0] = '\0';
    error = td_pg__exec(conn, sql, "beginning write transaction", td_pg__deadline_ms(conn), &res);
    if (error == 0 && (res == NULL || PQntuples(res) != 1))
        error = td_error__set(TD_ERROR, "beginning write transaction: no transaction id");
    if (error == 0) {
        snprintf(conn->xid, sizeof conn->xid, "%s", PQgetvalue(res, 0, 0));
        if (head) {
            *head = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
            if (*head != conn->versions_head)
                versions_forget(conn); /* another writer committed since */
            conn->begin_head = *head;
            memset(last_hash, 0, 32);
            size_t n = 0;
            unsigned char *raw =
                PQgetisnull(res, 0, 2)
                    ? NULL
                    : PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 2), &n);
            if (raw && n == 32)
                memcpy(last_hash, raw, 32);
            PQfreemem(raw);
        }
    }
    PQclear(res);
    if (error < 0 && conn->pg && conn->in_txn)
        (void)td_pg__exec(conn, "ROLLBACK", "rolling back", td_pg__deadline_ms(conn), NULL);
    if (error < 0)
        conn->in_txn = false;
    return error;
}

/* A connection the server ended while it was idle (a restart,
 * pg_terminate_backend) is found only by the next statement: the BEGIN.
 * Nothing of the batch has run then, so it provably did not commit, and it
 * is begun once more on a new connection instead of failing its units. */
static int begin_again(td_conn *conn, int64_t *head, uint8_t last_hash[32])
{
    bool was_connected = conn->pg != NULL;
    int error = begin_locked(conn, head, last_hash);
    if (error == TD_EUNAVAILABLE && was_connected) {
        (void)take_lost_fault(conn);
        error = begin_locked(conn, head, last_hash);
    }
    return error;
}

static int pg_begin(td_conn *conn)
{
    return begin_again(conn, NULL, NULL);
}

static int pg_begin_at_head(td_conn *conn, int64_t *head, uint8_t last_hash[32])
{
    return begin_again(conn, head, last_hash);
}

/* What the server said of a transaction (pg_xact_status). */
typedef enum xact_answer {
    XACT_NO_ANSWER, /* no connection or no readable answer: ask again */
    XACT_COMMITTED,
    XACT_ABORTED,
    XACT_IN_PROGRESS, /* not over yet: ask again */
} xact_answer;

/* After a COMMIT whose answer was lost: what became of the transaction,
 * asked on a connection of its own until the server answers or the time
 * allowed runs out. 1 committed, 0 not, < 0 unknown (message set). */
static int resolve(td_conn *conn, const char *xid)
{
    int allowed_ms = 4 * conn->busy_timeout_ms;
    int64_t until = monotonic_ms() + allowed_ms;
    int delay_ms = 50;
    char why[300] = "no answer";
    for (;;) {
        PGconn *pg = td_pg__connectdb(conn->target, conn->busy_timeout_ms);
        const char *params[1] = {xid};
        PGresult *res = pg && PQstatus(pg) == CONNECTION_OK
                            ? PQexecParams(pg, "SELECT pg_xact_status($1::xid8)", 1, NULL, params,
                                           NULL, NULL, 0)
                            : NULL;
        const char *status = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                                 ? PQgetvalue(res, 0, 0)
                                 : NULL;
        xact_answer answer = status == NULL                     ? XACT_NO_ANSWER
                             : strcmp(status, "committed") == 0 ? XACT_COMMITTED
                             : strcmp(status, "aborted") == 0   ? XACT_ABORTED
                                                                : XACT_IN_PROGRESS;
        if (answer == XACT_NO_ANSWER)
            snprintf(why, sizeof why, "%s", pg ? PQerrorMessage(pg) : "out of memory");
        PQclear(res);
        PQfinish(pg);
        if (answer == XACT_COMMITTED || answer == XACT_ABORTED)
            return answer == XACT_COMMITTED ? 1 : 0;
        if (monotonic_ms() + delay_ms > until)
            break;
        usleep((useconds_t)delay_ms * 1000);
        delay_ms = delay_ms * 2 > 1000 ? 1000 : delay_ms * 2;
    }
    size_t n = strlen(why);
    while (n > 0 && why[n - 1] == '\n')
        why[--n] = '\0';
    return td_error__set(TD_EIO,
                         "the store's state is unknown: the answer to the COMMIT of transaction "
                         "%s was lost, and the server could not say within %d ms whether it "
                         "committed (%s); reopen the store once the server is back",
                         xid, allowed_ms, why);
}

static int pg_commit(td_conn *conn)
{
    char sql[128], xid[sizeof conn->xid];
    PGresult *res = NULL;
    snprintf(xid, sizeof xid, "%s", conn->xid);
    if (conn->notify_head > 0)
        snprintf(sql, sizeof sql, "NOTIFY %s, '%lld'; COMMIT", conn->channel,
                 (long long)conn->notify_head);
    else
        snprintf(sql, sizeof sql, "COMMIT");
    bool was_lost = conn->pg == NULL;
    conn->savepoints = 0;
    int error = 0;
    if (conn->queued_writes > 0 && conn->pg) {
        /* Writes of released units carried to the end: they, the NOTIFY
         * and the COMMIT go in one round trip; a failure among them fails
         * the batch (the server skips the COMMIT). */
        conn->carried = conn->queued;
        char notify[96];
        if (conn->notify_head > 0) {
            snprintf(notify, sizeof notify, "NOTIFY %s, '%lld'", conn->channel,
                     (long long)conn->notify_head);
            error = td_pg__defer(conn, notify);
        }
        if (error == 0)
            error = td_pg__defer(conn, "COMMIT");
        if (error == 0)
            error = td_pg__flush_result(conn, "commit failed", &res);
        drop_pending(conn);
        if (error < 0 && error != TD_EUNAVAILABLE && conn->pg) /* the COMMIT was skipped */
            (void)td_pg__exec(conn, "ROLLBACK", "rolling back", td_pg__deadline_ms(conn), NULL);
    } else {
        drop_pending(conn); /* COMMIT releases every savepoint */
        error = td_pg__exec(conn, sql, "commit failed", td_pg__deadline_ms(conn), &res);
    }
    bool committed = error == 0 && res && strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    conn->in_txn = false;
    int64_t left_at = conn->notify_head > 0 ? conn->notify_head : conn->begin_head;
    if (committed && left_at >= 0)
        conn->versions_head = left_at; /* what it knows holds while the head stays there */
    else
        versions_forget(conn);
    if (committed)
        return 0;
    if (error == 0) /* COMMIT of a failed transaction answers ROLLBACK */
        return td_error__set(TD_ERROR, "commit failed: the database rolled the transaction back");
    if (error != TD_EUNAVAILABLE || was_lost || xid[0] == '\0')
        return error; /* refused by the server, or never sent: not committed */
    /* Sent, and the answer lost: ask. */
    conn->fault = 0;
    int outcome = resolve(conn, xid);
    if (outcome == 1)
        return 0;
    if (outcome == 0) {
        td_error__set(TD_EUNAVAILABLE,
                      "commit failed: the connection to the database server was lost, and "
                      "transaction %s did not commit",
                      xid);
        td_pg__note_fault(conn, TD_EUNAVAILABLE);
        return TD_EUNAVAILABLE;
    }
    td_pg__note_fault(conn, TD_EIO);
    return TD_EIO;
}

static void pg_rollback(td_conn *conn)
{
    drop_pending(conn);
    conn->savepoints = 0;
    versions_forget(conn);
    if (conn->pg && conn->in_txn)
        (void)td_pg__exec(conn, "ROLLBACK", "rolling back", td_pg__deadline_ms(conn), NULL);
    conn->in_txn = false;
}

static bool pg_in_transaction(td_conn *conn)
{
    if (conn->pg == NULL || !conn->in_txn)
        return false;
    PGTransactionStatusType st = PQtransactionStatus(conn->pg);
    return st == PQTRANS_INTRANS || st == PQTRANS_INERROR;
}

static int simple(td_conn *conn, const char *sql, const char *what)
{
    return td_pg__exec(conn, sql, what, td_pg__deadline_ms(conn), NULL);
}

/* Savepoints cost no round trips of their own: SAVEPOINT and RELEASE are
 * held back (conn->queue) and sent in front of the transaction's next
 * statement, in the order they were asked for, so the server runs exactly
 * the same commands (a region that wrote nothing sends none at all: its
 * queued SAVEPOINT is taken back). COMMIT and ROLLBACK drop what is queued:
 * COMMIT releases every savepoint, ROLLBACK undoes them all.
 *
 * Writes whose answers nobody needs at once (documents, events with ids
 * the store made) are held back too, and the release of a unit's own
 * savepoint (the outermost) sends what is held back and looks at the
 * answers: a write that failed fails its unit there, not its call (a
 * statement whose answer is needed earlier carries them and reports their
 * failure instead). The failed RELEASE leaves the savepoint open on the
 * server (the server skipped it), and the unit is rolled back to it
 * (td_backend.release's contract), so a failed unit changes nothing and
 * the others of the batch go on.
 *
 * Each savepoint has a name of its own in the transaction ("s<n>"): after a
 * failure the server skips the SAVEPOINTs that followed, and a ROLLBACK TO
 * such a never-made savepoint must fail (the transaction stays failed and
 * the unit with it) rather than reach an older one of the same name. */
static void savepoint_name(char *out, size_t size, const char *verb, uint32_t id)
{
    snprintf(out, size, "%s s%u", verb, id);
}

static int pg_savepoint(td_conn *conn)
{
    char sql[48];
    if (conn->savepoints == PG_SAVEPOINTS_MAX)
        return td_error__set(TD_ERROR, "savepoints nested deeper than %d", PG_SAVEPOINTS_MAX);
    uint32_t id = ++conn->savepoint_serial;
    savepoint_name(sql, sizeof sql, "SAVEPOINT", id);
    int error = !conn->in_txn || conn->pg == NULL ? simple(conn, sql, "savepoint")
                                                  : td_pg__defer(conn, sql);
    if (error == 0) {
        conn->savepoint_ids[conn->savepoints] = id;
        conn->head_marks[conn->savepoints++] = conn->notify_head;
    }
    return error;
}

/* The savepoint is gone (released or rolled back); what it rolled back
 * takes its inserts back from the head the commit announces. */
static void close_savepoint(td_conn *conn, bool rolled_back)
{
    if (conn->savepoints == 0)
        return;
    conn->savepoints--;
    if (rolled_back)
        conn->notify_head = conn->head_marks[conn->savepoints];
}

/* Whether a queued write after index at is one the server may refuse. */
static bool unsure_after(const td_conn *conn, size_t at)
{
    for (size_t i = at + 1; i < conn->queued; i++)
        if (conn->queue[i].name && !conn->queue[i].sure)
            return true;
    return false;
}

static int pg_release(td_conn *conn)
{
    char sql[48], made[48];
    if (conn->savepoints == 0)
        return td_error__set(TD_ERROR, "no savepoint to release");
    uint32_t id = conn->savepoint_ids[conn->savepoints - 1];
    savepoint_name(sql, sizeof sql, "RELEASE", id);
    savepoint_name(made, sizeof made, "SAVEPOINT", id);
    if (!conn->in_txn || conn->pg == NULL) {
        close_savepoint(conn, false);
        return simple(conn, sql, "releasing savepoint");
    }
    int error = 0;
    size_t at = td_pg__queued_command(conn, made);
    if (at < conn->queued && !unsure_after(conn, at)) {
        /* Not sent yet, and nothing in it that the server may refuse:
         * the savepoint is not needed (a failure of what it holds fails
         * the batch), and the server is spared a subtransaction. */
        td_pg__unqueue_one(conn, at);
    } else {
        error = td_pg__defer(conn, sql);
    }
    if (error == 0 && conn->savepoints == 1) { /* the unit ends */
        if (conn->queued_unsure > 0)
            error = td_pg__flush(conn); /* the answers of what may be refused */
        else
            conn->carried = conn->queued; /* looked at with a later unit's, or at COMMIT */
    }
    if (error == 0)
        close_savepoint(conn, false);
    return error; /* failed: the savepoint stays open, to be rolled back to */
}

static int pg_rollback_to(td_conn *conn)
{
    char sql[80], made[48];
    if (conn->savepoints == 0)
        return td_error__set(TD_ERROR, "no savepoint to roll back to");
    uint32_t id = conn->savepoint_ids[conn->savepoints - 1];
    close_savepoint(conn, true);
    savepoint_name(made, sizeof made, "SAVEPOINT", id);
    if (conn->in_txn && conn->pg) {
        size_t at = td_pg__queued_command(conn, made), writes = conn->queued_writes;
        if (at < conn->queued) { /* not sent yet: nothing of it ran */
            td_pg__unqueue(conn, at);
            if (conn->queued_writes != writes)
                versions_forget(conn); /* the versions its appends noted */
            return 0;
        }
        /* Sent before the last answer came: all that is queued came after
         * it, and is undone with it unsent. */
        td_pg__unqueue(conn, 0);
    }
    versions_forget(conn); /* what it wrote is undone */
    snprintf(sql, sizeof sql, "ROLLBACK TO s%u; RELEASE s%u", id, id);
    return simple(conn, sql, "rolling back unit");
}

/* ---- events --------------------------------------------------------------- */

/* The INSERT's parameters for one event: text, but data, metadata and the
 * hash in binary (text in binary format is its bytes; the hash is 32 raw
 * bytes). */
typedef struct insert_params {
    char position[24], version[24], schema[16], kind[8], occurred[24], id[TD_UUID_STR_LEN + 1];
    const char *values[15];
    int lengths[15], formats[15];
} insert_params;

static void make_params(insert_params *p, const td_event *ev)
{
    int_text(p->position, sizeof p->position, ev->position);
    int_text(p->version, sizeof p->version, ev->version);
    snprintf(p->schema, sizeof p->schema, "%d", ev->schema_version);
    snprintf(p->kind, sizeof p->kind, "%d", (int)ev->kind);
    int_text(p->occurred, sizeof p->occurred, ev->occurred_at);
    td_uuid_format(p->id, &ev->id);
    const char *values[15] = {
        p->position,      p->id,           ev->stream,   p->version,  ev->type,
        p->schema,        p->kind,         ev->source,   p->occurred, ev->correlation_id,
        ev->causation_id, ev->traceparent, ev->metadata, ev->data,    (const char *)ev->hash};
    memcpy(p->values, values, sizeof values);
    memset(p->lengths, 0, sizeof p->lengths);
    memset(p->formats, 0, sizeof p->formats);
    p->lengths[12] = (int)ev->metadata_len;
    p->lengths[13] = (int)ev->data_len;
    p->lengths[14] = 32;
    p->formats[12] = p->formats[13] = p->formats[14] = 1;
}

static int pg_insert(td_conn *conn, const td_event *ev)
{
    insert_params p;
    make_params(&p, ev);
    int error = run(conn, PG_INSERT, 15, p.values, p.lengths, p.formats, "appending event", NULL);
    if (error == 0 && ev->position > conn->notify_head)
        conn->notify_head = ev->position;
    if (error == 0)
        versions_put(conn, ev->stream, ev->version);
    return error;
}

/* The events of one append in one round trip: libpq's pipeline mode. */
typedef struct batch_rows {
    const td_event *events;
    insert_params p;
} batch_rows;

static void batch_row(void *arg, size_t i, const char *const **values, const int **lengths,
                      const int **formats)
{
    batch_rows *b = arg;
    make_params(&b->p, &b->events[i]);
    *values = b->p.values;
    *lengths = b->p.lengths;
    *formats = b->p.formats;
}

static int pg_insert_batch(td_conn *conn, const td_event *events, size_t count)
{
    batch_rows b = {.events = events};
    int error =
        td_pg__pipeline(conn, &conn->prepared[PG_INSERT], statement_name[PG_INSERT],
                        statement_sql[PG_INSERT], 15, count, batch_row, &b, "appending events");
    for (size_t i = 0; error == 0 && i < count; i++) {
        if (events[i].position > conn->notify_head)
            conn->notify_head = events[i].position;
        versions_put(conn, events[i].stream, events[i].version);
    }
    return error;
}

/* Events whose ids the store made: no caller holds a duplicate to be told
 * of, so their INSERTs are held back and sent with the next statement
 * whose answer is needed, or when the unit ends (pg_release); a failure
 * (only a bug or the server's own trouble can fail them) fails the unit
 * there. */
static int pg_insert_later(td_conn *conn, const td_event *events, size_t count)
{
    if (!conn->in_txn || conn->pg == NULL)
        return pg_insert_batch(conn, events, count);
    int error = 0;
    for (size_t i = 0; i < count && error == 0; i++) {
        insert_params p;
        make_params(&p, &events[i]);
        error = td_pg__defer_prepared(conn, &conn->prepared[PG_INSERT], statement_name[PG_INSERT],
                                      statement_sql[PG_INSERT], 15, p.values, p.lengths, p.formats,
                                      "appending event", true);
    }
    for (size_t i = 0; error == 0 && i < count; i++) {
        if (events[i].position > conn->notify_head)
            conn->notify_head = events[i].position;
        versions_put(conn, events[i].stream, events[i].version);
    }
    return error;
}

static const char *text_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Row `row` of an EVENT_COLUMNS result (binary) as a view. */
static void row_to_event(const PGresult *res, int row, td_event *ev)
{
    ev->position = td_pg__int8(res, row, 0);
    if (PQgetlength(res, row, 1) == (int)sizeof ev->id.bytes)
        memcpy(ev->id.bytes, PQgetvalue(res, row, 1), sizeof ev->id.bytes);
    else
        memset(&ev->id, 0, sizeof ev->id);
    ev->stream = PQgetvalue(res, row, 2);
    ev->version = td_pg__int8(res, row, 3);
    ev->type = PQgetvalue(res, row, 4);
    ev->schema_version = td_pg__int4(res, row, 5);
    ev->kind =
        td_pg__int4(res, row, 6) == TD_KIND_INTEGRATION ? TD_KIND_INTEGRATION : TD_KIND_DOMAIN;
    ev->source = PQgetvalue(res, row, 7);
    ev->occurred_at = td_pg__int8(res, row, 8);
    ev->correlation_id = text_or_null(res, row, 9);
    ev->causation_id = text_or_null(res, row, 10);
    size_t tp_len = (size_t)PQgetlength(res, row, 11);
    if (tp_len > TD_TRACEPARENT_LEN)
        tp_len = 0;
    memcpy(ev->traceparent, PQgetvalue(res, row, 11), tp_len);
    ev->traceparent[tp_len] = '\0';
    ev->metadata = PQgetvalue(res, row, 12);
    ev->metadata_len = (size_t)PQgetlength(res, row, 12);
    ev->data = PQgetvalue(res, row, 13);
    ev->data_len = (size_t)PQgetlength(res, row, 13);
    if (PQgetlength(res, row, 14) == (int)sizeof ev->hash)
        memcpy(ev->hash, PQgetvalue(res, row, 14), sizeof ev->hash);
    else
        memset(ev->hash, 0, sizeof ev->hash);
}

/* Hands each row of res to fn; 1 when fn stopped the read, 0 when all were
 * handed over, < 0 fn's error. *last gets the last row's column
 * `key_col` (int8). */
static int each_row(const PGresult *res, td_event_fn fn, void *payload, int key_col, int64_t *last)
{
    td_event ev;
    for (int i = 0; i < PQntuples(res); i++) {
        row_to_event(res, i, &ev);
        *last = td_pg__int8(res, i, key_col);
        int rc = fn(&ev, payload);
        if (rc != 0)
            return rc < 0 ? rc : 1;
    }
    return 0;
}

static size_t page_limit(size_t limit, size_t handed)
{
    if (limit == 0)
        return PAGE_ROWS;
    size_t left = limit - handed;
    return left < PAGE_ROWS ? left : PAGE_ROWS;
}

static void read_sql(char *sql, size_t size, int variant, const char *picked, const char *from)
{
    snprintf(sql, size,
             "SELECT " EVENT_COLUMNS "%s FROM events%s WHERE position > $1%s%s%s%s "
             "ORDER BY position LIMIT $6",
             picked, from,
             variant & PG_READ_STREAM_F ? " AND stream = $2" : " AND $2::text IS NULL",
             variant & PG_READ_CATEGORY ? " AND category = $3" : " AND $3::text IS NULL",
             variant & PG_READ_TYPE ? " AND type = $4" : " AND $4::text IS NULL",
             variant & PG_READ_SINCE ? " AND occurred_at >= $5" : " AND $5::bigint IS NULL");
}

static int query_variant(const td_read_query *q)
{
    return (q->stream ? PG_READ_STREAM_F : 0) | (q->category ? PG_READ_CATEGORY : 0) |
           (q->type ? PG_READ_TYPE : 0) | (q->since ? PG_READ_SINCE : 0);
}

/* One page of a filtered read after `after`: the parameters in order. */
static void query_values(const td_read_query *q, int64_t after, size_t limit, char *after_text,
                         char *since_text, char *limit_text, const char *values[6])
{
    int_text(after_text, 24, after);
    int_text(since_text, 24, q->since);
    int_text(limit_text, 24, (int64_t)limit);
    values[0] = after_text;
    values[1] = q->stream;
    values[2] = q->category;
    values[3] = q->type;
    values[4] = q->since ? since_text : NULL;
    values[5] = limit_text;
}

static int pg_read(td_conn *conn, const td_read_query *q, td_event_fn fn, void *payload)
{
    char sql[700], name[16], after[24], since[24], limit[24];
    const char *values[6];
    int variant = query_variant(q);
    int64_t position = q->after_position;
    size_t handed = 0;
    read_sql(sql, sizeof sql, variant, "", "");
    snprintf(name, sizeof name, "read%d", variant);
    int error = conn->in_txn ? 0 : td_pg__ensure(conn, 0);
    while (error == 0 && (q->limit == 0 || handed < q->limit)) {
        size_t want = page_limit(q->limit, handed);
        PGresult *res = NULL;
        query_values(q, position, want, after, since, limit, values);
        error = td_pg__prepared(conn, &conn->read_prepared[variant], name, sql, 6, values, NULL,
                                NULL, "reading events", &res);
        if (may_retry(conn, error))
            error = td_pg__prepared(conn, &conn->read_prepared[variant], name, sql, 6, values, NULL,
                                    NULL, "reading events", &res);
        if (error < 0)
            break;
        int rows = PQntuples(res);
        error = each_row(res, fn, payload, 0, &position);
        PQclear(res);
        handed += (size_t)rows;
        if (error != 0 || (size_t)rows < want)
            break;
    }
    return error > 0 ? 0 : error;
}

/* Picking: the data parsed once as json, the fields taken with -> into a
 * JSON array (SQL NULL where the data has none: null in the array). Field
 * names are checked ([A-Za-z0-9_]), so they stand in the SQL. */
#define PICKED_SQL_MAX (TD_READ_FIELDS_MAX * 40 + 64)

static int pg_read_fields(td_conn *conn, const td_read_query *q, const char *const *fields,
                          td_row_fields_fn fn, void *payload)
{
    char picked[PICKED_SQL_MAX], sql[PICKED_SQL_MAX + 700], after[24], since[24], limit[24];
    const char *values[6];
    size_t n = (size_t)snprintf(picked, sizeof picked, ", json_build_array(");
    for (size_t i = 0; fields[i] && n < sizeof picked; i++)
        n += (size_t)snprintf(picked + n, sizeof picked - n, "%sj.d -> '%s'", i ? ", " : "",
                              fields[i]);
    if (n < sizeof picked)
        snprintf(picked + n, sizeof picked - n, ")::text");
    read_sql(sql, sizeof sql, query_variant(q), picked, ", LATERAL (SELECT data::json AS d) j");
    int64_t position = q->after_position;
    size_t handed = 0;
    int error = conn->in_txn ? 0 : td_pg__ensure(conn, 0);
    while (error == 0 && (q->limit == 0 || handed < q->limit)) {
        size_t want = page_limit(q->limit, handed);
        PGresult *res = NULL;
        query_values(q, position, want, after, since, limit, values);
        error = td_pg__query(conn, sql, 6, values, true, "reading events", td_pg__deadline_ms(conn),
                             &res);
        if (may_retry(conn, error))
            error = td_pg__query(conn, sql, 6, values, true, "reading events",
                                 td_pg__deadline_ms(conn), &res);
        if (error < 0)
            break;
        int rows = PQntuples(res);
        for (int i = 0; i < rows && error == 0; i++) {
            td_event ev;
            row_to_event(res, i, &ev);
            position = ev.position;
            error = fn(&ev, PQgetvalue(res, i, 15), (size_t)PQgetlength(res, i, 15), payload);
        }
        PQclear(res);
        handed += (size_t)rows;
        if (error != 0 || (size_t)rows < want)
            break;
    }
    return error > 0 ? 0 : error;
}

static int pg_read_stream(td_conn *conn, const char *stream, int64_t from_version, size_t limit,
                          td_event_fn fn, void *payload)
{
    char from[24], count[24];
    const char *values[3] = {stream, from, count};
    size_t handed = 0;
    int64_t version = from_version;
    int error = 0;
    while (error == 0 && (limit == 0 || handed < limit)) {
        size_t want = page_limit(limit, handed);
        PGresult *res = NULL;
        int_text(from, sizeof from, version);
        int_text(count, sizeof count, (int64_t)want);
        if ((error = run_read(conn, PG_READ_STREAM, 3, values, "reading stream", &res)) < 0)
            break;
        int rows = PQntuples(res);
        int64_t last = version;
        error = each_row(res, fn, payload, 3, &last);
        PQclear(res);
        version = last + 1;
        handed += (size_t)rows;
        if (error != 0 || (size_t)rows < want)
            break;
    }
    return error > 0 ? 0 : error;
}

static int pg_read_event(td_conn *conn, const td_uuid *id, td_event_fn fn, void *payload)
{
    char text[TD_UUID_STR_LEN + 1];
    const char *values[1] = {text};
    PGresult *res = NULL;
    int64_t last = 0;
    td_uuid_format(text, id);
    int error = run_read(conn, PG_READ_EVENT, 1, values, "reading event", &res);
    if (error < 0)
        return error;
    if (PQntuples(res) == 0)
        error = td_error__set(TD_ENOTFOUND, "no such event");
    else
        error = each_row(res, fn, payload, 0, &last);
    PQclear(res);
    return error > 0 ? 0 : error;
}

/* A single bigint from the first row, or 0 with no row. */
static int single_int(td_conn *conn, int id, int count, const char *const *values, const char *what,
                      int64_t *out)
{
    PGresult *res = NULL;
    int error = run_read(conn, id, count, values, what, &res);
    if (error == 0)
        *out = PQntuples(res) > 0 ? td_pg__int8(res, 0, 0) : 0;
    PQclear(res);
    return error;
}

static int pg_head(td_conn *conn, int64_t *out)
{
    return single_int(conn, PG_HEAD, 0, NULL, "reading head position", out);
}

static int pg_hash_before(td_conn *conn, int64_t position, uint8_t out[32])
{
    char text[24];
    const char *values[1] = {text};
    PGresult *res = NULL;
    int_text(text, sizeof text, position);
    int error = run_read(conn, PG_HASH_BEFORE, 1, values, "reading hash", &res);
    memset(out, 0, 32);
    if (error == 0 && PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 32)
        memcpy(out, PQgetvalue(res, 0, 0), 32);
    PQclear(res);
    return error;
}

static int pg_stream_version(td_conn *conn, const char *stream, int64_t *out)
{
    const char *values[1] = {stream};
    if (!conn->in_txn)
        return single_int(conn, PG_STREAM_VERSION, 1, values, "reading stream version", out);
    if (conn->pg && versions_get(conn, stream, out))
        return 0;
    /* What is held back goes in the same round trip (td_pg__prepared). */
    int error = single_int(conn, PG_STREAM_VERSION, 1, values, "reading stream version", out);
    if (error == 0)
        versions_put(conn, stream, *out);
    return error;
}

/* ---- documents ------------------------------------------------------------ */

static int pg_doc_put(td_conn *conn, const char *collection, const char *key, const char *json,
                      size_t len, td_time now)
{
    char at[24];
    int_text(at, sizeof at, now);
    const char *values[4] = {collection, key, json, at};
    int lengths[4] = {0, 0, (int)len, 0}, formats[4] = {0, 0, 1, 0};
    if (conn->in_txn && conn->pg) /* its answer is looked at by the unit's end (pg_release) */
        return td_pg__defer_prepared(conn, &conn->prepared[PG_DOC_PUT], statement_name[PG_DOC_PUT],
                                     statement_sql[PG_DOC_PUT], 4, values, lengths, formats,
                                     "writing document", false);
    int error = conn->in_txn ? 0 : td_pg__ensure(conn, 0);
    if (error == 0)
        error = run(conn, PG_DOC_PUT, 4, values, lengths, formats, "writing document", NULL);
    return error;
}

static int pg_doc_delete(td_conn *conn, const char *collection, const char *key)
{
    const char *values[2] = {collection, key};
    PGresult *res = NULL;
    int error = conn->in_txn ? 0 : td_pg__ensure(conn, 0);
    if (error == 0)
        error = run(conn, PG_DOC_DELETE, 2, values, NULL, NULL, "deleting document", &res);
    if (error == 0 && strcmp(PQcmdTuples(res), "0") == 0)
        error = td_error__set(TD_ENOTFOUND, "no document '%.200s' in '%s'", key, collection);
    PQclear(res);
    return error;
}

static int pg_doc_get(td_conn *conn, const char *collection, const char *key, char **json,
                      size_t *len)
{
    const char *values[2] = {collection, key};
    PGresult *res = NULL;
    int error = run_read(conn, PG_DOC_GET, 2, values, "reading document", &res);
    if (error == 0 && PQntuples(res) == 0)
        error = td_error__set(TD_ENOTFOUND, "no document '%.200s' in '%s'", key, collection);
    if (error == 0) {
        size_t n = (size_t)PQgetlength(res, 0, 0);
        *json = td_strndup(PQgetvalue(res, 0, 0), n);
        error = *json ? 0 : td_error__oom();
        if (len)
            *len = n;
    }
    PQclear(res);
    return error;
}

static int pg_doc_list(td_conn *conn, const char *collection, const char *after_key, size_t limit,
                       td_doc_fn fn, void *payload)
{
    char count[24], *after = td_strdup(after_key ? after_key : "");
    const char *values[3] = {collection, after, count};
    size_t handed = 0;
    int error = after ? 0 : td_error__oom();
    while (error == 0 && (limit == 0 || handed < limit)) {
        size_t want = page_limit(limit, handed);
        PGresult *res = NULL;
        int_text(count, sizeof count, (int64_t)want);
        values[1] = after;
        if ((error = run_read(conn, PG_DOC_LIST, 3, values, "listing documents", &res)) < 0)
            break;
        int rows = PQntuples(res);
        for (int i = 0; i < rows && error == 0; i++)
            error = fn(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1),
                       payload);
        if (error == 0 && rows > 0) {
            td_free(after);
            after = td_strdup(PQgetvalue(res, rows - 1, 0));
            error = after ? 0 : td_error__oom();
        }
        PQclear(res);
        handed += (size_t)rows;
        if (error != 0 || (size_t)rows < want)
            break;
    }
    td_free(after);
    return error > 0 ? 0 : error;
}

static int pg_doc_collections(td_conn *conn, td_collection_fn fn, void *payload)
{
    PGresult *res = NULL;
    int error = run_read(conn, PG_DOC_COLLECTIONS, 0, NULL, "listing collections", &res);
    for (int i = 0; error == 0 && i < PQntuples(res); i++)
        error = fn(PQgetvalue(res, i, 0), payload);
    PQclear(res);
    return error > 0 ? 0 : error;
}

/* ---- operations ------------------------------------------------------------ */

static int pg_stats(td_conn *conn, td_store_stats *out)
{
    PGresult *res = NULL;
    memset(out, 0, sizeof *out);
    int error = td_pg__ensure(conn, 0);
    if (error == 0)
        error = td_pg__exec(
            conn,
            "SELECT (SELECT count(*) FROM events), (SELECT count(DISTINCT stream) FROM events), "
            "(SELECT count(DISTINCT type) FROM events), (SELECT count(*) FROM documents), "
            "(SELECT coalesce(max(position), 0) FROM events), "
            "(SELECT schema_version FROM tidings_store), "
            "pg_total_relation_size('events') + pg_total_relation_size('documents')",
            "reading statistics", 0, &res);
    if (error == 0 && PQntuples(res) == 1) {
        out->events = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        out->streams = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        out->types = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        out->documents = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
        out->head = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
        out->schema_version = atoi(PQgetvalue(res, 0, 5));
        out->bytes = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
    }
    PQclear(res);
    return error;
}

static int pg_type_counts(td_conn *conn, td_type_count_fn fn, void *payload)
{
    PGresult *res = NULL;
    int error = td_pg__ensure(conn, 0);
    if (error == 0)
        error = td_pg__exec(conn, "SELECT type, count(*) FROM events GROUP BY type ORDER BY type",
                            "counting types", 0, &res);
    for (int i = 0; error == 0 && i < PQntuples(res); i++)
        error = fn(PQgetvalue(res, i, 0), strtoll(PQgetvalue(res, i, 1), NULL, 10), payload);
    PQclear(res);
    return error > 0 ? 0 : error;
}

static int pg_take_fault(td_conn *conn, char *why, size_t why_size)
{
    int fault = conn->fault;
    const char *message = conn->fault_message;
    if (fault == 0) { /* a carried write failed: the batch fails, writes go on */
        fault = conn->batch_fault;
        message = conn->batch_message;
    }
    conn->batch_fault = 0;
    if (fault == 0)
        return 0;
    if (why && why_size > 0)
        snprintf(why, why_size, "%s", message);
    conn->fault = 0;
    return fault;
}

const td_backend td_pg_backend = {
    .version = TD_BACKEND_VERSION,
    .name = "postgres",
    .url_help = "postgres://USER@HOST:PORT/DBNAME (or postgresql://, or libpq's "
                "'host=… dbname=…')",
    .claim = td_pg__claim,
    .display = td_pg__display,
    .open = td_pg__open,
    .close = td_pg__close,
    .begin = pg_begin,
    .begin_at_head = pg_begin_at_head,
    .commit = pg_commit,
    .sync_log = NULL,
    .rollback = pg_rollback,
    .in_transaction = pg_in_transaction,
    .savepoint = pg_savepoint,
    .release = pg_release,
    .rollback_to = pg_rollback_to,
    .insert = pg_insert,
    .insert_batch = pg_insert_batch,
    .insert_later = pg_insert_later,
    .doc_put = pg_doc_put,
    .doc_delete = pg_doc_delete,
    .head = pg_head,
    .hash_before = pg_hash_before,
    .stream_version = pg_stream_version,
    .read = pg_read,
    .read_fields = pg_read_fields,
    .read_stream = pg_read_stream,
    .read_event = pg_read_event,
    .doc_get = pg_doc_get,
    .doc_list = pg_doc_list,
    .doc_collections = pg_doc_collections,
    .stats = pg_stats,
    .type_counts = pg_type_counts,
    .check = td_pg__check,
    .check_quick = td_pg__check_quick,
    .take_fault = pg_take_fault,
    .lock = td_pg__lock,
    .unlock = td_pg__unlock,
    .lock_check = td_pg__lock_check,
    .watch_open = td_pg__watch_open,
    .watch_wait = td_pg__watch_wait,
    .destroy = td_pg__destroy,
};
