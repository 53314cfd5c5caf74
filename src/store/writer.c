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
 *        ▲                      │ fails, the database dropped the transaction,
 *        │                      ▼ or a unit could not be rolled back: why?
 *        │        ┌─────────────┴──────────────────────┐
 *        │   the disk is full (TD_ENOSPC)       it failed (TD_EIO), or the
 *        │   every unit of the batch gets       file is corrupt (TD_ECORRUPT)
 *        │   TD_ENOSPC; the batch is rolled     failed: the batch gets that code;
 *        └── back; the next batch is tried      later submissions get TD_ECLOSED
 *            as usual ("full" until one         until reopened
 *            commits: td_store_health)
 *
 * The fail-stop rule exists because after a failed fsync the kernel may have
 * dropped the dirty pages and a retry could "succeed" without the data ever
 * reaching the disk; only reopening (and SQLite's recovery) is trustworthy.
 * Corruption stops writes as well: writing on into a damaged file spreads
 * the damage.
 *
 * A full disk is different, and recoverable: write(2) refused the bytes
 * (ENOSPC), so nothing of the batch is in the kernel's hands, and nothing
 * was acknowledged. SQLite rolls the whole transaction back on SQLITE_FULL
 * (at COMMIT always; in a statement it may roll back only the statement,
 * and then its pager refuses further work until the transaction ends), and
 * once the transaction is over the connection resets its pager and is as
 * good as new. Frames it wrote to the log before the disk filled lie past
 * the log's last commit, where no reader looks, and the next commit
 * overwrites them. So the writer rolls back, answers the batch with
 * TD_ENOSPC and carries on: writes resume by themselves when space returns.
 * What decides is the backend's record of the database's own failure
 * (take_fault), not a unit's return code, and only SQLITE_FULL or a failed
 * allocation with ENOSPC counts as full: a failed sync is TD_EIO whatever
 * its errno (some file systems report a failed delayed allocation as ENOSPC
 * from fsync, after accepting the write), and stays fail-stop.
 *
 * Pipelined commits (td_store_options.pipelined_commits): COMMIT only writes
 * the log, and the batch joins the sync queue; the writer goes on with the
 * next batch at once. The sync thread makes everything queued durable with
 * one sync_log, then, oldest first, announces each batch's positions
 * (td_store__committed: readers and subscriptions see them from now on) and
 * wakes its callers. A failed sync fails every batch not yet answered with
 * TD_EIO and stops writes, as a failed COMMIT does.
 *
 *   writer:  BEGIN … COMMIT(log written) ─▶ sync queue ─▶ BEGIN next batch …
 *   syncer:                      fdatasync(log) ─▶ announce, wake callers
 *
 * While a batch is committed but not durable, `unsynced_from` holds its first
 * position (set before its COMMIT can make it visible), and this process's
 * event reads stop before it (td_writer__visible_through). Documents carry
 * no position: a document read waits, after reading, until every batch
 * committed by then is durable (td_writer__await_durable), so what it
 * returns is durable too.
 *
 * With pipelined commits, a batch whose COMMIT fails for lack of space has
 * been numbered already (document reads wait for numbers in order), so it
 * goes through the sync queue like the others, as an empty batch: the
 * syncer counts it durable in its turn and answers its callers with their
 * TD_ENOSPC; a round holding only such batches needs no sync.
 *
 * A lost connection to a database server (PostgreSQL: TD_EUNAVAILABLE,
 * noted by the backend) is like a full disk: the batch's units fail with
 * it, nothing of them committed, and the next batch connects again. A
 * COMMIT whose answer was lost is resolved by the backend before it
 * returns: committed (the batch succeeds), not committed (TD_EUNAVAILABLE),
 * or unknown, the one case that stops writes (TD_EIO, naming the
 * transaction), since retrying could apply it twice and giving up could
 * lose an acknowledged one.
 *
 * Locking: `lock` guards the queues, `stopping`, `fatal`, `trouble` and the
 * positions in flight. Units live on their callers' stacks; the writer and the syncer
 * touch a unit only until it is marked done under the lock.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/lock.h"
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
    td_append_span *spans; /* the unit's append spans (txn.c), for its caller; owned */
    size_t span_count;
    /* in a batch's first unit, while the batch waits for its sync: */
    struct unit *next_batch;
    bool failed;         /* its COMMIT failed (for lack of space): nothing to announce */
    int64_t first, last; /* the positions it added (first > last: none) */
    uint64_t seq;        /* the batch's number, for td_writer__await_durable */
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
    int fatal; /* 0, or the code of the failure that stopped writes (TD_EIO, TD_ECORRUPT) */
    char fatal_message[MESSAGE_MAX];
    td_time fatal_since;
    /* TD_STORE_FULL: the last batch failed for lack of space; TD_STORE_UNAVAILABLE: it
     * could not reach the database server (until one commits); 0 otherwise */
    _Atomic int trouble;
    td_time trouble_since;
    char trouble_message[MESSAGE_MAX];
    int64_t head;          /* the head position inside the current transaction */
    uint8_t last_hash[32]; /* the audit link of the event at head */
    td_writer_stats stats; /* under lock */

    /* pipelined commits */
    bool pipelined;
    pthread_t syncer;
    bool syncer_started, sync_stopping;
    pthread_cond_t sync_wake;
    unit *sync_first, *sync_last;  /* committed batches waiting, oldest first */
    int64_t committing_from;       /* first position of the batch in COMMIT, or 0 */
    int64_t syncing_from;          /* first position of the batches being synced, or 0 */
    int64_t failed_from;           /* first position whose sync failed, or 0: never readable */
    uint64_t committed_seq;        /* batches committed, or in COMMIT, so far */
    uint64_t durable_seq;          /* ... of which durable (all before it too) */
    pthread_cond_t durable_cond;   /* durable_seq moved, or a sync failed */
    _Atomic int64_t unsynced_from; /* oldest position not durable yet; INT64_MAX: none */
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

static void enter_failed_state(td_writer *w, int code, const char *why)
{
    pthread_mutex_lock(&w->lock);
    bool first = w->fatal == 0;
    if (first) {
        w->fatal = code;
        w->fatal_since = td_time_now();
        snprintf(w->fatal_message, sizeof w->fatal_message, "%s", why);
    }
    pthread_cond_broadcast(&w->durable_cond);
    pthread_mutex_unlock(&w->lock);
    if (first)
        td_log__emit(TD_LOG_ERROR, NULL, NULL, "store %s refuses writes until reopened: %s",
                     td_store_url(w->store), why);
}

void td_writer__fail(td_writer *w, int code, const char *why)
{
    enter_failed_state(w, code, why);
}

/* A batch failed for lack of space, or for want of the database server;
 * says so once per spell. */
static void note_trouble(td_writer *w, int state, const char *why)
{
    pthread_mutex_lock(&w->lock);
    bool first = w->trouble != state;
    if (first) {
        w->trouble = state;
        w->trouble_since = td_time_now();
    }
    snprintf(w->trouble_message, sizeof w->trouble_message, "%s", why);
    pthread_mutex_unlock(&w->lock);
    if (first && state == TD_STORE_FULL)
        td_log__emit(TD_LOG_WARN, NULL, NULL,
                     "store %s: the disk is full; writes fail with TD_ENOSPC and are tried "
                     "again as they come (%s)",
                     td_store_url(w->store), why);
    else if (first)
        td_log__emit(TD_LOG_WARN, NULL, NULL,
                     "store %s: the database server cannot be reached; writes fail with "
                     "TD_EUNAVAILABLE and are tried again as they come (%s)",
                     td_store_url(w->store), why);
}

/* A batch committed: if the disk was full or the server gone, they are
 * not any more. Only the writer sets `trouble`, so it may look without the
 * lock first. */
static void note_committed(td_writer *w)
{
    if (atomic_load_explicit(&w->trouble, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&w->lock);
    int was = w->trouble;
    w->trouble = 0;
    pthread_mutex_unlock(&w->lock);
    if (was)
        td_log__emit(TD_LOG_WARN, NULL, NULL, "store %s: writes succeed again",
                     td_store_url(w->store));
}

/* A unit failed in a way that leaves the transaction untrustworthy: roll
 * everything back and fail the whole batch. What the database itself
 * reported decides what that means: corruption or a failed disk stop
 * writes; a full disk only fails this batch. */
static void abort_batch(td_writer *w, unit *batch, int code)
{
    char why[MESSAGE_MAX], fault_why[MESSAGE_MAX];
    td_error__copy(why, sizeof why);
    int fault = w->backend->take_fault(w->conn, fault_why, sizeof fault_why);
    if (fault != 0) {
        code = fault;
        memcpy(why, fault_why, sizeof why);
    }
    w->backend->rollback(w->conn);
    td_error__set(code, "%s", why);
    fail_pending(batch, code);
    if (code == TD_ENOSPC)
        note_trouble(w, TD_STORE_FULL, why);
    else if (code == TD_EUNAVAILABLE)
        note_trouble(w, TD_STORE_UNAVAILABLE, why);
    else if (code == TD_EIO || code == TD_ECORRUPT)
        enter_failed_state(w, code, why);
}

/* What the database reported while a unit ran, even if the unit carried
 * on (inside td_txn_try, say): corruption, a full disk, a lost
 * connection to the server, or a failed write of an earlier unit that the
 * backend held back (any other code) ends the batch, and then this returns
 * that code with its message set. A failed read (TD_EIO) inside a unit
 * does not: real disk trouble shows at the commit. */
static int unit_fault(td_writer *w)
{
    char why[MESSAGE_MAX];
    int fault = w->backend->take_fault(w->conn, why, sizeof why);
    if (fault == 0 || fault == TD_EIO)
        return 0;
    return td_error__set(fault, "%s", why);
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
        if ((error = unit_fault(w)) < 0)
            return error; /* the whole batch rolls back, this unit with it */
        u->result = 0;
        u->spans = txn.spans; /* the caller exports them once the commit is durable */
        u->span_count = txn.span_count;
        return 0;
    }
    td_free(txn.spans);
    set_result(u, rc < 0 ? rc : error);
    w->head = saved_head;
    memcpy(w->last_hash, saved_hash, sizeof saved_hash);
    if ((error = unit_fault(w)) < 0)
        return error;
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
    bool numbered; /* pipelined: it has a number in the sync order (mark_committing) */
} batch_stats;

/* The lowest position in flight, for readers (lock held). */
static void update_unsynced(td_writer *w)
{
    TD_ASSERT_HELD(&w->lock);
    int64_t from = INT64_MAX;
    if (w->failed_from)
        from = w->failed_from;
    else if (w->syncing_from)
        from = w->syncing_from;
    else if (w->sync_first)
        from = w->sync_first->first;
    else if (w->committing_from)
        from = w->committing_from;
    atomic_store(&w->unsynced_from, from);
}

/* Before a pipelined COMMIT makes the batch visible: its positions from
 * `first` on, and its number, which document reads wait for. */
static void mark_committing(td_writer *w, unit *batch, int64_t first)
{
    pthread_mutex_lock(&w->lock);
    w->committing_from = first;
    batch->seq = ++w->committed_seq;
    update_unsynced(w);
    pthread_mutex_unlock(&w->lock);
}

int td_writer__await_durable(td_writer *w)
{
    int error = 0;
    if (on_writer_thread)
        return 0; /* a unit reading through the pool: its own batch is not durable either */
    pthread_mutex_lock(&w->lock);
    uint64_t target = w->committed_seq;
    while (w->durable_seq < target && w->fatal == 0)
        pthread_cond_wait(&w->durable_cond, &w->lock);
    if (w->durable_seq < target)
        error = td_error__set(TD_EIO, "what was read may not be durable: %s", w->fatal_message);
    pthread_mutex_unlock(&w->lock);
    return error;
}

int64_t td_writer__visible_through(td_writer *w)
{
    int64_t from = atomic_load(&w->unsynced_from);
    return from == INT64_MAX ? INT64_MAX : from - 1;
}

static void run_batch(td_writer *w, unit *batch, batch_stats *st)
{
    int error;
    if (w->backend->begin_at_head)
        error = w->backend->begin_at_head(w->conn, &w->head, w->last_hash);
    else if ((error = w->backend->begin(w->conn)) == 0 &&
             (error = w->backend->head(w->conn, &w->head)) == 0)
        error = w->backend->hash_before(w->conn, INT64_MAX, w->last_hash);
    if (error < 0) {
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
    if (w->pipelined)
        mark_committing(w, batch, first);
    st->numbered = w->pipelined;
    batch->first = first;
    double commit_start = seconds_now();
    error = w->backend->commit(w->conn);
    st->commit_seconds = seconds_now() - commit_start;
    if (error < 0) {
        abort_batch(w, batch, TD_EIO);
        batch->last = first - 1; /* nothing to announce */
        batch->failed = true;
        return;
    }
    st->committed = true;
    batch->last = w->head;
    note_committed(w);
    if (!w->pipelined)
        td_store__committed(w->store, first, w->head);
}

/* Takes up to max_batch units off the queue; called with the lock held. */
static unit *take_batch(td_writer *w)
{
    TD_ASSERT_HELD(&w->lock);
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
    td_error__set(TD_ECLOSED, "store refuses writes after %s (%s); reopen it",
                  w->fatal == TD_ECORRUPT ? "finding it corrupt" : "an I/O error",
                  w->fatal_message);
    fail_all(batch, TD_ECLOSED);
}

/* Sets the writer thread's nice value (store options), or says why not: at
 * info level, as an unprivileged process is refused a negative value by
 * design, and the store works the same, only less well under load. */
static void set_priority(int nice)
{
    if (nice != 0 && td_thread__nice(nice) < 0)
        td_log__emit(TD_LOG_INFO, NULL, NULL,
                     "the store's writer runs at normal priority (%s; a negative nice needs "
                     "CAP_SYS_NICE or a RLIMIT_NICE that allows it)",
                     td_error_last());
}

static void *writer_main(void *arg)
{
    td_writer *w = arg;
    on_writer_thread = true;
    td_thread__name("td-writer", NULL);
    set_priority(w->store->opts.writer_nice);
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
        if (w->pipelined && (st.committed || st.numbered)) {
            batch->next_batch = NULL;
            if (w->sync_last)
                w->sync_last->next_batch = batch;
            else
                w->sync_first = batch;
            w->sync_last = batch;
            pthread_cond_signal(&w->sync_wake);
        } else {
            finish_batch(batch);
        }
        w->committing_from = 0;
        if (w->pipelined)
            update_unsynced(w);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* The sync thread of pipelined commits: one sync_log for every batch queued,
 * then announce them oldest first and answer their callers. */
static void *syncer_main(void *arg)
{
    td_writer *w = arg;
    char why[MESSAGE_MAX];
    td_thread__name("td-sync", NULL);
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->sync_first == NULL && !w->sync_stopping)
            pthread_cond_wait(&w->sync_wake, &w->lock);
        if (w->sync_first == NULL)
            break;
        unit *batches = w->sync_first;
        w->sync_first = w->sync_last = NULL;
        w->syncing_from = batches->first;
        update_unsynced(w);
        bool refused = w->fatal != 0, any_committed = false;
        for (unit *b = batches; b; b = b->next_batch)
            any_committed |= !b->failed;
        pthread_mutex_unlock(&w->lock);
        double start = seconds_now();
        int error = refused ? td_error__set(TD_EIO, "store refuses writes after an I/O error")
                    : any_committed ? w->backend->sync_log(w->conn)
                                    : 0; /* only batches that failed for lack of space */
        double took = seconds_now() - start;
        if (error < 0 && !refused) {
            td_error__copy(why, sizeof why);
            enter_failed_state(w, TD_EIO, why);
            td_error__set(TD_EIO, "%s", why);
        }
        /* Readers may go as far as the announcements before they are made:
         * a reader never learns of a head it may not read up to. */
        pthread_mutex_lock(&w->lock);
        if (error == 0) {
            w->syncing_from = 0;
            update_unsynced(w);
        }
        pthread_mutex_unlock(&w->lock);
        for (unit *b = batches; b; b = b->next_batch)
            if (error == 0 && !b->failed)
                td_store__committed(w->store, b->first, b->last);
            else if (error < 0)
                fail_pending(b, TD_EIO);
        pthread_mutex_lock(&w->lock);
        w->stats.syncs += error == 0 && any_committed;
        w->stats.sync_seconds += took;
        if (error < 0 && w->failed_from == 0)
            w->failed_from = batches->first;
        for (unit *b = batches; error == 0 && b; b = b->next_batch)
            w->durable_seq = b->seq;
        pthread_cond_broadcast(&w->durable_cond);
        w->syncing_from = 0;
        update_unsynced(w);
        for (unit *b = batches, *next; b; b = next) {
            next = b->next_batch;
            finish_batch(b);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* After the writer: answers what it committed last, then ends the thread. */
static void stop_syncer(td_writer *w)
{
    if (!w->syncer_started)
        return;
    pthread_mutex_lock(&w->lock);
    w->sync_stopping = true;
    pthread_cond_signal(&w->sync_wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->syncer, NULL);
    w->syncer_started = false;
}

int td_writer__start(td_writer **out, td_store *store, td_conn *conn)
{
    td_writer *w = td_calloc(1, sizeof *w);
    if (w == NULL)
        return td_error__oom();
    w->store = store;
    w->conn = conn;
    w->backend = store->backend;
    w->pipelined = store->opts.pipelined_commits && store->backend->sync_log != NULL;
    atomic_init(&w->unsynced_from, INT64_MAX);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->sync_wake, NULL);
    pthread_cond_init(&w->durable_cond, NULL);
    if (w->pipelined && pthread_create(&w->syncer, NULL, syncer_main, w) == 0)
        w->syncer_started = true;
    if ((w->pipelined && !w->syncer_started) ||
        pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        stop_syncer(w);
        pthread_cond_destroy(&w->durable_cond);
        pthread_cond_destroy(&w->sync_wake);
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
    stop_syncer(w);
    w->backend->close(w->conn);
    pthread_cond_destroy(&w->durable_cond);
    pthread_cond_destroy(&w->sync_wake);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    td_free(w);
}

/* Copies as much of a message as fits. */
static void copy_message(char *out, size_t size, const char *message)
{
    size_t n = strlen(message);
    if (n >= size)
        n = size - 1;
    memcpy(out, message, n);
    out[n] = '\0';
}

void td_writer__health(td_writer *w, td_store_health *out)
{
    pthread_mutex_lock(&w->lock);
    if (w->fatal) {
        out->state = TD_STORE_FAILED;
        out->code = w->fatal;
        out->since = w->fatal_since;
        copy_message(out->message, sizeof out->message, w->fatal_message);
    } else if (w->trouble) {
        out->state = (td_store_state)w->trouble;
        out->code = w->trouble == TD_STORE_FULL ? TD_ENOSPC : TD_EUNAVAILABLE;
        out->since = w->trouble_since;
        copy_message(out->message, sizeof out->message, w->trouble_message);
    }
    pthread_mutex_unlock(&w->lock);
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
    if (u.result < 0) {
        td_free(u.spans);
        return td_error__set(u.result, "%s", u.message);
    }
    if (u.spans)
        td_store__export_spans(w->store, u.spans, u.span_count); /* durable now */
    return 0;
}
