/*
 * pg_conn.c: the PostgreSQL backend's connections: connecting, running
 * statements with a client-side deadline, turning the server's errors into
 * TD_E… codes, reconnecting, and the URL forms the backend claims.
 *
 * Every statement goes through libpq's asynchronous calls on a nonblocking
 * connection and waits for its answer with poll(2) up to a deadline, so a
 * server that hangs (stopped, or a network cut that TCP has not noticed)
 * costs a bounded wait, not a thread forever: past the deadline the
 * connection is dropped and the call fails with TD_EUNAVAILABLE. A lost
 * connection is noted as a fault (take_fault), so the writer fails the
 * batch without stopping writes; the next call outside a transaction
 * connects again (td_pg__ensure, with backoff).
 *
 * The writer's statements whose answers are not needed at once wait in a
 * queue (td_pg__defer, td_pg__defer_prepared) and go to the server in
 * pipeline mode in front of the next statement that needs one, in the same
 * round trip; the first failure among them is the failure of that call,
 * under the failed statement's own name. One of the entries the writer
 * carried past their unit's end (conn->carried) that fails is noted as the
 * batch's fault (take_fault): the transaction is lost.
 *
 * Errors by SQLSTATE: 23505 unique → TD_EEXISTS; other 23 → TD_EINVAL;
 * 22 → TD_EINVAL; 55P03, 40001, 40P01, 57014 → TD_EBUSY; 53100 disk full →
 * TD_ENOSPC (noted); 53200 → TD_ENOMEM; 54 → TD_ETOOBIG; 58 → TD_EIO
 * (noted); XX001, XX002 → TD_ECORRUPT (noted); 08, 57P01..57P03, 53300 and
 * a connection libpq finds broken → TD_EUNAVAILABLE (noted).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "store/pg_int.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int td_pg__deadline_ms(const td_conn *conn)
{
    return 2 * conn->busy_timeout_ms + 1000;
}

/* ---- faults and errors ------------------------------------------------------ */

static int severity(int code)
{
    return code == TD_ECORRUPT       ? 4
           : code == TD_EIO          ? 3
           : code == TD_ENOSPC       ? 2
           : code == TD_EUNAVAILABLE ? 1
                                     : 0;
}

void td_pg__note_fault(td_conn *conn, int code)
{
    if (conn && severity(code) > severity(conn->fault)) {
        conn->fault = code;
        td_error__copy(conn->fault_message, sizeof conn->fault_message);
    }
}

/* The server's message on one line: libpq's hints after a newline and a
 * tab are joined with a space; the trailing newline goes. */
static void trimmed(char *out, size_t size, const char *text)
{
    size_t n = 0;
    for (const char *p = text ? text : ""; *p && n + 1 < size; p++) {
        if (*p == '\n' || *p == '\t') {
            if (n > 0 && out[n - 1] != ' ')
                out[n++] = ' ';
            continue;
        }
        out[n++] = *p;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

static int code_of(const char *state)
{
    if (state == NULL || strlen(state) != 5)
        return TD_ERROR;
    if (strcmp(state, "23505") == 0)
        return TD_EEXISTS;
    if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0)
        return TD_EINVAL;
    if (strcmp(state, "55P03") == 0 || strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
        strcmp(state, "57014") == 0)
        return TD_EBUSY;
    if (strcmp(state, "53100") == 0)
        return TD_ENOSPC;
    if (strcmp(state, "53200") == 0)
        return TD_ENOMEM;
    if (strcmp(state, "53300") == 0 || strncmp(state, "08", 2) == 0 ||
        strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0)
        return TD_EUNAVAILABLE;
    if (strncmp(state, "54", 2) == 0)
        return TD_ETOOBIG;
    if (strncmp(state, "58", 2) == 0)
        return TD_EIO;
    if (strcmp(state, "XX001") == 0 || strcmp(state, "XX002") == 0)
        return TD_ECORRUPT;
    return TD_ERROR;
}

int td_pg__error(td_conn *conn, const PGresult *res, const char *what)
{
    char why[400];
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    bool lost = conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD;
    int code = lost && state == NULL ? TD_EUNAVAILABLE : code_of(state);
    /* Only the event's id may be taken already; a position or a stream
     * version taken means the writer's idea of the log was wrong (its write
     * lock or its cached versions): a bug, not the caller's duplicate. */
    if (code == TD_EEXISTS && constraint && strncmp(constraint, "events_", 7) == 0 &&
        strcmp(constraint, "events_id_key") != 0)
        return td_error__set(
            TD_ERROR,
            "%s: %s is taken already (constraint %s): this writer's "
            "idea of the log was out of date; nothing was written; please "
            "report this",
            what, strcmp(constraint, "events_pkey") == 0 ? "the position" : "the stream version",
            constraint);
    if (primary)
        trimmed(why, sizeof why, primary);
    else if (res && PQresultErrorMessage(res)[0])
        trimmed(why, sizeof why, PQresultErrorMessage(res));
    else
        trimmed(why, sizeof why, conn->pg ? PQerrorMessage(conn->pg) : "the connection is lost");
    if (code == TD_EUNAVAILABLE)
        td_error__set(code, "%s: the database server cannot be reached (%s)", what, why);
    else if (code == TD_ENOSPC)
        td_error__set(code, "%s: the disk is full (%s)", what, why);
    else
        td_error__set(code, "%s: %s", what, why);
    if (code == TD_EUNAVAILABLE || code == TD_ENOSPC || code == TD_EIO || code == TD_ECORRUPT)
        td_pg__note_fault(conn, code);
    if (code == TD_EUNAVAILABLE)
        td_pg__drop(conn); /* whatever state it was in, it is gone */
    return code;
}

/* ---- connecting ---------------------------------------------------------------- */

PGconn *td_pg__connectdb(const char *target, int busy_timeout_ms)
{
    char connect_timeout[16];
    int seconds = (busy_timeout_ms + 999) / 1000;
    snprintf(connect_timeout, sizeof connect_timeout, "%d",
             seconds < 2    ? 2
             : seconds > 10 ? 10
                            : seconds);
    /* Ours first: the URL's own parameters, expanded from dbname, override. */
    const char *const keys[] = {"connect_timeout",  "keepalives",
                                "keepalives_idle",  "keepalives_interval",
                                "keepalives_count", "tcp_user_timeout",
                                "application_name", "client_encoding",
                                "dbname",           NULL};
    const char *const values[] = {connect_timeout, "1",       "5",    "2",    "3",
                                  "10000",         "tidings", "UTF8", target, NULL};
    return PQconnectdbParams(keys, values, 1);
}

/* in_txn stays as it was: a connection lost inside a transaction took the
 * transaction with it, and every statement of it until its ROLLBACK or
 * COMMIT must fail, not run on a new connection outside any transaction
 * (which would commit part of a unit). */
void td_pg__drop(td_conn *conn)
{
    if (conn->pg)
        PQfinish(conn->pg);
    conn->pg = NULL;
    conn->versions_head = -1; /* pg.c's stream versions: not trusted past the next BEGIN */
    td_pg__unqueue(conn, 0);
    memset(conn->prepared, 0, sizeof conn->prepared);
    memset(conn->read_prepared, 0, sizeof conn->read_prepared);
}

/* The server's notices (and the FATAL it sends before ending an idle
 * connection) are not printed on the application's stderr: what matters of
 * them comes back as errors of the calls. */
static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int td_pg__connect(td_conn *conn)
{
    char why[400], sql[160], shown[300];
    td_pg__drop(conn);
    conn->pg = td_pg__connectdb(conn->target, conn->busy_timeout_ms);
    if (conn->pg == NULL)
        return td_error__oom();
    if (PQstatus(conn->pg) != CONNECTION_OK) {
        trimmed(why, sizeof why, PQerrorMessage(conn->pg));
        td_pg__drop(conn);
        td_pg__display(conn->target, shown, sizeof shown);
        td_error__set(TD_EUNAVAILABLE, "cannot connect to the PostgreSQL server of %s: %s", shown,
                      why);
        td_pg__note_fault(conn, TD_EUNAVAILABLE);
        return TD_EUNAVAILABLE;
    }
    const char *encoding = PQparameterStatus(conn->pg, "server_encoding");
    if (encoding == NULL || strcmp(encoding, "UTF8") != 0) {
        td_pg__drop(conn);
        return td_error__set(TD_EINVAL,
                             "the database's encoding is %s: a tidings store needs UTF8 (CREATE "
                             "DATABASE … ENCODING 'UTF8')",
                             encoding ? encoding : "unknown");
    }
    PQsetNoticeProcessor(conn->pg, quiet_notices, NULL);
    if (PQsetnonblocking(conn->pg, 1) != 0) {
        td_pg__drop(conn);
        return td_error__set(TD_ERROR, "cannot make the connection nonblocking");
    }
    /* Acknowledged means durable, whatever the server's default; a lock
     * (the store's write lock, another process's rows) is waited for as
     * long as SQLite's busy timeout. */
    snprintf(sql, sizeof sql,
             "SET synchronous_commit = on; SET lock_timeout = %d; SET client_min_messages = "
             "warning",
             conn->busy_timeout_ms);
    return td_pg__exec(conn, sql, "setting up the connection", td_pg__deadline_ms(conn), NULL);
}

int td_pg__ensure(td_conn *conn, int wait_ms)
{
    if (conn->pg && PQstatus(conn->pg) == CONNECTION_OK)
        return 0;
    if (conn->in_txn)
        return td_error__set(TD_EUNAVAILABLE, "the connection was lost inside a transaction");
    int64_t until = now_ms() + wait_ms;
    int delay_ms = 50, error;
    while ((error = td_pg__connect(conn)) == TD_EUNAVAILABLE && now_ms() + delay_ms < until) {
        usleep((useconds_t)delay_ms * 1000);
        delay_ms = delay_ms * 2 > 1000 ? 1000 : delay_ms * 2;
    }
    if (error == 0 && conn->store_oid == 0)
        error = td_pg__identify_store(conn);
    return error;
}

/* ---- running statements ------------------------------------------------------------ */

/* What wait_socket saw. */
typedef enum socket_wait {
    SOCKET_READY,     /* ready for the events asked */
    SOCKET_TIMED_OUT, /* the deadline passed first */
    SOCKET_FAILED,    /* no socket, or poll failed (errno) */
} socket_wait;

/* Waits until the socket is ready for events or the deadline (0: none)
 * passes. */
static socket_wait wait_socket(PGconn *pg, short events, int64_t deadline)
{
    struct pollfd p = {.fd = PQsocket(pg), .events = events};
    if (p.fd < 0)
        return SOCKET_FAILED;
    for (;;) {
        int timeout = -1;
        if (deadline) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return SOCKET_TIMED_OUT;
            timeout = left > 1000000 ? 1000000 : (int)left;
        }
        int n = poll(&p, 1, timeout);
        if (n > 0)
            return SOCKET_READY;
        if (n == 0)
            return SOCKET_TIMED_OUT;
        if (errno != EINTR)
            return SOCKET_FAILED;
    }
}

static int hung(td_conn *conn, const char *what, int timeout_ms)
{
    td_pg__drop(conn);
    td_error__set(TD_EUNAVAILABLE,
                  "%s: no answer from the database server within %d ms (it is hung or the "
                  "network is cut); the connection is dropped",
                  what, timeout_ms);
    td_pg__note_fault(conn, TD_EUNAVAILABLE);
    return TD_EUNAVAILABLE;
}

int td_pg__finish(td_conn *conn, int timeout_ms, const char *what, PGresult **out)
{
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    PGresult *failed = NULL, *last = NULL;
    PGconn *pg = conn->pg;
    int flushed;
    if (out)
        *out = NULL;
    while ((flushed = PQflush(pg)) == 1) {
        socket_wait ready = wait_socket(pg, POLLOUT | POLLIN, deadline);
        if (ready == SOCKET_TIMED_OUT)
            return hung(conn, what, timeout_ms);
        if (ready == SOCKET_FAILED || !PQconsumeInput(pg))
            return td_pg__error(conn, NULL, what);
    }
    if (flushed < 0)
        return td_pg__error(conn, NULL, what);
    for (;;) {
        while (PQisBusy(pg)) {
            socket_wait ready = wait_socket(pg, POLLIN, deadline);
            if (ready == SOCKET_TIMED_OUT) {
                PQclear(failed);
                PQclear(last);
                return hung(conn, what, timeout_ms);
            }
            if (ready == SOCKET_FAILED || !PQconsumeInput(pg))
                break; /* PQgetResult reports the broken connection */
        }
        PGresult *res = PQgetResult(pg);
        if (res == NULL)
            break;
        ExecStatusType st = PQresultStatus(res);
        if ((st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE) && failed == NULL) {
            failed = res;
        } else if (failed == NULL) {
            PQclear(last);
            last = res;
        } else {
            PQclear(res);
        }
        if (PQstatus(pg) == CONNECTION_BAD)
            break;
    }
    if (failed || (last == NULL && PQstatus(pg) == CONNECTION_BAD)) {
        int code = td_pg__error(conn, failed, what);
        PQclear(failed);
        PQclear(last);
        return code;
    }
    if (out)
        *out = last;
    else
        PQclear(last);
    return 0;
}

static int sent(td_conn *conn, int ok, const char *what, int timeout_ms, PGresult **out)
{
    if (!ok)
        return td_pg__error(conn, NULL, what);
    return td_pg__finish(conn, timeout_ms, what, out);
}

static int run_pipeline(td_conn *conn, const char *name, int params, size_t count, td_pg_row_fn row,
                        void *arg, const char *what, PGresult **out);
static int prepare(td_conn *conn, bool *prepared, const char *name, const char *sql, int params);

static int lost(td_conn *conn, const char *what)
{
    td_error__set(TD_EUNAVAILABLE, "%s: the connection to the database server is lost", what);
    td_pg__note_fault(conn, TD_EUNAVAILABLE);
    return TD_EUNAVAILABLE;
}

/* ---- the queue of statements held back ------------------------------------------- */

static void forget_entry(td_conn *conn, pg_queued *q)
{
    conn->queue_bytes -= q->size;
    conn->queued_writes -= q->name != NULL;
    conn->queued_unsure -= q->name != NULL && !q->sure;
    td_free(q->data);
    q->data = NULL;
}

void td_pg__unqueue(td_conn *conn, size_t from)
{
    for (size_t i = from; i < conn->queued; i++)
        forget_entry(conn, &conn->queue[i]);
    if (from < conn->queued)
        conn->queued = from;
    if (conn->carried > conn->queued)
        conn->carried = conn->queued;
}

void td_pg__unqueue_one(td_conn *conn, size_t at)
{
    if (at >= conn->queued)
        return;
    forget_entry(conn, &conn->queue[at]);
    memmove(&conn->queue[at], &conn->queue[at + 1], (conn->queued - at - 1) * sizeof *conn->queue);
    conn->queued--;
    if (at < conn->carried)
        conn->carried--;
}

size_t td_pg__queued_command(const td_conn *conn, const char *command)
{
    for (size_t i = conn->queued; i > 0; i--)
        if (conn->queue[i - 1].name == NULL && strcmp(conn->queue[i - 1].command, command) == 0)
            return i - 1;
    return conn->queued;
}

/* A new entry at the queue's end, zeroed; NULL when out of memory. */
static pg_queued *queue_slot(td_conn *conn)
{
    if (conn->queued == conn->queue_cap) {
        size_t cap = conn->queue_cap ? conn->queue_cap * 2 : 16;
        pg_queued *grown = td_realloc(conn->queue, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        conn->queue = grown;
        conn->queue_cap = cap;
    }
    pg_queued *q = &conn->queue[conn->queued];
    memset(q, 0, sizeof *q);
    return q;
}

int td_pg__defer(td_conn *conn, const char *command)
{
    if (strlen(command) >= sizeof conn->queue[0].command)
        return td_error__set(TD_ERROR, "savepoint command too long");
    if (conn->queued == PG_QUEUE_MAX) {
        int error = td_pg__flush(conn);
        if (error < 0)
            return error;
    }
    pg_queued *q = queue_slot(conn);
    if (q == NULL)
        return td_error__oom();
    snprintf(q->command, sizeof q->command, "%s", command);
    q->what = "savepoint";
    conn->queued++;
    return 0;
}

int td_pg__defer_prepared(td_conn *conn, bool *prepared, const char *name, const char *sql,
                          int count, const char *const *values, const int *lengths,
                          const int *formats, const char *what, bool sure)
{
    if (conn->pg == NULL)
        return lost(conn, what);
    if (count > PG_PARAMS_MAX)
        return td_error__set(TD_ERROR, "%s: %d parameters, over %d", what, count, PG_PARAMS_MAX);
    size_t sizes[PG_PARAMS_MAX], size = 0;
    for (int i = 0; i < count; i++) {
        bool binary = formats && formats[i];
        sizes[i] = values[i] == NULL ? 0 : binary ? (size_t)lengths[i] : strlen(values[i]) + 1;
        size += sizes[i];
    }
    int error = 0;
    if (conn->queued == PG_QUEUE_MAX || conn->queue_bytes + size > PG_QUEUE_BYTES_MAX)
        error = td_pg__flush(conn);
    if (error == 0)
        error = prepare(conn, prepared, name, sql, count);
    if (error < 0)
        return error;
    pg_queued *q = queue_slot(conn);
    char *data = q ? td_malloc(size ? size : 1) : NULL;
    if (data == NULL)
        return td_error__oom();
    q->name = name;
    q->sure = sure;
    q->what = what;
    q->params = count;
    q->data = data;
    q->size = size;
    for (int i = 0; i < count; i++) {
        q->formats[i] = formats ? formats[i] : 0;
        q->lengths[i] = q->formats[i] ? lengths[i] : 0;
        if (values[i] == NULL)
            continue;
        memcpy(data, values[i], sizes[i]);
        q->values[i] = data;
        data += sizes[i];
    }
    conn->queued++;
    conn->queued_writes++;
    conn->queued_unsure += !sure;
    conn->queue_bytes += size;
    return 0;
}

int td_pg__flush_result(td_conn *conn, const char *what, PGresult **out)
{
    if (out)
        *out = NULL;
    if (conn->queued == 0)
        return 0;
    if (conn->pg == NULL) {
        td_pg__unqueue(conn, 0);
        return lost(conn, what);
    }
    return run_pipeline(conn, NULL, 0, 0, NULL, NULL, what, out);
}

int td_pg__flush(td_conn *conn)
{
    return td_pg__flush_result(conn, "sending held-back statements", NULL);
}

/* What is queued as one simple-query text ("SAVEPOINT s1; RELEASE s1; "),
 * when it is only commands: NULL otherwise, or out of memory. */
static char *queued_commands(const td_conn *conn)
{
    if (conn->queued_writes > 0)
        return NULL;
    char *text = td_malloc(conn->queued * (sizeof conn->queue[0].command + 2) + 1);
    if (text == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < conn->queued; i++)
        n += (size_t)sprintf(text + n, "%s; ", conn->queue[i].command);
    text[n] = '\0';
    return text;
}

int td_pg__exec(td_conn *conn, const char *sql, const char *what, int timeout_ms, PGresult **out)
{
    if (conn->pg == NULL)
        return lost(conn, what);
    if (conn->queued == 0)
        return sent(conn, PQsendQuery(conn->pg, sql), what, timeout_ms, out);
    char *commands = queued_commands(conn);
    if (commands == NULL) { /* writes held back: they go first, in a round trip of their own */
        int error = td_pg__flush(conn);
        return error < 0 ? error : sent(conn, PQsendQuery(conn->pg, sql), what, timeout_ms, out);
    }
    size_t n = strlen(commands), m = strlen(sql);
    char *both = td_realloc(commands, n + m + 1);
    if (both == NULL) {
        td_free(commands);
        return td_error__oom();
    }
    memcpy(both + n, sql, m + 1);
    td_pg__unqueue(conn, 0);
    int ok = PQsendQuery(conn->pg, both);
    td_free(both);
    return sent(conn, ok, what, timeout_ms, out);
}

int td_pg__query(td_conn *conn, const char *sql, int count, const char *const *values, bool binary,
                 const char *what, int timeout_ms, PGresult **out)
{
    if (conn->pg == NULL)
        return lost(conn, what);
    int error = td_pg__flush(conn);
    if (error < 0)
        return error;
    return sent(conn,
                PQsendQueryParams(conn->pg, sql, count, NULL, values, NULL, NULL, binary ? 1 : 0),
                what, timeout_ms, out);
}

typedef struct one_row {
    const char *const *values;
    const int *lengths, *formats;
} one_row;

static void the_row(void *arg, size_t i, const char *const **values, const int **lengths,
                    const int **formats)
{
    one_row *r = arg;
    (void)i;
    *values = r->values;
    *lengths = r->lengths;
    *formats = r->formats;
}

int td_pg__prepared(td_conn *conn, bool *prepared, const char *name, const char *sql, int count,
                    const char *const *values, const int *lengths, const int *formats,
                    const char *what, PGresult **out)
{
    if (conn->pg == NULL)
        return lost(conn, what);
    int error = prepare(conn, prepared, name, sql, count);
    if (error < 0)
        return error;
    if (conn->queued > 0) { /* what is held back goes in the same round trip */
        one_row r = {values, lengths, formats};
        return run_pipeline(conn, name, count, 1, the_row, &r, what, out);
    }
    return sent(conn, PQsendQueryPrepared(conn->pg, name, count, values, lengths, formats, 1), what,
                td_pg__deadline_ms(conn), out);
}

/* Sends what libpq holds for the server, reading what the server sends
 * meanwhile (so that neither side blocks on a full buffer): 0, or < 0
 * with the connection's code. */
static int push(td_conn *conn, int64_t deadline, int timeout_ms, const char *what)
{
    int flushed;
    while ((flushed = PQflush(conn->pg)) == 1) {
        socket_wait ready = wait_socket(conn->pg, POLLOUT | POLLIN, deadline);
        if (ready == SOCKET_TIMED_OUT)
            return hung(conn, what, timeout_ms);
        if (ready == SOCKET_FAILED || !PQconsumeInput(conn->pg))
            return td_pg__error(conn, NULL, what);
    }
    return flushed < 0 ? td_pg__error(conn, NULL, what) : 0;
}

/* A write of a unit released already failed: the transaction is failed,
 * and with it the batch (take_fault). */
static void note_batch_fault(td_conn *conn, int code)
{
    if (conn->batch_fault != 0)
        return;
    conn->batch_fault = code;
    snprintf(conn->batch_message, sizeof conn->batch_message,
             "%s (an insert held back past its unit's end failed: every unit of the batch is "
             "rolled back)",
             td_error_last());
    td_error__set(code, "%s", conn->batch_message);
}

/* Sends one queued statement in pipeline mode. */
static int send_queued(PGconn *pg, const pg_queued *q)
{
    if (q->name == NULL)
        return PQsendQueryParams(pg, q->command, 0, NULL, NULL, NULL, NULL, 0);
    return PQsendQueryPrepared(pg, q->name, q->params, q->values, q->lengths, q->formats, 1);
}

/* Sends the statements queued (conn->queue), then count runs of prepared
 * statement name (none: name NULL), in pipeline mode, and reads every
 * answer up to the sync: one round trip. *out (may be NULL) gets the last
 * run's result. A failure is reported under the `what` of the statement
 * that failed (a queued one's own). */
static int run_pipeline(td_conn *conn, const char *name, int params, size_t count, td_pg_row_fn row,
                        void *arg, const char *what, PGresult **out)
{
    int error = 0, timeout_ms = td_pg__deadline_ms(conn);
    int64_t deadline = now_ms() + timeout_ms;
    PGconn *pg = conn->pg;
    size_t queued = conn->queued, statements = count + queued;
    if (out)
        *out = NULL;
    /* The queue is emptied once the answers are in: whatever they say, it
     * was sent (or the connection is gone), and a failure is reported under
     * the failed statement's own `what`. */
    if (!PQenterPipelineMode(pg)) {
        td_pg__unqueue(conn, 0);
        return td_pg__error(conn, NULL, what);
    }
    for (size_t i = 0; i < queued && error == 0; i++) {
        if (!send_queued(pg, &conn->queue[i]))
            error = td_pg__error(conn, NULL, conn->queue[i].what);
        else if (i % 64 == 63)
            error = push(conn, deadline, timeout_ms, what);
    }
    for (size_t i = 0; i < count && error == 0; i++) {
        const char *const *values;
        const int *lengths, *formats;
        row(arg, i, &values, &lengths, &formats);
        if (!PQsendQueryPrepared(pg, name, params, values, lengths, formats, 1))
            error = td_pg__error(conn, NULL, what);
        else if (i % 64 == 63)
            error = push(conn, deadline, timeout_ms, what);
    }
    if (error == 0 && !PQpipelineSync(pg))
        error = td_pg__error(conn, NULL, what);
    if (error == 0)
        error = push(conn, deadline, timeout_ms, what);
    /* Every answer up to the sync: the first failure is the answer (the
     * server skips the rest of the pipeline after it). */
    PGresult *failed = NULL, *last = NULL;
    size_t ends = 0, failed_at = 0; /* statements' ends seen: one each, then the sync */
    while (error == 0) {
        while (PQisBusy(pg)) {
            socket_wait ready = wait_socket(pg, POLLIN, deadline);
            if (ready == SOCKET_TIMED_OUT) {
                PQclear(failed);
                PQclear(last);
                return hung(conn, what, timeout_ms); /* drops the connection and the queue */
            }
            if (ready == SOCKET_FAILED || !PQconsumeInput(pg))
                break;
        }
        if (PQstatus(pg) == CONNECTION_BAD) {
            error = td_pg__error(conn, failed, what);
            break;
        }
        PGresult *res = PQgetResult(pg);
        if (res == NULL) {
            if (++ends > statements + 1) { /* no sync will come: the connection is broken */
                error = td_pg__error(conn, failed, what);
                break;
            }
            continue; /* the end of one statement's answer */
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if ((st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE) && failed == NULL) {
            failed = res;
            failed_at = ends;
        } else if (failed == NULL && st != PGRES_PIPELINE_ABORTED) {
            PQclear(last);
            last = res;
        } else {
            PQclear(res);
        }
    }
    if (conn->pg == pg) {
        const char *failed_what =
            failed_at < queued && failed_at < conn->queued ? conn->queue[failed_at].what : what;
        if (error == 0 && failed) {
            error = td_pg__error(conn, failed, failed_what);
            if (failed_at < conn->carried) /* an earlier unit's write: the batch is lost */
                note_batch_fault(conn, error);
        }
        if (conn->pg == pg && !PQexitPipelineMode(pg) && error == 0)
            error = td_pg__error(conn, NULL, what);
    }
    td_pg__unqueue(conn, 0);
    PQclear(failed);
    if (error == 0 && out)
        *out = last;
    else
        PQclear(last);
    return error;
}

static int prepare(td_conn *conn, bool *prepared, const char *name, const char *sql, int params)
{
    if (*prepared)
        return 0;
    int error = sent(conn, PQsendPrepare(conn->pg, name, sql, params, NULL),
                     "preparing a statement", td_pg__deadline_ms(conn), NULL);
    if (error == 0)
        *prepared = true;
    return error;
}

int td_pg__pipeline(td_conn *conn, bool *prepared, const char *name, const char *sql, int params,
                    size_t count, td_pg_row_fn row, void *arg, const char *what)
{
    if (conn->pg == NULL)
        return lost(conn, what);
    int error = prepare(conn, prepared, name, sql, params);
    if (error == 0)
        error = run_pipeline(conn, name, params, count, row, arg, what, NULL);
    return error;
}

/* ---- binary values -------------------------------------------------------------------- */

int64_t td_pg__int8(const PGresult *res, int row, int col)
{
    const unsigned char *v = (const unsigned char *)PQgetvalue(res, row, col);
    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
        return 0;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | v[i];
    return (int64_t)x;
}

int32_t td_pg__int4(const PGresult *res, int row, int col)
{
    const unsigned char *v = (const unsigned char *)PQgetvalue(res, row, col);
    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 4)
        return 0;
    return (int32_t)((uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3]);
}

/* ---- URLs ------------------------------------------------------------------------------ */

/* Whether url looks like libpq's keyword form: it starts with a libpq
 * keyword and '=' (a path rarely does; such a file is named sqlite:PATH). */
static bool keyword_form(const char *url)
{
    size_t n = strspn(url, "abcdefghijklmnopqrstuvwxyz_");
    if (n == 0 || url[n] != '=')
        return false;
    PQconninfoOption *defaults = PQconndefaults();
    bool known = false;
    for (PQconninfoOption *o = defaults; o && o->keyword && !known; o++)
        known = strlen(o->keyword) == n && strncmp(o->keyword, url, n) == 0;
    PQconninfoFree(defaults);
    return known;
}

int td_pg__claim(const char *url, const char **target)
{
    bool uri = strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0;
    if (!uri && !keyword_form(url))
        return 0;
    char *why = NULL;
    PQconninfoOption *parsed = PQconninfoParse(url, &why);
    if (parsed == NULL) {
        char text[300];
        trimmed(text, sizeof text, why ? why : "out of memory");
        PQfreemem(why);
        return td_error__set(TD_EINVAL, "bad PostgreSQL store URL: %s", text);
    }
    PQconninfoFree(parsed);
    *target = url;
    return 1;
}

/* Copies url with the password of a URI (user:PASSWORD@) and of a
 * password=VALUE parameter replaced by "***". */
void td_pg__display(const char *url, char *out, size_t size)
{
    size_t n = 0;
    const char *p = url;
    const char *scheme_end = strstr(url, "://");
    const char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
    const char *slash = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
    if (at && (!slash || at < slash)) {
        const char *colon = memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3));
        if (colon) {
            n = (size_t)snprintf(out, size, "%.*s:***", (int)(colon - url), url);
            p = at;
        }
    }
    while (*p && n + 1 < size) {
        if (strncmp(p, "password=", 9) == 0 &&
            (p == url || p[-1] == ' ' || p[-1] == '?' || p[-1] == '&')) {
            n += (size_t)snprintf(out + n, size - n, "password=***");
            p += 9;
            if (*p == '\'') {
                for (p++; *p && *p != '\''; p++)
                    if (*p == '\\' && p[1])
                        p++;
                if (*p)
                    p++;
            } else {
                p += strcspn(p, " &");
            }
            continue;
        }
        out[n++] = *p++;
    }
    if (n >= size)
        n = size - 1;
    out[n] = '\0';
}
