/*
 * pg_locks.c: locks that die with their holder, for the PostgreSQL
 * backend: session-level advisory locks (pg_try_advisory_lock) held on one
 * connection per store and process. The server releases them when that
 * session ends: the process died (its socket closed), or the connection
 * was cut and the server noticed. So "is the lock free?" answers "has its
 * holder's session ended?", on any host.
 *
 * A session can also end while its process lives on (a server restart, a
 * network cut): its locks are then gone without the holder letting go.
 * lock_check tells a holder whether the server still counts the lock as
 * its own, so that one that lost it stops before another takes it over
 * (src/bus/lease.c).
 *
 * Advisory locks are re-entrant within a session, so two holders in this
 * process are told apart here: a name held already is TD_EBUSY, as a
 * second flock of the same file would be.
 *
 * Keys: a 64-bit FNV-1a of "OID/NAME", OID the store's events table: one
 * key space per store in the database.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/lock.h"
#include "store/pg_int.h"

typedef struct session {
    td_conn *conn;
    bool lost; /* the connection ended: every lock it held is gone */
    int users; /* locks held */
    struct session *next;
} session;

struct td_lock {
    session *session;
    int64_t key;
    char name[128];
    struct td_lock *next_held; /* in `held` */
};

static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;
static session *sessions; /* live ones, by target */
static td_lock *held;     /* every lock this process holds */

static int64_t key_of(unsigned int oid, const char *name)
{
    char text[200];
    uint64_t h = 1469598103934665603ULL;
    snprintf(text, sizeof text, "%u/%s", oid, name);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return (int64_t)h;
}

static void session_free(session *s)
{
    td_pg__close(s->conn);
    td_free(s);
}

/* The live session for target, made if there is none; lock held. */
static int session_for(const char *target, session **out)
{
    TD_ASSERT_HELD(&sessions_lock);
    for (session **link = &sessions; *link; link = &(*link)->next) {
        session *s = *link;
        if (strcmp(s->conn->target, target) != 0)
            continue;
        if (!s->lost && s->conn->pg && PQstatus(s->conn->pg) == CONNECTION_OK) {
            *out = s;
            return 0;
        }
        s->lost = true; /* its locks' holders learn it from lock_check */
        *link = s->next;
        if (s->users == 0)
            session_free(s);
        break;
    }
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    td_conn *conn = NULL;
    int error = td_pg__open(&conn, target, &opts, false);
    if (error < 0)
        return error;
    session *s = td_calloc(1, sizeof *s);
    if (s == NULL) {
        td_pg__close(conn);
        return td_error__oom();
    }
    s->conn = conn;
    s->next = sessions;
    sessions = s;
    *out = s;
    return 0;
}

static void detach(session *s)
{
    for (session **link = &sessions; *link; link = &(*link)->next)
        if (*link == s) {
            *link = s->next;
            return;
        }
}

/* Names the backend holding key, for the message. */
static void holder(session *s, int64_t key, char *out, size_t size)
{
    char classid[24], objid[24];
    const char *values[2] = {classid, objid};
    PGresult *res = NULL;
    uint64_t k = (uint64_t)key;
    snprintf(classid, sizeof classid, "%u", (unsigned)(k >> 32));
    snprintf(objid, sizeof objid, "%u", (unsigned)(k & 0xffffffffu));
    snprintf(out, size, "another session");
    if (td_pg__query(s->conn,
                     "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid "
                     "AND objid = $2::oid AND objsubid = 1 AND granted",
                     2, values, false, "finding a lock's holder", td_pg__deadline_ms(s->conn),
                     &res) == 0 &&
        PQntuples(res) > 0)
        snprintf(out, size, "the session of PostgreSQL backend %s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

int td_pg__lock(const char *target, const char *name, td_lock **out)
{
    session *s = NULL;
    char key_text[24], who[120];
    const char *values[1] = {key_text};
    PGresult *res = NULL;
    *out = NULL;
    pthread_mutex_lock(&sessions_lock);
    int error = session_for(target, &s);
    int64_t key = error == 0 ? key_of(s->conn->store_oid, name) : 0;
    for (td_lock *l = held; error == 0 && l; l = l->next_held)
        if (l->session == s && l->key == key)
            error = td_error__set(TD_EBUSY, "this process holds the lock %s already", name);
    snprintf(key_text, sizeof key_text, "%lld", (long long)key);
    if (error == 0)
        error = td_pg__query(s->conn, "SELECT pg_try_advisory_lock($1::bigint)", 1, values, false,
                             "taking a lock", td_pg__deadline_ms(s->conn), &res);
    if (error == 0 && strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        holder(s, key, who, sizeof who);
        error = td_error__set(TD_EBUSY, "a live process holds the lock %s (%s)", name, who);
    }
    PQclear(res);
    td_lock *lock = error == 0 ? td_calloc(1, sizeof *lock) : NULL;
    if (error == 0 && lock == NULL)
        error = td_error__oom(); /* the lock stays with the session until it ends: harmless */
    if (error == 0) {
        lock->session = s;
        lock->key = key;
        snprintf(lock->name, sizeof lock->name, "%s", name);
        lock->next_held = held;
        held = lock;
        s->users++;
        *out = lock;
    } else if (s && s->conn->pg == NULL) {
        s->lost = true;
        detach(s);
        if (s->users == 0)
            session_free(s);
    }
    pthread_mutex_unlock(&sessions_lock);
    return error;
}

void td_pg__unlock(td_lock *lock)
{
    if (lock == NULL)
        return;
    char key_text[24];
    const char *values[1] = {key_text};
    snprintf(key_text, sizeof key_text, "%lld", (long long)lock->key);
    pthread_mutex_lock(&sessions_lock);
    session *s = lock->session;
    for (td_lock **link = &held; *link; link = &(*link)->next_held)
        if (*link == lock) {
            *link = lock->next_held;
            break;
        }
    if (!s->lost && td_pg__query(s->conn, "SELECT pg_advisory_unlock($1::bigint)", 1, values, false,
                                 "letting a lock go", td_pg__deadline_ms(s->conn), NULL) < 0)
        s->lost = true; /* the session ended: the server let it go */
    if (--s->users == 0) {
        detach(s);
        session_free(s);
    }
    pthread_mutex_unlock(&sessions_lock);
    td_free(lock);
}

int td_pg__lock_check(td_lock *lock)
{
    PGresult *res = NULL;
    uint64_t k = (uint64_t)lock->key;
    char classid[24], objid[24];
    snprintf(classid, sizeof classid, "%u", (unsigned)(k >> 32));
    snprintf(objid, sizeof objid, "%u", (unsigned)(k & 0xffffffffu));
    const char *ids[2] = {classid, objid};
    pthread_mutex_lock(&sessions_lock);
    session *s = lock->session;
    int error = s->lost ? TD_EBUSY : 0;
    if (error == 0 &&
        td_pg__query(s->conn,
                     "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = "
                     "pg_backend_pid() AND classid = $1::oid AND objid = $2::oid AND objsubid = 1 "
                     "AND granted",
                     2, ids, false, "checking a lock", td_pg__deadline_ms(s->conn), &res) < 0) {
        s->lost = true;
        detach(s);
        error = TD_EBUSY;
    }
    if (error == 0 && atoi(PQgetvalue(res, 0, 0)) < 1)
        error = TD_EBUSY;
    PQclear(res);
    pthread_mutex_unlock(&sessions_lock);
    if (error < 0)
        td_error__set(TD_EBUSY, "the lock %s is lost: the session that held it ended", lock->name);
    return error;
}
