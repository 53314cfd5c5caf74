/*
 * sqlite_int.h: what the SQLite backend's files share (internal).
 */
#ifndef TD_STORE_SQLITE_INT_H
#define TD_STORE_SQLITE_INT_H

#include <sqlite3.h>

#include "store/backend.h"

/* 'TDNG': marks an SQLite file as a tidings store (PRAGMA application_id). */
#define TD_SQLITE_APPLICATION_ID 0x54444E47

/* Prepared statements each connection keeps, by purpose. */
enum {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_SAVEPOINT,
    STMT_RELEASE,
    STMT_ROLLBACK_TO,
    STMT_INSERT,
    STMT_HEAD,
    STMT_HASH_BEFORE,
    STMT_STREAM_VERSION,
    STMT_READ_STREAM,
    STMT_READ_EVENT,
    STMT_DOC_PUT,
    STMT_DOC_GET,
    STMT_DOC_DELETE,
    STMT_DOC_LIST,
    STMT_DOC_COLLECTIONS,
    STMT_COUNT
};

/* Read queries are built from the filters they use: one statement per
 * combination of the READ_* bits. */
enum { READ_STREAM = 1, READ_CATEGORY = 2, READ_TYPE = 4, READ_SINCE = 8, READ_VARIANTS = 16 };

struct td_conn {
    sqlite3 *db;
    char *path; /* for messages and file sizes */
    bool writer;
    int wal_fd; /* pipelined commits: the WAL, opened by the first sync_log; -1 */
    /* The worst failure of the database itself since take_fault last looked
     * (TD_ECORRUPT, TD_EIO, TD_ENOSPC; 0: none), with its message. */
    int fault;
    char fault_message[256];
    sqlite3_stmt *stmts[STMT_COUNT];
    sqlite3_stmt *reads[READ_VARIANTS];
};

/* Maps an SQLite result to a TD_E… code and sets the message "what: why";
 * a failure of the database itself (corruption, a failed or a full disk) is
 * also noted on conn for take_fault. */
int td_sqlite__error(td_conn *conn, int rc, const char *what);

/* Runs SQL without results (schema, pragmas). */
int td_sqlite__exec(td_conn *conn, const char *sql, const char *what);

/* Reads a single integer (a pragma or a count). */
int td_sqlite__int(td_conn *conn, const char *sql, int64_t *out);

/* Opens, checks and (for a writer) creates or migrates; see backend.h. */
int td_sqlite__open(td_conn **out, const char *target, const td_store_options *opts, bool writer);
void td_sqlite__close(td_conn *conn);
/* Deletes the store file at target with its -wal and -shm (none open). */
int td_sqlite__destroy(const char *target);

/* The file a target names (a path, or a file: URI's path); TD_ENOTFOUND when it names
 * none (an in-memory database). */
int td_sqlite__file_path(const char *target, char *out, size_t size);

/* sqlite_locks.c: the backend's lock and unlock (backend.h). */
int td_sqlite__lock(const char *target, const char *name, td_lock **out);
void td_sqlite__unlock(td_lock *lock);

/* The schema version this build writes. */
int td_sqlite__schema_latest(void);

#endif
