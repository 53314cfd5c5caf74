/*
 * pg_schema.c: opening PostgreSQL stores: recognising a tidings store in a
 * schema, the numbered migrations, the checks, and deleting a store.
 *
 * A store is the tables of one schema (current_schema(): the first of the
 * connection's search_path). The table tidings_store marks it and records
 * the last migration applied; schema_migrations records when each was.
 * Opening checks before it writes anything:
 *
 *   no tidings_store, no table of ours ──create?──no──▶ TD_ENOTFOUND
 *        └──yes──▶ every migration, in one transaction
 *   events, documents or schema_migrations without tidings_store
 *        ──▶ TD_ECORRUPT: not a tidings store (another application's)
 *   schema_version newer than this build ──▶ TD_EVERSION
 *   older ──writer──▶ the missing migrations, in one transaction
 *
 * Migrations run under a transaction-scoped advisory lock named after the
 * schema, so two processes opening a new store at once migrate it once (the
 * second finds it done). A schema the search_path names but that does not
 * exist is created with the store (and dropped with it).
 *
 * Migrations are append-only: never edit one that has shipped; add the next.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "store/pg_int.h"

typedef struct migration {
    const char *name;
    const char *sql;
} migration;

static const migration migrations[] = {
    {"events and documents",
     "CREATE TABLE schema_migrations ("
     "  version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL);"
     "CREATE TABLE events ("
     "  position bigint PRIMARY KEY,"
     "  id uuid NOT NULL UNIQUE,"
     "  stream text COLLATE \"C\" NOT NULL,"
     "  version bigint NOT NULL CHECK (version >= 1),"
     "  category text COLLATE \"C\" GENERATED ALWAYS AS (split_part(stream, '-', 1)) STORED,"
     "  type text COLLATE \"C\" NOT NULL,"
     "  schema_version integer NOT NULL,"
     "  kind integer NOT NULL,"
     "  source text NOT NULL,"
     "  occurred_at bigint NOT NULL,"
     "  correlation_id text,"
     "  causation_id text,"
     "  traceparent text NOT NULL,"
     "  metadata text NOT NULL,"
     "  data text NOT NULL,"
     "  hash bytea NOT NULL CHECK (length(hash) = 32),"
     "  UNIQUE (stream, version));"
     "CREATE INDEX events_by_type ON events (type, position);"
     "CREATE INDEX events_by_category ON events (category, position);"
     "CREATE INDEX events_by_time ON events (occurred_at);"
     "CREATE FUNCTION tidings_append_only() RETURNS trigger LANGUAGE plpgsql AS "
     "  $$BEGIN RAISE EXCEPTION 'events are append-only'; END$$;"
     "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events"
     "  FOR EACH STATEMENT EXECUTE FUNCTION tidings_append_only();"
     "CREATE TABLE documents ("
     "  collection text COLLATE \"C\" NOT NULL, key text COLLATE \"C\" NOT NULL,"
     "  body text NOT NULL, updated_at bigint NOT NULL, PRIMARY KEY (collection, key));"},
};

#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

int td_pg__schema_latest(void)
{
    return MIGRATION_COUNT;
}

/* What a connection finds in its schema. */
typedef struct found {
    char schema[128]; /* current_schema(), or the search_path's first when missing */
    bool schema_exists;
    int ours;            /* of events, documents, schema_migrations */
    bool marked;         /* tidings_store */
    int version;         /* the last migration applied (0: none) */
    bool schema_created; /* made with the store */
} found;

/* The first name of a search_path setting ("$user" is the session user). */
static void first_of_path(char *out, size_t size, const char *path, const char *user)
{
    while (*path == ' ')
        path++;
    size_t n = strcspn(path, ",");
    while (n > 0 && path[n - 1] == ' ')
        n--;
    if (n >= 2 && path[0] == '"' && path[n - 1] == '"') {
        path++;
        n -= 2;
    }
    if (n == 5 && strncmp(path, "$user", 5) == 0)
        snprintf(out, size, "%s", user);
    else
        snprintf(out, size, "%.*s", (int)n, path);
}

static int look(td_conn *conn, found *f)
{
    PGresult *res = NULL;
    memset(f, 0, sizeof *f);
    int error = td_pg__exec(
        conn,
        "SELECT current_schema(), current_setting('search_path'), session_user, "
        "(SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename IN "
        "('events', 'documents', 'schema_migrations')), "
        "(SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND "
        "tablename = 'tidings_store')",
        "reading the schema", td_pg__deadline_ms(conn), &res);
    if (error < 0)
        return error;
    f->schema_exists = !PQgetisnull(res, 0, 0);
    if (f->schema_exists)
        snprintf(f->schema, sizeof f->schema, "%s", PQgetvalue(res, 0, 0));
    else
        first_of_path(f->schema, sizeof f->schema, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
    f->ours = atoi(PQgetvalue(res, 0, 3));
    f->marked = atoi(PQgetvalue(res, 0, 4)) > 0;
    PQclear(res);
    if (!f->marked)
        return 0;
    error =
        td_pg__exec(conn, "SELECT application, schema_version, schema_created FROM tidings_store",
                    "reading the store's version", td_pg__deadline_ms(conn), &res);
    if (error < 0)
        return error;
    if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "tidings") != 0)
        error =
            td_error__set(TD_ECORRUPT, "schema '%s' has a damaged tidings_store table", f->schema);
    else {
        f->version = atoi(PQgetvalue(res, 0, 1));
        f->schema_created = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    }
    PQclear(res);
    return error;
}

/* TD_ECORRUPT / TD_EVERSION when the schema holds something else. */
static int judge(const found *f)
{
    if (!f->marked && f->ours > 0)
        return td_error__set(TD_ECORRUPT,
                             "schema '%s' holds tables named as a tidings store's but is not one "
                             "(no tidings_store table)",
                             f->schema);
    if (f->version > MIGRATION_COUNT)
        return td_error__set(TD_EVERSION,
                             "the store in schema '%s' has schema version %d; this tidings reads "
                             "up to %d",
                             f->schema, f->version, MIGRATION_COUNT);
    return 0;
}

static int quoted(td_conn *conn, const char *name, char *out, size_t size)
{
    char *q = PQescapeIdentifier(conn->pg, name, strlen(name));
    if (q == NULL)
        return td_error__set(TD_EINVAL, "bad schema name '%s'", name);
    snprintf(out, size, "%s", q);
    PQfreemem(q);
    return 0;
}

static int apply(td_conn *conn, int version)
{
    char record[300];
    const migration *m = &migrations[version - 1];
    int error = td_pg__exec(conn, m->sql, m->name, 0, NULL);
    if (error < 0)
        return error;
    snprintf(record, sizeof record,
             "INSERT INTO schema_migrations VALUES (%d, '%s', %lld);"
             "UPDATE tidings_store SET schema_version = %d",
             version, m->name, (long long)td_time_now(), version);
    return td_pg__exec(conn, record, "recording migration", 0, NULL);
}

/* Creates or upgrades the store, once, whoever else opens it meanwhile. */
static int migrate(td_conn *conn)
{
    char sql[1600], name[300];
    found f;
    int error = look(conn, &f);
    if (error == 0)
        error = quoted(conn, f.schema, name, sizeof name);
    if (error < 0)
        return error;
    /* hashtext takes text: the name as a literal, not an identifier */
    char *literal = PQescapeLiteral(conn->pg, f.schema, strlen(f.schema));
    if (literal == NULL)
        return td_error__oom();
    snprintf(sql, sizeof sql, "BEGIN; SELECT pg_advisory_xact_lock(%d, hashtext(%s))",
             TD_PG_LOCK_CLASS + 1, literal);
    PQfreemem(literal);
    conn->in_txn = true;
    if ((error = td_pg__exec(conn, sql, "locking the store for migration", 0, NULL)) < 0)
        goto done;
    /* Another process may have made it while we waited for the lock. */
    if ((error = look(conn, &f)) < 0 || (error = judge(&f)) < 0)
        goto done;
    if (!f.marked) {
        snprintf(sql, sizeof sql,
                 "CREATE SCHEMA IF NOT EXISTS %s; SET LOCAL search_path TO %s;"
                 "CREATE TABLE tidings_store (application text NOT NULL CHECK (application = "
                 "'tidings'), schema_version integer NOT NULL, schema_created boolean NOT NULL, "
                 "only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row));"
                 "INSERT INTO tidings_store VALUES ('tidings', 0, %s)",
                 name, name, f.schema_exists ? "false" : "true");
        if ((error = td_pg__exec(conn, sql, "making the store", 0, NULL)) < 0)
            goto done;
    } else {
        snprintf(sql, sizeof sql, "SET LOCAL search_path TO %s", name);
        if ((error = td_pg__exec(conn, sql, "migrating the store", 0, NULL)) < 0)
            goto done;
    }
    for (int v = f.version + 1; error == 0 && v <= MIGRATION_COUNT; v++)
        error = apply(conn, v);
done:
    if (error == 0)
        error = td_pg__exec(conn, "COMMIT", "committing migration", 0, NULL);
    else if (conn->pg)
        (void)td_pg__exec(conn, "ROLLBACK", "rolling back migration", 0, NULL);
    conn->in_txn = false;
    return error;
}

int td_pg__identify_store(td_conn *conn)
{
    PGresult *res = NULL;
    int error = td_pg__exec(conn,
                            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = "
                            "c.relnamespace WHERE n.nspname = current_schema() AND c.relname = "
                            "'events'",
                            "finding the store's tables", td_pg__deadline_ms(conn), &res);
    if (error == 0 && PQntuples(res) != 1)
        error = td_error__set(TD_ECORRUPT, "the store has no events table");
    if (error == 0) {
        conn->store_oid = (unsigned int)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(conn->channel, sizeof conn->channel, "tidings_%u", conn->store_oid);
    }
    PQclear(res);
    return error;
}

static td_conn *new_conn(const char *target, const td_store_options *opts, bool writer)
{
    td_conn *conn = td_calloc(1, sizeof *conn);
    if (conn == NULL)
        return NULL;
    conn->target = td_strdup(target);
    if (conn->target == NULL) {
        td_free(conn);
        return NULL;
    }
    conn->writer = writer;
    conn->versions_head = conn->begin_head = -1;
    conn->busy_timeout_ms = opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000;
    return conn;
}

int td_pg__open(td_conn **out, const char *target, const td_store_options *opts, bool writer)
{
    found f;
    td_conn *conn = new_conn(target, opts, writer);
    if (conn == NULL)
        return td_error__oom();
    int error = td_pg__connect(conn);
    if (error == 0 && (error = look(conn, &f)) == 0)
        error = judge(&f);
    if (error == 0 && f.version < MIGRATION_COUNT) {
        if (!f.marked && (!writer || !opts->create))
            error = td_error__set(
                TD_ENOTFOUND, "no store in schema '%s' (create it with 'tidings init')", f.schema);
        else if (!writer)
            error = td_error__set(TD_EVERSION,
                                  "the store in schema '%s' has the older schema %d; open it for "
                                  "writing once to upgrade it",
                                  f.schema, f.version);
        else
            error = migrate(conn);
    }
    if (error == 0)
        error = td_pg__identify_store(conn);
    if (error < 0) {
        td_pg__close(conn);
        return error;
    }
    conn->fault = 0;
    *out = conn;
    return 0;
}

void td_pg__close(td_conn *conn)
{
    if (conn == NULL)
        return;
    td_pg__drop(conn);
    td_free(conn->queue);
    td_free(conn->versions);
    td_free(conn->target);
    td_free(conn);
}

int td_pg__destroy(const char *target)
{
    char sql[2400], name[300];
    found f;
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    td_conn *conn = new_conn(target, &opts, true);
    if (conn == NULL)
        return td_error__oom();
    int error = td_pg__connect(conn);
    if (error == 0)
        error = look(conn, &f);
    if (error == 0 && !f.marked)
        error = td_error__set(TD_ENOTFOUND, "no store in schema '%s'", f.schema);
    if (error == 0)
        error = quoted(conn, f.schema, name, sizeof name);
    if (error == 0) {
        int n = snprintf(sql, sizeof sql,
                         "BEGIN; DROP TABLE IF EXISTS %s.events, %s.documents, "
                         "%s.schema_migrations, %s.tidings_store;"
                         "DROP FUNCTION IF EXISTS %s.tidings_append_only();",
                         name, name, name, name, name);
        if (f.schema_created)
            snprintf(sql + n, sizeof sql - (size_t)n, "DROP SCHEMA %s; COMMIT", name);
        else
            snprintf(sql + n, sizeof sql - (size_t)n, "COMMIT");
        error = td_pg__exec(conn, sql, "deleting the store", 0, NULL);
    }
    td_pg__close(conn);
    return error;
}

/* ---- checks ---------------------------------------------------------------- */

static int count_of(td_conn *conn, const char *sql, const char *what, int64_t *out)
{
    PGresult *res = NULL;
    int error = td_pg__exec(conn, sql, what, 0, &res);
    *out = error == 0 && PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return error;
}

static const char *const schema_objects[][2] = {
    {"table", "events"},
    {"table", "documents"},
    {"table", "schema_migrations"},
    {"table", "tidings_store"},
    {"index", "events_by_type"},
    {"index", "events_by_category"},
    {"index", "events_by_time"},
    {"trigger", "events_append_only"},
};

static int check_schema(td_conn *conn)
{
    for (size_t i = 0; i < sizeof schema_objects / sizeof schema_objects[0]; i++) {
        char sql[300];
        int64_t n = 0;
        const char *kind = schema_objects[i][0], *name = schema_objects[i][1];
        if (strcmp(kind, "table") == 0)
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND "
                     "tablename = '%s'",
                     name);
        else if (strcmp(kind, "index") == 0)
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND "
                     "indexname = '%s'",
                     name);
        else
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN "
                     "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                     "AND t.tgname = '%s' AND t.tgenabled <> 'D'",
                     name);
        int error = count_of(conn, sql, "checking the schema", &n);
        if (error < 0)
            return error;
        if (n != 1)
            return td_error__set(TD_ECORRUPT, "the schema has no %s %s", kind, name);
    }
    return 0;
}

/* The last 64 events, each found again through the unique indexes on id
 * and (stream, version); the first and the last document. */
static int check_tail(td_conn *conn)
{
    int64_t bad = 0;
    int error = count_of(
        conn,
        "SELECT count(*) FROM (SELECT position, id, stream, version FROM events ORDER BY position "
        "DESC LIMIT 64) t WHERE (SELECT e.position FROM events e WHERE e.id = t.id) IS DISTINCT "
        "FROM t.position OR (SELECT e.position FROM events e WHERE e.stream = t.stream AND "
        "e.version = t.version) IS DISTINCT FROM t.position",
        "checking the last events", &bad);
    if (error == 0 && bad > 0)
        return td_error__set(TD_ECORRUPT,
                             "%lld of the last 64 events are not found again through the unique "
                             "indexes on id and (stream, version)",
                             (long long)bad);
    int64_t n = 0;
    if (error == 0)
        error = count_of(conn,
                         "SELECT coalesce((SELECT length(body) FROM documents ORDER BY collection, "
                         "key LIMIT 1), 0) + coalesce((SELECT length(body) FROM documents ORDER BY "
                         "collection DESC, key DESC LIMIT 1), 0)",
                         "checking the documents", &n);
    return error;
}

int td_pg__check_quick(td_conn *conn)
{
    int error = td_pg__ensure(conn, 0);
    if (error == 0)
        error = check_schema(conn);
    if (error == 0)
        error = check_tail(conn);
    conn->fault = 0; /* what it met is in the message; the open fails */
    return error;
}

/* In full: with the amcheck extension where the database has it (every
 * index page and every heap page checked), else by reading every row of
 * both tables. PostgreSQL's page checksums, when the cluster has them,
 * are verified by those reads. */
int td_pg__check(td_conn *conn)
{
    int64_t n = 0;
    int error = td_pg__ensure(conn, 0);
    if (error == 0)
        error = count_of(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'",
                         "looking for amcheck", &n);
    if (error == 0 && n > 0) {
        error = count_of(conn,
                         "SELECT count(bt_index_check(i.indexrelid, true)) FROM pg_index i JOIN "
                         "pg_class c ON c.oid = i.indrelid JOIN pg_namespace s ON s.oid = "
                         "c.relnamespace WHERE s.nspname = current_schema() AND c.relname IN "
                         "('events', 'documents')",
                         "checking the indexes", &n);
        if (error == 0)
            error = count_of(conn,
                             "SELECT (SELECT count(*) FROM verify_heapam('events')) + (SELECT "
                             "count(*) FROM verify_heapam('documents'))",
                             "checking the tables", &n);
        if (error == 0 && n > 0)
            return td_error__set(TD_ECORRUPT, "amcheck found %lld damaged rows", (long long)n);
        return error;
    }
    if (error == 0)
        error = count_of(conn,
                         "SELECT (SELECT count(length(data) + length(metadata)) FROM events) + "
                         "(SELECT count(length(body)) FROM documents)",
                         "reading every row", &n);
    return error;
}
