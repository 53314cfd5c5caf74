/*
 * writer.c: the store's writer thread and group commit.
 *
 * Callers of td_transact() queue a unit and sleep. The writer takes every
 * queued unit (up to max_batch), runs them one after another inside one
 * database transaction, each under a savepoint, and makes the lot durable
 * with one commit. Then it wakes the callers with their own results. While it
 * commits, new units queue up and form the next batch, so the more producers,
 * the larger the batches and the fewer fsyncs per unit; one producer alone
 * pays one commit per unit, as without batching.
 *
 *   idle ──unit queued──▶ BEGIN ──▶ for each unit:  SAVEPOINT
 *     ▲                                               fn(txn) ─ok──▶ RELEASE
 *     │                                                   └─fail─▶ ROLLBACK TO
 *     │                               (that unit alone gets its error)
 *     └──── wake callers ◀── COMMIT ok ◀──┘
 *                               │ fails, the database dropped the transaction,
 *                               ▼ or a unit could not be rolled back
 *                           failed: every unit of the batch gets TD_EIO;
 *                           later submissions get TD_ECLOSED until reopened
 *
 * The fail-stop rule exists because after a failed fsync the kernel may have
 * dropped the dirty pages and a retry could "succeed" without the data ever
 * reaching the disk; only reopening (and SQLite's recovery) is trustworthy.
 *
 * Locking: `lock` guards the queue, `stopping` and `fatal`. Units live on
 * their callers' stacks; the writer touches a unit only until it marks it
 * done under the lock.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/log_int.h"
#include "store/store_int.h"

#define MESSAGE_MAX 512

typedef struct unit {
    td_unit_fn fn;
    void *payload;
    bool prechecked;
    int result;
    char message[MESSAGE_MAX];
    bool done;
    pthread_cond_t done_cond;
    struct unit *next;
} unit;

struct td_writer {
    td_store *store;
    td_conn *conn;
    const td_backend *backend;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    unit *first, *last;
    bool stopping;
    int fatal; /* 0, or the code of the failure that stopped writes */
    char fatal_message[MESSAGE_MAX];
    int64_t head;          /* the head position inside the current transaction */
    uint8_t last_hash[32]; /* the audit link of the event at head */
    td_writer_stats stats; /* under lock */
};

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Thread_local bool on_writer_thread;

static void set_result(unit *u, int code)
{
    u->result = code;
    td_error__copy(u->message, sizeof u->message);
}

static void fail_all(unit *batch, int code)
{
    for (unit *u = batch; u; u = u->next)
        set_result(u, code);
}

/* Fails the units that had succeeded (or not run) so far; a unit that failed
 * on its own keeps its own error, which is still true. */
static void fail_pending(unit *batch, int code)
{
    for (unit *u = batch; u; u = u->next)
        if (u->result >= 0)
            set_result(u, code);
}

static void enter_failed_state(td_writer *w, const char *why)
{
    td_log__emit(TD_LOG_ERROR, NULL, NULL, "store %s refuses writes until reopened: %s",
                 td_store_url(w->store), why);
    pthread_mutex_lock(&w->lock);
    w->fatal = TD_EIO;
    snprintf(w->fatal_message, sizeof w->fatal_message, "%s", why);
    pthread_mutex_unlock(&w->lock);
}

/* A unit failed in a way that leaves the transaction untrustworthy: roll
 * everything back and fail the whole batch. */
static void abort_batch(td_writer *w, unit *batch, int code)
{
    char why[MESSAGE_MAX];
    td_error__copy(why, sizeof why);
    w->backend->rollback(w->conn);
    td_error__set(code, "%s", why);
    fail_pending(batch, code);
    if (code == TD_EIO || code == TD_ECORRUPT)
        enter_failed_state(w, why);
}

/* Runs one unit under a savepoint. Returns < 0 if the batch must be aborted. */
static int run_unit(td_writer *w, unit *u)
{
    int64_t saved_head = w->head;
    uint8_t saved_hash[32];
    memcpy(saved_hash, w->last_hash, sizeof saved_hash);
    int error = w->backend->savepoint(w->conn);
    if (error < 0)
        return error;
    td_txn txn = {.store = w->store,
                  .conn = w->conn,
                  .head = &w->head,
                  .last_hash = w->last_hash,
                  .prechecked = u->prechecked};
    td_error_clear();
    int rc = u->fn(&txn, u->payload);
    if (rc >= 0 && txn.queued_count > 0)
        rc = td_store__observers_drain(&txn);
    td_store__observers_reset(&txn);
    if (rc >= 0 && (error = w->backend->release(w->conn)) == 0) {
        u->result = 0;
        return 0;
    }
    set_result(u, rc < 0 ? rc : error);
    w->head = saved_head;
    memcpy(w->last_hash, saved_hash, sizeof saved_hash);
    if (!w->backend->in_transaction(w->conn))
        return td_error__set(TD_EIO, "the database dropped the transaction: %s", u->message);
    /* A unit's own code says nothing about the database (a handler may
     * report a network failure as TD_EIO): the batch goes on as long as the
     * database undid the unit. Real disk trouble shows at the commit. */
    return w->backend->rollback_to(w->conn) < 0 ? TD_EIO : 0;
}

/* What a batch did, for td_store_writer_stats. */
typedef struct batch_stats {
    int64_t units, failed;
    double commit_seconds;
    bool committed;
} batch_stats;

static void run_batch(td_writer *w, unit *batch, batch_stats *st)
{
    int error;
    if ((error = w->backend->begin(w->conn)) < 0 ||
        (error = w->backend->head(w->conn, &w->head)) < 0 ||
        (error = w->backend->hash_before(w->conn, INT64_MAX, w->last_hash)) < 0) {
        abort_batch(w, batch, error);
        return;
    }
    int64_t first = w->head + 1;
    for (unit *u = batch; u; u = u->next) {
        if ((error = run_unit(w, u)) < 0) {
            abort_batch(w, batch, error);
            return;
        }
        st->units++;
        st->failed += u->result < 0;
    }
    double commit_start = seconds_now();
    error = w->backend->commit(w->conn);
    st->commit_seconds = seconds_now() - commit_start;
    if (error < 0) {
        abort_batch(w, batch, TD_EIO);
        return;
    }
    st->committed = true;
    td_store__committed(w->store, first, w->head);
}

/* Takes up to max_batch units off the queue; called with the lock held. */
static unit *take_batch(td_writer *w)
{
    unit *batch = w->first, *u = batch;
    for (size_t n = 1; n < w->store->opts.max_batch && u->next; n++)
        u = u->next;
    w->first = u->next;
    if (w->first == NULL)
        w->last = NULL;
    u->next = NULL;
    return batch;
}

static void finish_batch(unit *batch)
{
    while (batch) {
        unit *next = batch->next;
        batch->done = true;
        pthread_cond_signal(&batch->done_cond);
        batch = next;
    }
}

static void fail_refused(td_writer *w, unit *batch)
{
    td_error__set(TD_ECLOSED, "store refuses writes after an I/O error (%s); reopen it",
                  w->fatal_message);
    fail_all(batch, TD_ECLOSED);
}

static void *writer_main(void *arg)
{
    td_writer *w = arg;
    on_writer_thread = true;
    td_thread__name("td-writer", NULL);
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->first == NULL && !w->stopping)
            pthread_cond_wait(&w->wake, &w->lock);
        if (w->first == NULL)
            break;
        unit *batch = take_batch(w);
        bool refused = w->fatal != 0;
        batch_stats st = {0};
        double start = seconds_now();
        pthread_mutex_unlock(&w->lock);
        if (refused)
            fail_refused(w, batch);
        else
            run_batch(w, batch, &st);
        pthread_mutex_lock(&w->lock);
        w->stats.commits += st.committed;
        w->stats.units += st.units;
        w->stats.units_failed += st.failed;
        w->stats.commit_seconds += st.commit_seconds;
        w->stats.busy_seconds += seconds_now() - start;
        finish_batch(batch);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int td_writer__start(td_writer **out, td_store *store, td_conn *conn)
{
    td_writer *w = td_calloc(1, sizeof *w);
    if (w == NULL)
        return td_error__oom();
    w->store = store;
    w->conn = conn;
    w->backend = store->backend;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        td_free(w);
        return td_error__set(TD_ERROR, "cannot start the store's writer thread");
    }
    *out = w;
    return 0;
}

void td_writer__stop(td_writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    w->backend->close(w->conn);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    td_free(w);
}

void td_writer__stats(td_writer *w, td_writer_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
}

int td_writer__submit(td_writer *w, td_unit_fn fn, void *payload, bool prechecked)
{
    if (on_writer_thread)
        return td_error__set(TD_EINVAL, "td_transact called from inside a unit of work");
    unit u = {.fn = fn, .payload = payload, .prechecked = prechecked};
    pthread_cond_init(&u.done_cond, NULL);
    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        pthread_cond_destroy(&u.done_cond);
        return td_error__set(TD_ECLOSED, "store is closing");
    }
    if (w->last)
        w->last->next = &u;
    else
        w->first = &u;
    w->last = &u;
    pthread_cond_signal(&w->wake);
    while (!u.done)
        pthread_cond_wait(&u.done_cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    pthread_cond_destroy(&u.done_cond);
    if (u.result < 0)
        return td_error__set(u.result, "%s", u.message);
    return 0;
}
