/*
 * sqlite_schema.c: opening SQLite files, recognising tidings stores, the
 * numbered schema migrations, and deleting a store's files.
 *
 * A tidings store is an SQLite file whose application_id is 'TDNG'; its
 * user_version is the number of the last migration applied, and the table
 * schema_migrations records when each was applied. Opening checks before it
 * writes anything:
 *
 *   file missing ──create?──no──▶ TD_ENOTFOUND
 *        └──yes──▶ made whole under a name of its own, then linked in place
 *   an empty (0-byte) file ──▶ TD_ECORRUPT: not a store
 *   not SQLite, or SQLite of another application ──▶ TD_ECORRUPT
 *   cannot be read (the disk failed, or is full) ──▶ TD_EIO, TD_ENOSPC
 *   user_version newer than this build ──▶ TD_EVERSION
 *   older ──writer──▶ migrations applied in one transaction
 *
 * Why creation goes through a second name: SQLite creates a file empty and
 * fills it at its first commit, so an empty file used to mean "a store
 * being made", and was taken for a new store. But an empty file is also
 * what a failed copy, a full disk or a slip of the operator leaves, and
 * starting a blank store there hides the loss. Made whole under
 * NAME.creating-PID and linked to NAME (link fails if NAME exists: another
 * process made it first, and that one is used), a store never exists
 * empty, so an empty file is refused. Where the file system has no hard
 * links, SQLite creates the file in place as before.
 *
 * Migrations are append-only: never edit one that has shipped; add the next.
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

typedef struct migration {
    const char *name;
    const char *sql;
} migration;

static const migration migrations[] = {
    {"events and documents",
     "CREATE TABLE schema_migrations ("
     "  version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);"
     "CREATE TABLE events ("
     "  position INTEGER PRIMARY KEY,"
     "  id BLOB NOT NULL UNIQUE CHECK (length(id) = 16),"
     "  stream TEXT NOT NULL,"
     "  version INTEGER NOT NULL CHECK (version >= 1),"
     "  category TEXT GENERATED ALWAYS AS (substr(stream, 1, instr(stream, '-') - 1)) VIRTUAL,"
     "  type TEXT NOT NULL,"
     "  schema_version INTEGER NOT NULL,"
     "  kind INTEGER NOT NULL,"
     "  source TEXT NOT NULL,"
     "  occurred_at INTEGER NOT NULL,"
     "  correlation_id TEXT,"
     "  causation_id TEXT,"
     "  traceparent TEXT NOT NULL,"
     "  metadata TEXT NOT NULL,"
     "  data TEXT NOT NULL,"
     "  hash BLOB NOT NULL CHECK (length(hash) = 32),"
     "  UNIQUE (stream, version));"
     "CREATE INDEX events_by_type ON events (type, position);"
     "CREATE INDEX events_by_category ON events (category, position);"
     "CREATE INDEX events_by_time ON events (occurred_at);"
     "CREATE TRIGGER events_no_update BEFORE UPDATE ON events"
     "  BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"
     "CREATE TRIGGER events_no_delete BEFORE DELETE ON events"
     "  BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"
     "CREATE TABLE documents ("
     "  collection TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,"
     "  updated_at INTEGER NOT NULL, PRIMARY KEY (collection, key)) WITHOUT ROWID;"},
};

#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

int td_sqlite__schema_latest(void)
{
    return MIGRATION_COUNT;
}

/* A store just made (still empty) is made private to its owner before a
 * byte is written; its -wal and -shm files take the same mode when SQLite
 * makes them. Stores that exist keep the mode their operator gave them. */
static void make_private(const char *file)
{
    struct stat st;
    if (file && file[0] && stat(file, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
        (void)chmod(file, 0600); /* best effort: a refusal leaves SQLite's own mode */
}

int td_sqlite__file_path(const char *target, char *out, size_t size)
{
    const char *path = target;
    size_t len;
    if (strncmp(target, "file:", 5) == 0) {
        path = target + 5;
        if (strncmp(path, "///", 3) == 0)
            path += 2;
        else if (strncmp(path, "//localhost/", 12) == 0)
            path += 11;
        len = strcspn(path, "?#");
    } else {
        len = strlen(path);
    }
    if (len == 0 || len >= size || strcmp(target, ":memory:") == 0 ||
        strstr(target, "mode=memory") != NULL)
        return TD_ENOTFOUND;
    memcpy(out, path, len);
    out[len] = '\0';
    return 0;
}

static int open_db(td_conn *conn, const char *target, const td_store_options *opts, bool create)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
    if (create)
        flags |= SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(target, &conn->db, flags, NULL);
    if (rc == SQLITE_CANTOPEN && !create)
        return td_error__set(TD_ENOTFOUND, "no store at '%s' (create it with 'tidings init')",
                             target);
    if (rc != SQLITE_OK)
        return td_sqlite__error(conn, rc, "cannot open store");
    if (create)
        make_private(sqlite3_db_filename(conn->db, "main"));
    sqlite3_extended_result_codes(conn->db, 1);
    sqlite3_busy_timeout(conn->db, opts->busy_timeout_ms);
    return 0;
}

/* Reads the identity pragmas; TD_ECORRUPT / TD_EVERSION when not ours. The
 * first read also makes SQLite check the file's header (its magic, page
 * size and format bytes): SQLITE_NOTADB when they are wrong. A file that
 * cannot be read at all (the disk failed, or is too full for SQLite to make
 * its -shm) says so, rather than blaming the file. */
static int identify(td_conn *conn, int64_t *version, int64_t *tables)
{
    int64_t app_id = 0;
    int error = td_sqlite__int(conn, "PRAGMA application_id", &app_id);
    if (error == TD_ECORRUPT && sqlite3_errcode(conn->db) == SQLITE_NOTADB)
        return td_error__set(TD_ECORRUPT, "'%s' is not a tidings store (not an SQLite database)",
                             conn->path);
    if (error == 0)
        error = td_sqlite__int(conn, "PRAGMA user_version", version);
    if (error == 0)
        error = td_sqlite__int(conn, "SELECT count(*) FROM sqlite_master", tables);
    if (error < 0) {
        char why[400];
        td_error__copy(why, sizeof why);
        return td_error__set(error, "%s '%s': %s",
                             error == TD_ECORRUPT ? "damaged store" : "cannot read store",
                             conn->path, why);
    }
    if (app_id != TD_SQLITE_APPLICATION_ID && (app_id != 0 || *tables > 0))
        return td_error__set(TD_ECORRUPT, "'%s' is an SQLite database but not a tidings store",
                             conn->path);
    if (*version > MIGRATION_COUNT)
        return td_error__set(TD_EVERSION,
                             "store '%s' has schema version %lld; this tidings reads up to %d",
                             conn->path, (long long)*version, MIGRATION_COUNT);
    return 0;
}

static int apply(td_conn *conn, int version)
{
    char record[256];
    const migration *m = &migrations[version - 1];
    int error = td_sqlite__exec(conn, m->sql, m->name);
    if (error < 0)
        return error;
    snprintf(record, sizeof record,
             "INSERT INTO schema_migrations VALUES (%d, '%s', %lld);"
             "PRAGMA user_version = %d;",
             version, m->name, (long long)td_time_now(), version);
    return td_sqlite__exec(conn, record, "recording migration");
}

static int migrate(td_conn *conn)
{
    int64_t version = 0, tables = 0;
    int error = td_sqlite__exec(conn, "BEGIN IMMEDIATE", "locking store for migration");
    if (error < 0)
        return error;
    /* Another process may have migrated while we waited for the lock. */
    if ((error = identify(conn, &version, &tables)) < 0)
        goto done;
    if (version == 0)
        error = td_sqlite__exec(conn, "PRAGMA application_id = 1413762631", "marking store");
    for (int v = (int)version + 1; error == 0 && v <= MIGRATION_COUNT; v++)
        error = apply(conn, v);
done:
    if (error == 0)
        return td_sqlite__exec(conn, "COMMIT", "committing migration");
    sqlite3_exec(conn->db, "ROLLBACK", NULL, NULL, NULL);
    return error;
}

/* Readers do not map the file: while the log grows, SQLite remaps it at
 * almost every read transaction, and each munmap stops every core for a TLB
 * shootdown, the writer's included (5 % of the shop's CPU under load). Reads
 * through the page cache are about 10 % slower in a bulk scan. */
static int configure(td_conn *conn, bool writer, bool pipelined)
{
    if (!writer)
        return td_sqlite__exec(conn,
                               "PRAGMA cache_size = -16384; PRAGMA mmap_size = 0;"
                               "PRAGMA query_only = 1",
                               "configuring reader");
    /* Pipelined: NORMAL writes the WAL at commit without an fsync (and still
     * syncs around checkpoints, so the file stays consistent); the store's
     * sync thread then makes each commit durable with sync_log.
     * It also checkpoints every 4,000 pages rather than SQLite's 1,000: a
     * page rewritten many times between two checkpoints (an index's last
     * leaf, a hot document) is copied to the database file once per
     * checkpoint, and the checkpoint's own fsyncs come a quarter as often;
     * the shop's COMMIT time fell by a fifth. 4,000 frames still fit in the
     * first of the WAL index's hash tables (4,096 frames each), so a read
     * finds a page as fast as before. Each commit synced (FULL) keeps 1,000:
     * there the writer waits for every fsync, and while the log grows into
     * new space each fsync also writes the file's new size, which made
     * one-at-a-time appends a fifth slower. */
    return td_sqlite__exec(conn,
                           pipelined
                               ? "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                                 "PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4000"
                               : "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                                 "PRAGMA cache_size = -16384",
                           "configuring writer");
}

/* Every unit of work runs under a savepoint, and SQLite keeps the savepoint's
 * journal (each page's first version) in memory only up to 64 KiB; past that
 * it creates, writes and deletes a temporary file, and a shop order's units
 * touch more pages than that. The store used to keep 4 MiB in memory
 * (SQLITE_CONFIG_STMTJRNL_SPILL), which made the single-process shop about
 * a quarter faster, but SQLite 3.40 (Debian 12) then fails large units
 * whose nested units roll back: SQLITE_FULL on a disk with room to spare,
 * SQLite having asked for a page past the largest possible. A broker
 * consumer's batch with messages stored already met it under load
 * (tests/unit/store/test_savepoint_rollbacks.c fails with it); 128 KiB and
 * more failed alike in a program of SQLite calls alone. So SQLite's own
 * setting stays, the one its own tests run with, and the store configures
 * nothing process-wide. */

static void free_conn(td_conn *conn);

/* Syncs the folder holding path, so that a name made or removed in it
 * survives a crash. */
static int sync_folder(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int synced = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    return synced ? 0 : td_error__set(TD_EIO, "cannot sync the folder of %s", path);
}

/* Makes a new store at path: whole (WAL mode, every migration) under a
 * name of its own first, then linked in place; if another process made
 * one meanwhile, theirs stays. 1: the file system has no hard links (the
 * caller lets SQLite create the file in place). */
static int create_whole(const char *path, const td_store_options *opts)
{
    char temp[4200];
    if (snprintf(temp, sizeof temp, "%s.creating-%ld", path, (long)getpid()) >= (int)sizeof temp)
        return td_error__set(TD_EINVAL, "store path too long");
    (void)td_sqlite__destroy(temp); /* left by a crash of a process with our pid */
    td_conn *conn = td_calloc(1, sizeof *conn);
    if (conn == NULL)
        return td_error__oom();
    conn->writer = true;
    conn->wal_fd = -1;
    conn->path = td_strdup(temp);
    int error = conn->path ? open_db(conn, temp, opts, true) : td_error__oom();
    if (error == 0)
        error = td_sqlite__exec(conn, "PRAGMA journal_mode = WAL", "making a new store");
    if (error == 0)
        error = migrate(conn);
    free_conn(conn); /* the last connection: the log is checkpointed into the file */
    int linked = error == 0 ? link(temp, path) : 0;
    int link_errno = errno;
    if (error == 0 && linked != 0 && link_errno != EEXIST)
        error = link_errno == EPERM || link_errno == EOPNOTSUPP || link_errno == ENOSYS
                    ? 1
                    : td_error__set(link_errno == ENOSPC ? TD_ENOSPC : TD_EIO,
                                    "cannot make the store %s: %s", path, strerror(link_errno));
    (void)td_sqlite__destroy(temp);
    return error == 0 ? sync_folder(path) : error;
}

/* Before SQLite opens the file: refuses an empty one, and makes a missing
 * one whole (writer with create). */
static int prepare_file(const char *target, const td_store_options *opts, bool writer,
                        bool *create_in_place)
{
    char path[4096];
    struct stat st;
    *create_in_place = false;
    if (td_sqlite__file_path(target, path, sizeof path) < 0)
        return 0; /* in memory, or a name SQLite alone understands */
    if (stat(path, &st) == 0)
        return S_ISREG(st.st_mode) && st.st_size == 0
                   ? td_error__set(TD_ECORRUPT,
                                   "'%s' is an empty file, not a tidings store (a new store is "
                                   "made only where there is no file)",
                                   path)
                   : 0;
    if (errno != ENOENT || !writer || !opts->create)
        return 0; /* SQLite says what is wrong */
    int error = create_whole(path, opts);
    *create_in_place = error == 1;
    return error == 1 ? 0 : error;
}

int td_sqlite__open(td_conn **out, const char *target, const td_store_options *opts, bool writer)
{
    int64_t version = 0, tables = 0;
    bool create_in_place = false;
    int error = prepare_file(target, opts, writer, &create_in_place);
    if (error < 0)
        return error;
    td_conn *conn = td_calloc(1, sizeof *conn);
    if (conn == NULL)
        return td_error__oom();
    conn->writer = writer;
    conn->wal_fd = -1;
    conn->path = td_strdup(target);
    error = conn->path ? 0 : td_error__oom();
    if (error == 0)
        error = open_db(conn, target, opts, writer && (create_in_place || opts->create));
    if (error == 0)
        error = identify(conn, &version, &tables);
    if (error == 0 && !writer && version < MIGRATION_COUNT)
        error = version == 0 ? td_error__set(TD_ENOTFOUND,
                                             "'%s' is not an initialised tidings store", target)
                             : td_error__set(TD_EVERSION,
                                             "store '%s' has the older schema %lld; open it for "
                                             "writing once to upgrade it",
                                             target, (long long)version);
    if (error == 0)
        error = configure(conn, writer, opts->pipelined_commits);
    if (error == 0 && writer && version < MIGRATION_COUNT)
        error = migrate(conn);
    if (error < 0) {
        td_sqlite__close(conn);
        return error;
    }
    *out = conn;
    return 0;
}

void td_sqlite__close(td_conn *conn)
{
    free_conn(conn);
}

static void free_conn(td_conn *conn)
{
    if (conn == NULL)
        return;
    for (int i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(conn->stmts[i]);
    for (int i = 0; i < READ_VARIANTS; i++)
        sqlite3_finalize(conn->reads[i]);
    sqlite3_close(conn->db);
    if (conn->wal_fd >= 0)
        close(conn->wal_fd);
    td_free(conn->path);
    td_free(conn);
}

int td_sqlite__destroy(const char *target)
{
    char path[4096 + 16];
    const char *suffixes[] = {"-wal", "-shm", ""}; /* the file itself last */
    for (size_t i = 0; i < 3; i++) {
        if (snprintf(path, sizeof path, "%s%s", target, suffixes[i]) >= (int)sizeof path)
            return td_error__set(TD_EINVAL, "store path too long");
        if (unlink(path) != 0 && errno != ENOENT)
            return td_error__set(TD_EIO, "cannot delete %s: %s", path, strerror(errno));
    }
    return sync_folder(target);
}
