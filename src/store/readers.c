/*
 * readers.c: a pool of read connections.
 *
 * Each read takes a connection from the pool, or opens one when none is idle,
 * and gives it back afterwards; at most POOL_IDLE_MAX idle connections are
 * kept. A connection is used by one thread at a time, so SQLite needs no
 * locking of its own, and reads never wait for the writer (WAL readers see the
 * last commit). Corruption met by a read is reported to the store (on_fault),
 * which stops writes: see td_store_health.
 */
#include "core/alloc.h"
#include "core/error.h"
#include "store/store_int.h"

/* As many as the threads that read at once: the shop serving load has about
 * 30 (subscription readers and lanes, HTTP workers), and with 8 kept every
 * read past the eighth opened and closed a connection (about 1 % of its
 * CPU). An idle connection costs little: its page cache is dropped whenever
 * another connection has committed since its last read. */
#define POOL_IDLE_MAX 32

struct td_readers {
    const td_backend *backend;
    const char *target;           /* borrowed from the store */
    const td_store_options *opts; /* borrowed from the store */
    td_fault_fn on_fault;
    void *fault_payload;
    pthread_mutex_t lock;
    td_conn *idle[POOL_IDLE_MAX];
    size_t idle_count;
};

int td_readers__new(td_readers **out, const td_backend *backend, const char *target,
                    const td_store_options *opts, td_fault_fn on_fault, void *payload)
{
    td_readers *r = td_calloc(1, sizeof *r);
    if (r == NULL)
        return td_error__oom();
    r->backend = backend;
    r->target = target;
    r->opts = opts;
    r->on_fault = on_fault;
    r->fault_payload = payload;
    pthread_mutex_init(&r->lock, NULL);
    *out = r;
    return 0;
}

void td_readers__free(td_readers *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->idle_count; i++)
        r->backend->close(r->idle[i]);
    pthread_mutex_destroy(&r->lock);
    td_free(r);
}

int td_readers__acquire(td_readers *r, td_conn **out)
{
    td_conn *conn = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->idle_count > 0)
        conn = r->idle[--r->idle_count];
    pthread_mutex_unlock(&r->lock);
    if (conn) {
        *out = conn;
        return 0;
    }
    return r->backend->open(out, r->target, r->opts, false);
}

/* Every read gives its connection back here: the one place that learns
 * whether the database met corruption during it. A read that failed for
 * any other reason (a failed disk read, say) stops nothing. */
void td_readers__release(td_readers *r, td_conn *conn)
{
    char why[256];
    if (r->backend->take_fault(conn, why, sizeof why) == TD_ECORRUPT && r->on_fault)
        r->on_fault(r->fault_payload, TD_ECORRUPT, why);
    pthread_mutex_lock(&r->lock);
    if (r->idle_count < POOL_IDLE_MAX) {
        r->idle[r->idle_count++] = conn;
        conn = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    if (conn)
        r->backend->close(conn);
}
