/*
 * sqlite.c: the SQLite backend's operations (the table in backend.h).
 *
 * Every statement is prepared once per connection and kept (persistent
 * preparation), since the writer runs the same few statements tens of
 * thousands of times a second. Text and blobs are bound without copying:
 * the caller's strings outlive the step. Rows are handed to callbacks as
 * td_event views pointing into SQLite's own buffers, valid for that row.
 *
 * Durability comes from the connection setup in sqlite_schema.c: WAL with
 * synchronous=FULL, so COMMIT returns after the log is fsync'd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "store/sqlite_int.h"

#define TD_STR_(x) #x
#define TD_STR(x)  TD_STR_(x)

#define EVENT_COLUMNS                                                                              \
    "position, id, stream, version, type, schema_version, kind, source, occurred_at, "             \
    "correlation_id, causation_id, traceparent, metadata, data, hash"

static const char *const statement_sql[STMT_COUNT] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_SAVEPOINT] = "SAVEPOINT unit",
    [STMT_RELEASE] = "RELEASE unit",
    [STMT_ROLLBACK_TO] = "ROLLBACK TO unit",
    [STMT_INSERT] = "INSERT INTO events (" EVENT_COLUMNS ") "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    [STMT_HEAD] = "SELECT coalesce(max(position), 0) FROM events",
    [STMT_HASH_BEFORE] =
        "SELECT hash FROM events WHERE position < ?1 ORDER BY position DESC LIMIT 1",
    [STMT_STREAM_VERSION] = "SELECT coalesce(max(version), 0) FROM events WHERE stream = ?1",
    [STMT_READ_STREAM] = "SELECT " EVENT_COLUMNS " FROM events WHERE stream = ?1 AND "
                         "version >= ?2 ORDER BY version LIMIT ?3",
    [STMT_READ_EVENT] = "SELECT " EVENT_COLUMNS " FROM events WHERE id = ?1",
    [STMT_DOC_PUT] = "INSERT INTO documents (collection, key, body, updated_at) "
                     "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (collection, key) DO UPDATE "
                     "SET body = excluded.body, updated_at = excluded.updated_at",
    [STMT_DOC_GET] = "SELECT body FROM documents WHERE collection = ?1 AND key = ?2",
    [STMT_DOC_DELETE] = "DELETE FROM documents WHERE collection = ?1 AND key = ?2",
    [STMT_DOC_LIST] = ("SELECT key, body FROM documents WHERE collection = ?1 AND key > ?2 "
                       "ORDER BY key LIMIT ?3"),
    [STMT_DOC_COLLECTIONS] = "SELECT DISTINCT collection FROM documents ORDER BY collection",
};

/* Out of space: SQLite's own SQLITE_FULL (a write to the database, its log
 * or a temporary file found the disk full; nothing was written), or an I/O
 * error whose system error was ENOSPC where the failed call was one that
 * allocates space (growing the -shm, creating a file). A failed sync is
 * never this, whatever its errno: after a failed fsync the kernel may have
 * dropped the pages, and only fail-stop is safe (writer.c). */
static bool out_of_space(td_conn *conn, int rc)
{
    if ((rc & 0xff) == SQLITE_FULL)
        return true;
    if (conn == NULL || conn->db == NULL || sqlite3_system_errno(conn->db) != ENOSPC)
        return false;
    return rc == SQLITE_IOERR_SHMSIZE || rc == SQLITE_IOERR_SHMOPEN || rc == SQLITE_IOERR_WRITE ||
           rc == SQLITE_IOERR_TRUNCATE || (rc & 0xff) == SQLITE_CANTOPEN;
}

static int severity(int code)
{
    return code == TD_ECORRUPT ? 3 : code == TD_EIO ? 2 : code == TD_ENOSPC ? 1 : 0;
}

static void note_fault(td_conn *conn, int code)
{
    if (conn && severity(code) > severity(conn->fault)) {
        conn->fault = code;
        td_error__copy(conn->fault_message, sizeof conn->fault_message);
    }
}

int td_sqlite__error(td_conn *conn, int rc, const char *what)
{
    const char *why = conn && conn->db ? sqlite3_errmsg(conn->db) : sqlite3_errstr(rc);
    int code;
    if (out_of_space(conn, rc)) {
        td_error__set(TD_ENOSPC, "%s: the disk is full (%s)", what, why);
        note_fault(conn, TD_ENOSPC);
        return TD_ENOSPC;
    }
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = TD_EBUSY;
        break;
    case SQLITE_NOMEM:
        code = TD_ENOMEM;
        break;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_READONLY:
        code = TD_EIO;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        code = TD_ECORRUPT;
        break;
    case SQLITE_CONSTRAINT:
        code = rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ? TD_EEXISTS
                                                                                    : TD_EINVAL;
        break;
    case SQLITE_TOOBIG:
        code = TD_ETOOBIG;
        break;
    default:
        code = TD_ERROR;
        break;
    }
    td_error__set(code, "%s: %s", what, why);
    if ((rc & 0xff) == SQLITE_IOERR || code == TD_ECORRUPT)
        note_fault(conn, code);
    return code;
}

int td_sqlite__exec(td_conn *conn, const char *sql, const char *what)
{
    int rc = sqlite3_exec(conn->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : td_sqlite__error(conn, rc, what);
}

int td_sqlite__int(td_conn *conn, const char *sql, int64_t *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(conn->db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        *out = sqlite3_column_int64(stmt, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    return rc == SQLITE_OK ? 0 : td_sqlite__error(conn, rc, sql);
}

static int prepare(td_conn *conn, sqlite3_stmt **slot, const char *sql, sqlite3_stmt **out)
{
    if (*slot == NULL) {
        int rc = sqlite3_prepare_v3(conn->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
        if (rc != SQLITE_OK)
            return td_sqlite__error(conn, rc, "preparing statement");
    }
    *out = *slot;
    return 0;
}

static int statement(td_conn *conn, int id, sqlite3_stmt **out)
{
    return prepare(conn, &conn->stmts[id], statement_sql[id], out);
}

/* Steps a statement that returns no rows, then resets it. */
static int run(td_conn *conn, sqlite3_stmt *stmt, const char *what)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : td_sqlite__error(conn, rc, what);
}

static int run_simple(td_conn *conn, int id, const char *what)
{
    sqlite3_stmt *stmt = NULL;
    int error = statement(conn, id, &stmt);
    return error < 0 ? error : run(conn, stmt, what);
}

/* ---- transactions -------------------------------------------------------- */

static int sq_begin(td_conn *conn)
{
    return run_simple(conn, STMT_BEGIN, "beginning write transaction");
}

static int sq_commit(td_conn *conn)
{
    return run_simple(conn, STMT_COMMIT, "commit failed");
}

/* fdatasync of the WAL through a descriptor of our own: the kernel syncs the
 * file, whichever descriptor asks, so this needs nothing of SQLite's and can
 * run beside the writer. The connection keeps the WAL (it is reset, not
 * removed, while the connection is open). */
static int sq_sync_log(td_conn *conn)
{
    if (conn->wal_fd < 0) {
        char path[4200];
        const char *db = sqlite3_db_filename(conn->db, "main");
        snprintf(path, sizeof path, "%s-wal", db ? db : conn->path);
        conn->wal_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (conn->wal_fd < 0 && errno == ENOENT)
            return 0; /* nothing written yet */
        if (conn->wal_fd < 0)
            return td_error__set(TD_EIO, "cannot open %s to sync it: %s", path, strerror(errno));
    }
    if (fdatasync(conn->wal_fd) != 0)
        return td_error__set(TD_EIO, "fdatasync of %s-wal failed: %s", conn->path, strerror(errno));
    return 0;
}

static void sq_rollback(td_conn *conn)
{
    if (!sqlite3_get_autocommit(conn->db))
        sqlite3_exec(conn->db, "ROLLBACK", NULL, NULL, NULL);
}

static bool sq_in_transaction(td_conn *conn)
{
    return !sqlite3_get_autocommit(conn->db);
}

static int sq_savepoint(td_conn *conn)
{
    return run_simple(conn, STMT_SAVEPOINT, "savepoint");
}

static int sq_release(td_conn *conn)
{
    return run_simple(conn, STMT_RELEASE, "releasing savepoint");
}

static int sq_rollback_to(td_conn *conn)
{
    int error = run_simple(conn, STMT_ROLLBACK_TO, "rolling back unit");
    return error < 0 ? error : sq_release(conn);
}

/* ---- events --------------------------------------------------------------- */

static void bind_text(sqlite3_stmt *stmt, int i, const char *s, size_t len)
{
    if (s == NULL)
        sqlite3_bind_null(stmt, i);
    else
        sqlite3_bind_text64(stmt, i, s, len, SQLITE_STATIC, SQLITE_UTF8);
}

static int sq_insert(td_conn *conn, const td_event *ev)
{
    sqlite3_stmt *stmt = NULL;
    int error = statement(conn, STMT_INSERT, &stmt);
    if (error < 0)
        return error;
    sqlite3_bind_int64(stmt, 1, ev->position);
    sqlite3_bind_blob(stmt, 2, ev->id.bytes, sizeof ev->id.bytes, SQLITE_STATIC);
    bind_text(stmt, 3, ev->stream, strlen(ev->stream));
    sqlite3_bind_int64(stmt, 4, ev->version);
    bind_text(stmt, 5, ev->type, strlen(ev->type));
    sqlite3_bind_int(stmt, 6, ev->schema_version);
    sqlite3_bind_int(stmt, 7, (int)ev->kind);
    bind_text(stmt, 8, ev->source, strlen(ev->source));
    sqlite3_bind_int64(stmt, 9, ev->occurred_at);
    bind_text(stmt, 10, ev->correlation_id, ev->correlation_id ? strlen(ev->correlation_id) : 0);
    bind_text(stmt, 11, ev->causation_id, ev->causation_id ? strlen(ev->causation_id) : 0);
    bind_text(stmt, 12, ev->traceparent, strlen(ev->traceparent));
    bind_text(stmt, 13, ev->metadata, ev->metadata_len);
    bind_text(stmt, 14, ev->data, ev->data_len);
    sqlite3_bind_blob(stmt, 15, ev->hash, sizeof ev->hash, SQLITE_STATIC);
    return run(conn, stmt, "appending event");
}

static const char *column_text(sqlite3_stmt *stmt, int i, size_t *len)
{
    const char *s = (const char *)sqlite3_column_text(stmt, i);
    if (len)
        *len = (size_t)sqlite3_column_bytes(stmt, i);
    return s;
}

static void row_to_event(sqlite3_stmt *stmt, td_event *ev)
{
    size_t tp_len;
    const void *id = sqlite3_column_blob(stmt, 1);
    ev->position = sqlite3_column_int64(stmt, 0);
    if (id && sqlite3_column_bytes(stmt, 1) == (int)sizeof ev->id.bytes)
        memcpy(ev->id.bytes, id, sizeof ev->id.bytes);
    else
        memset(&ev->id, 0, sizeof ev->id);
    ev->stream = column_text(stmt, 2, NULL);
    ev->version = sqlite3_column_int64(stmt, 3);
    ev->type = column_text(stmt, 4, NULL);
    ev->schema_version = sqlite3_column_int(stmt, 5);
    ev->kind =
        sqlite3_column_int(stmt, 6) == TD_KIND_INTEGRATION ? TD_KIND_INTEGRATION : TD_KIND_DOMAIN;
    ev->source = column_text(stmt, 7, NULL);
    ev->occurred_at = sqlite3_column_int64(stmt, 8);
    ev->correlation_id = column_text(stmt, 9, NULL);
    ev->causation_id = column_text(stmt, 10, NULL);
    const char *tp = column_text(stmt, 11, &tp_len);
    if (tp == NULL || tp_len > TD_TRACEPARENT_LEN)
        tp_len = 0;
    if (tp_len > 0)
        memcpy(ev->traceparent, tp, tp_len);
    ev->traceparent[tp_len] = '\0';
    ev->metadata = column_text(stmt, 12, &ev->metadata_len);
    ev->data = column_text(stmt, 13, &ev->data_len);
    const void *hash = sqlite3_column_blob(stmt, 14);
    if (hash && sqlite3_column_bytes(stmt, 14) == (int)sizeof ev->hash)
        memcpy(ev->hash, hash, sizeof ev->hash);
    else
        memset(ev->hash, 0, sizeof ev->hash);
}

/* Steps stmt to the end, handing each row to fn; resets stmt in all cases. */
static int each_event(td_conn *conn, sqlite3_stmt *stmt, td_event_fn fn, void *payload)
{
    td_event ev;
    int rc, error = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        row_to_event(stmt, &ev);
        if ((error = fn(&ev, payload)) != 0)
            break;
    }
    if (error == 0 && rc != SQLITE_DONE)
        error = td_sqlite__error(conn, rc, "reading events");
    sqlite3_reset(stmt);
    return error > 0 ? 0 : error;
}

static sqlite3_int64 limit_value(size_t limit)
{
    return limit == 0 || limit > INT64_MAX ? -1 : (sqlite3_int64)limit;
}

static void read_sql(char *sql, size_t size, int variant, const char *picked)
{
    snprintf(sql, size,
             "SELECT " EVENT_COLUMNS "%s FROM events WHERE position > ?1%s%s%s%s "
             "ORDER BY position LIMIT ?6",
             picked, variant & READ_STREAM ? " AND stream = ?2" : "",
             variant & READ_CATEGORY ? " AND category = ?3" : "",
             variant & READ_TYPE ? " AND type = ?4" : "",
             variant & READ_SINCE ? " AND occurred_at >= ?5" : "");
}

static int read_statement(td_conn *conn, int variant, sqlite3_stmt **out)
{
    char sql[512];
    read_sql(sql, sizeof sql, variant, "");
    return prepare(conn, &conn->reads[variant], sql, out);
}

static void bind_query(sqlite3_stmt *stmt, const td_read_query *q)
{
    sqlite3_bind_int64(stmt, 1, q->after_position);
    if (q->stream)
        bind_text(stmt, 2, q->stream, strlen(q->stream));
    if (q->category)
        bind_text(stmt, 3, q->category, strlen(q->category));
    if (q->type)
        bind_text(stmt, 4, q->type, strlen(q->type));
    if (q->since)
        sqlite3_bind_int64(stmt, 5, q->since);
    sqlite3_bind_int64(stmt, 6, limit_value(q->limit));
}

static int query_variant(const td_read_query *q)
{
    return (q->stream ? READ_STREAM : 0) | (q->category ? READ_CATEGORY : 0) |
           (q->type ? READ_TYPE : 0) | (q->since ? READ_SINCE : 0);
}

static int sq_read(td_conn *conn, const td_read_query *q, td_event_fn fn, void *payload)
{
    sqlite3_stmt *stmt = NULL;
    int error = read_statement(conn, query_variant(q), &stmt);
    if (error < 0)
        return error;
    bind_query(stmt, q);
    return each_event(conn, stmt, fn, payload);
}

/* Picking: json_extract with several paths parses the data once and gives a
 * JSON array; with one path it would give a bare SQL value, so one field is
 * json_array(data -> path). Field names are checked ([A-Za-z0-9_]), so they
 * stand in the SQL; the statement is prepared for the one read. */
#define PICKED_SQL_MAX (TD_READ_FIELDS_MAX * 80 + 64)

static int sq_read_fields(td_conn *conn, const td_read_query *q, const char *const *fields,
                          td_row_fields_fn fn, void *payload)
{
    char picked[PICKED_SQL_MAX], sql[PICKED_SQL_MAX + 512];
    size_t n;
    sqlite3_stmt *stmt = NULL;
    int rc, error = 0;
    bool one = fields[1] == NULL;
    if (one)
        n = (size_t)snprintf(picked, sizeof picked, ", json_array(data -> '$.%s'", fields[0]);
    else
        n = (size_t)snprintf(picked, sizeof picked, ", json_extract(data");
    for (size_t i = 0; !one && fields[i] && n < sizeof picked; i++)
        n += (size_t)snprintf(picked + n, sizeof picked - n, ", '$.%s'", fields[i]);
    if (n < sizeof picked)
        snprintf(picked + n, sizeof picked - n, ")");
    read_sql(sql, sizeof sql, query_variant(q), picked);
    if ((rc = sqlite3_prepare_v2(conn->db, sql, -1, &stmt, NULL)) != SQLITE_OK)
        return td_sqlite__error(conn, rc, "preparing a projected read");
    bind_query(stmt, q);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        td_event ev;
        size_t len;
        row_to_event(stmt, &ev);
        const char *values = column_text(stmt, 15, &len);
        if ((error = fn(&ev, values ? values : "[]", values ? len : 2, payload)) != 0)
            break;
    }
    if (error == 0 && rc != SQLITE_DONE)
        error = td_sqlite__error(conn, rc, "reading events");
    sqlite3_finalize(stmt);
    return error > 0 ? 0 : error;
}

static int sq_read_stream(td_conn *conn, const char *stream, int64_t from_version, size_t limit,
                          td_event_fn fn, void *payload)
{
    sqlite3_stmt *stmt = NULL;
    int error = statement(conn, STMT_READ_STREAM, &stmt);
    if (error < 0)
        return error;
    bind_text(stmt, 1, stream, strlen(stream));
    sqlite3_bind_int64(stmt, 2, from_version);
    sqlite3_bind_int64(stmt, 3, limit_value(limit));
    return each_event(conn, stmt, fn, payload);
}

typedef struct find_ctx {
    td_event_fn fn;
    void *payload;
    int found;
} find_ctx;

static int forward_found(const td_event *ev, void *payload)
{
    find_ctx *ctx = payload;
    ctx->found = 1;
    return ctx->fn(ev, ctx->payload);
}

static int sq_read_event(td_conn *conn, const td_uuid *id, td_event_fn fn, void *payload)
{
    sqlite3_stmt *stmt = NULL;
    find_ctx ctx = {fn, payload, 0};
    int error = statement(conn, STMT_READ_EVENT, &stmt);
    if (error < 0)
        return error;
    sqlite3_bind_blob(stmt, 1, id->bytes, sizeof id->bytes, SQLITE_STATIC);
    error = each_event(conn, stmt, forward_found, &ctx);
    if (error == 0 && !ctx.found) {
        char text[TD_UUID_STR_LEN + 1];
        td_uuid_format(text, id);
        error = td_error__set(TD_ENOTFOUND, "no event with id %s", text);
    }
    return error;
}

/* Steps a one-row integer query with the statement's bindings set. */
static int single_int(td_conn *conn, sqlite3_stmt *stmt, int64_t *out, const char *what)
{
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(stmt, 0);
    sqlite3_reset(stmt);
    return rc == SQLITE_ROW ? 0 : td_sqlite__error(conn, rc, what);
}

static int sq_head(td_conn *conn, int64_t *out)
{
    sqlite3_stmt *stmt = NULL;
    int error = statement(conn, STMT_HEAD, &stmt);
    return error < 0 ? error : single_int(conn, stmt, out, "reading head position");
}

static int sq_hash_before(td_conn *conn, int64_t position, uint8_t out[32])
{
    sqlite3_stmt *stmt = NULL;
    int error = statement(conn, STMT_HASH_BEFORE, &stmt);
    if (error < 0)
        return error;
    sqlite3_bind_int64(stmt, 1, position);
    int rc = sqlite3_step(stmt);
    memset(out, 0, 32);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(stmt, 0) == 32)
        memcpy(out, sqlite3_column_blob(stmt, 0), 32);
    sqlite3_reset(stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : td_sqlite__error(conn, rc, "reading hash");
}

static int sq_stream_version(td_conn *conn, const char *stream, int64_t *out)
{
    sqlite3_stmt *stmt = NULL;
    int error = statement(conn, STMT_STREAM_VERSION, &stmt);
    if (error < 0)
        return error;
    bind_text(stmt, 1, stream, strlen(stream));
    return single_int(conn, stmt, out, "reading stream version");
}

/* ---- documents ------------------------------------------------------------ */

static void bind_doc_key(sqlite3_stmt *stmt, const char *collection, const char *key)
{
    bind_text(stmt, 1, collection, strlen(collection));
    bind_text(stmt, 2, key, strlen(key));
}

static int sq_doc_put(td_conn *conn, const char *collection, const char *key, const char *json,
                      size_t len, td_time now)
{
    sqlite3_stmt *stmt = NULL;
    int error = statement(conn, STMT_DOC_PUT, &stmt);
    if (error < 0)
        return error;
    bind_doc_key(stmt, collection, key);
    bind_text(stmt, 3, json, len);
    sqlite3_bind_int64(stmt, 4, now);
    return run(conn, stmt, "writing document");
}

static int sq_doc_delete(td_conn *conn, const char *collection, const char *key)
{
    sqlite3_stmt *stmt = NULL;
    int error = statement(conn, STMT_DOC_DELETE, &stmt);
    if (error < 0)
        return error;
    bind_doc_key(stmt, collection, key);
    if ((error = run(conn, stmt, "deleting document")) < 0)
        return error;
    if (sqlite3_changes(conn->db) == 0)
        return td_error__set(TD_ENOTFOUND, "no document '%.200s' in '%s'", key, collection);
    return 0;
}

static int sq_doc_get(td_conn *conn, const char *collection, const char *key, char **json,
                      size_t *len)
{
    sqlite3_stmt *stmt = NULL;
    int error = statement(conn, STMT_DOC_GET, &stmt);
    if (error < 0)
        return error;
    bind_doc_key(stmt, collection, key);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        size_t n;
        const char *body = column_text(stmt, 0, &n);
        *json = td_strndup(body ? body : "", body ? n : 0);
        error = *json ? 0 : td_error__oom();
        if (len)
            *len = n;
    } else if (rc == SQLITE_DONE) {
        error = td_error__set(TD_ENOTFOUND, "no document '%.200s' in '%s'", key, collection);
    } else {
        error = td_sqlite__error(conn, rc, "reading document");
    }
    sqlite3_reset(stmt);
    return error;
}

static int sq_doc_list(td_conn *conn, const char *collection, const char *after_key, size_t limit,
                       td_doc_fn fn, void *payload)
{
    sqlite3_stmt *stmt = NULL;
    int rc, error = statement(conn, STMT_DOC_LIST, &stmt);
    if (error < 0)
        return error;
    bind_doc_key(stmt, collection, after_key ? after_key : "");
    sqlite3_bind_int64(stmt, 3, limit_value(limit));
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        size_t n;
        const char *body = column_text(stmt, 1, &n);
        if ((error = fn(column_text(stmt, 0, NULL), body, n, payload)) != 0)
            break;
    }
    if (error == 0 && rc != SQLITE_DONE)
        error = td_sqlite__error(conn, rc, "listing documents");
    sqlite3_reset(stmt);
    return error > 0 ? 0 : error;
}

static int sq_doc_collections(td_conn *conn, td_collection_fn fn, void *payload)
{
    sqlite3_stmt *stmt = NULL;
    int rc, error = statement(conn, STMT_DOC_COLLECTIONS, &stmt);
    if (error < 0)
        return error;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        if ((error = fn(column_text(stmt, 0, NULL), payload)) != 0)
            break;
    if (error == 0 && rc != SQLITE_DONE)
        error = td_sqlite__error(conn, rc, "listing collections");
    sqlite3_reset(stmt);
    return error > 0 ? 0 : error;
}

/* ---- operations ------------------------------------------------------------ */

static int64_t file_size(const char *path, const char *suffix)
{
    char name[4096];
    struct stat st;
    snprintf(name, sizeof name, "%s%s", path, suffix);
    return stat(name, &st) == 0 ? (int64_t)st.st_size : 0;
}

static int sq_stats(td_conn *conn, td_store_stats *out)
{
    int64_t schema = 0;
    const char *file = sqlite3_db_filename(conn->db, "main");
    memset(out, 0, sizeof *out);
    int error = td_sqlite__int(conn, "SELECT count(*) FROM events", &out->events);
    if (error == 0)
        error = td_sqlite__int(conn, "SELECT count(*) FROM (SELECT DISTINCT stream FROM events)",
                               &out->streams);
    if (error == 0)
        error = td_sqlite__int(conn, "SELECT count(*) FROM (SELECT DISTINCT type FROM events)",
                               &out->types);
    if (error == 0)
        error = td_sqlite__int(conn, "SELECT count(*) FROM documents", &out->documents);
    if (error == 0)
        error = sq_head(conn, &out->head);
    if (error == 0)
        error = td_sqlite__int(conn, "PRAGMA user_version", &schema);
    out->schema_version = (int)schema;
    if (file && file[0])
        out->bytes = file_size(file, "") + file_size(file, "-wal");
    return error;
}

static int sq_type_counts(td_conn *conn, td_type_count_fn fn, void *payload)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(
        conn->db, "SELECT type, count(*) FROM events GROUP BY type ORDER BY type", -1, &stmt, NULL);
    int error = 0;
    if (rc != SQLITE_OK)
        return td_sqlite__error(conn, rc, "counting types");
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        if ((error = fn((const char *)sqlite3_column_text(stmt, 0), sqlite3_column_int64(stmt, 1),
                        payload)) != 0)
            break;
    if (error == 0 && rc != SQLITE_DONE)
        error = td_sqlite__error(conn, rc, "counting types");
    sqlite3_finalize(stmt);
    return error > 0 ? 0 : error;
}

/* ---- the bounded check at open ---------------------------------------------- */

/* The schema's objects, by type and name: a damaged schema page loses them
 * (or makes SQLite refuse the schema: SQLITE_CORRUPT). */
static const char *const schema_objects[][2] = {
    {"table", "events"},
    {"table", "documents"},
    {"table", "schema_migrations"},
    {"index", "events_by_type"},
    {"index", "events_by_category"},
    {"index", "events_by_time"},
    {"trigger", "events_no_update"},
    {"trigger", "events_no_delete"},
};

static int check_schema(td_conn *conn)
{
    for (size_t i = 0; i < sizeof schema_objects / sizeof schema_objects[0]; i++) {
        char sql[160];
        int64_t found = 0;
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM sqlite_master WHERE type = '%s' AND name = '%s'",
                 schema_objects[i][0], schema_objects[i][1]);
        int error = td_sqlite__int(conn, sql, &found);
        if (error < 0)
            return error;
        if (found != 1)
            return td_error__set(TD_ECORRUPT, "the schema has no %s %s", schema_objects[i][0],
                                 schema_objects[i][1]);
    }
    return 0;
}

/* The database's size as its header and log say, against the files: a file
 * cut short (a copy that stopped, a lost tail) has pages that read as
 * zeros, which SQLite notices only when it meets them. */
static int check_size(td_conn *conn)
{
    int64_t pages = 0, page_size = 0, free_pages = 0;
    int error = td_sqlite__int(conn, "PRAGMA page_count", &pages);
    if (error == 0)
        error = td_sqlite__int(conn, "PRAGMA page_size", &page_size);
    if (error == 0)
        error = td_sqlite__int(conn, "PRAGMA freelist_count", &free_pages);
    if (error < 0)
        return error;
    const char *file = sqlite3_db_filename(conn->db, "main");
    int64_t on_disk = file && file[0] ? file_size(file, "") + file_size(file, "-wal") : INT64_MAX;
    if (pages * page_size > on_disk)
        return td_error__set(TD_ECORRUPT,
                             "the file is cut short: %lld pages of %lld bytes, but %lld bytes "
                             "with its log",
                             (long long)pages, (long long)page_size, (long long)on_disk);
    if (free_pages > pages)
        return td_error__set(TD_ECORRUPT, "the free list counts %lld pages of %lld",
                             (long long)free_pages, (long long)pages);
    return 0;
}

/* One lookup that must find the event at `position`; binds 1..n are set by
 * the caller. Names the index when it does not. */
static int must_find(td_conn *conn, sqlite3_stmt *stmt, int64_t position, const char *index)
{
    int rc = sqlite3_step(stmt);
    int64_t found = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
    sqlite3_reset(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return td_sqlite__error(conn, rc, index);
    if (found != position)
        return td_error__set(TD_ECORRUPT, "the index %s does not hold event %lld", index,
                             (long long)position);
    return 0;
}

#define TAIL_EVENTS 64

static const char *const tail_lookups[][2] = {
    {"the unique index on id", "SELECT position FROM events WHERE id = ?2"},
    {"the unique index on (stream, version)",
     "SELECT position FROM events WHERE stream = ?3 AND version = ?4"},
    {"events_by_type",
     "SELECT position FROM events INDEXED BY events_by_type WHERE type = ?5 AND position = ?1"},
    {"events_by_category", "SELECT position FROM events INDEXED BY events_by_category "
                           "WHERE category = ?6 AND position = ?1"},
    {"events_by_time", "SELECT position FROM events INDEXED BY events_by_time "
                       "WHERE occurred_at = ?7 AND position = ?1"},
};

#define TAIL_LOOKUPS (sizeof tail_lookups / sizeof tail_lookups[0])

/* The last TAIL_EVENTS events, each found again through every index: the
 * rightmost pages of the table and of each index, where appends land. */
static int check_tail(td_conn *conn)
{
    sqlite3_stmt *rows = NULL, *find[TAIL_LOOKUPS] = {NULL};
    int rc = sqlite3_prepare_v2(conn->db,
                                "SELECT position, id, stream, version, type, category, occurred_at "
                                "FROM events ORDER BY position DESC LIMIT " TD_STR(TAIL_EVENTS),
                                -1, &rows, NULL);
    int error = rc == SQLITE_OK ? 0 : td_sqlite__error(conn, rc, "reading the last events");
    for (size_t i = 0; error == 0 && i < TAIL_LOOKUPS; i++)
        if ((rc = sqlite3_prepare_v2(conn->db, tail_lookups[i][1], -1, &find[i], NULL)) !=
            SQLITE_OK)
            error = td_sqlite__error(conn, rc, tail_lookups[i][0]);
    while (error == 0 && (rc = sqlite3_step(rows)) == SQLITE_ROW) {
        int64_t position = sqlite3_column_int64(rows, 0);
        for (size_t i = 0; error == 0 && i < TAIL_LOOKUPS; i++) {
            for (int col = 0; col < 7; col++)
                sqlite3_bind_value(find[i], col + 1, sqlite3_column_value(rows, col));
            error = must_find(conn, find[i], position, tail_lookups[i][0]);
        }
    }
    if (error == 0 && rc != SQLITE_DONE)
        error = td_sqlite__error(conn, rc, "reading the last events");
    for (size_t i = 0; i < TAIL_LOOKUPS; i++)
        sqlite3_finalize(find[i]);
    sqlite3_finalize(rows);
    return error;
}

/* The first and the last document: the leftmost and rightmost pages of
 * their tree. */
static int check_documents(td_conn *conn)
{
    static const char *const edges[] = {
        "SELECT coalesce((SELECT length(body) FROM documents ORDER BY collection, key LIMIT 1), "
        "0)",
        "SELECT coalesce((SELECT length(body) FROM documents ORDER BY collection DESC, key DESC "
        "LIMIT 1), 0)",
    };
    int64_t n = 0;
    int error = 0;
    for (size_t i = 0; error == 0 && i < 2; i++)
        error = td_sqlite__int(conn, edges[i], &n);
    return error;
}

/* Bounded: a fixed number of lookups whatever the store's size, each a
 * walk from a root to a leaf (see docs/internals/store.md for its cost). */
static int sq_check_quick(td_conn *conn)
{
    int error = check_schema(conn);
    if (error == 0)
        error = check_size(conn);
    if (error == 0)
        error = check_tail(conn);
    if (error == 0)
        error = check_documents(conn);
    conn->fault = 0; /* what it met is in the message; the open fails */
    return error;
}

static int sq_take_fault(td_conn *conn, char *why, size_t why_size)
{
    int fault = conn->fault;
    if (fault == 0) /* the common case, once per unit and per read: nothing to copy */
        return 0;
    if (why && why_size > 0)
        snprintf(why, why_size, "%s", conn->fault_message);
    conn->fault = 0;
    return fault;
}

static int sq_check(td_conn *conn)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(conn->db, "PRAGMA integrity_check(1)", -1, &stmt, NULL);
    int error = 0;
    if (rc != SQLITE_OK)
        return td_sqlite__error(conn, rc, "integrity check");
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW)
        error = td_sqlite__error(conn, rc, "integrity check");
    else if (strcmp((const char *)sqlite3_column_text(stmt, 0), "ok") != 0)
        error = td_error__set(TD_ECORRUPT, "integrity check: %s", sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return error;
}

/* sqlite:PATH, sqlite://PATH, or a plain PATH without a scheme (a colon
 * after letters: another backend's scheme, or an unknown one). */
static int sq_claim(const char *url, const char **target)
{
    size_t scheme =
        strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    bool has_scheme = scheme > 0 && url[scheme] == ':' &&
                      ((url[0] >= 'a' && url[0] <= 'z') || (url[0] >= 'A' && url[0] <= 'Z'));
    if (has_scheme && !(scheme == 6 && strncmp(url, "sqlite", 6) == 0))
        return 0;
    *target = url;
    if (has_scheme) {
        *target = url + 7;
        if (strncmp(*target, "//", 2) == 0)
            *target += 2;
    }
    if ((*target)[0] == '\0')
        return td_error__set(TD_EINVAL, "store URL '%s' names no file", url);
    return 1;
}

const td_backend td_sqlite_backend = {
    .version = TD_BACKEND_VERSION,
    .name = "sqlite",
    .url_help = "sqlite:PATH (or a plain PATH without a colon)",
    .claim = sq_claim,
    .open = td_sqlite__open,
    .close = td_sqlite__close,
    .begin = sq_begin,
    .commit = sq_commit,
    .sync_log = sq_sync_log,
    .rollback = sq_rollback,
    .in_transaction = sq_in_transaction,
    .savepoint = sq_savepoint,
    .release = sq_release,
    .rollback_to = sq_rollback_to,
    .insert = sq_insert,
    .doc_put = sq_doc_put,
    .doc_delete = sq_doc_delete,
    .head = sq_head,
    .hash_before = sq_hash_before,
    .stream_version = sq_stream_version,
    .read = sq_read,
    .read_fields = sq_read_fields,
    .read_stream = sq_read_stream,
    .read_event = sq_read_event,
    .doc_get = sq_doc_get,
    .doc_list = sq_doc_list,
    .doc_collections = sq_doc_collections,
    .stats = sq_stats,
    .type_counts = sq_type_counts,
    .check = sq_check,
    .take_fault = sq_take_fault,
    .check_quick = sq_check_quick,
    .lock = td_sqlite__lock,
    .unlock = td_sqlite__unlock,
    .destroy = td_sqlite__destroy,
};
