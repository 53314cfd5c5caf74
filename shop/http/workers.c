/*
 * workers.c (shop http): commands run off the connection threads.
 *
 * A command (a POST, PUT or DELETE) waits for the store's writer until its
 * unit of work is durable: milliseconds, more when the shop is busy. Run
 * on one of libmicrohttpd's few connection threads, it would hold every
 * other connection of that thread meanwhile (a live feed, a GET, a request
 * that should be refused at once), and offered more than the shop can do,
 * clients would queue where no one can see them: in the threads' sockets.
 * So the connection thread suspends the connection and hands the command
 * to a worker here; the worker runs it, then resumes the connection, and
 * the connection thread sends the answer.
 *
 *   submit ──▶ stopping, or max_waiting wait already      ──▶ TD_EBUSY
 *          ──▶ bounded, and the oldest waiting new work has
 *              waited longer than max_wait_us, or what
 *              waits ahead would take longer to run at the
 *              pace new work runs now (service_us)          ──▶ TD_EBUSY
 *          ──▶ otherwise queued (first in, first out)
 *
 * The number of workers bounds the commands in flight, and so how many
 * the writer batches against the handlers that finish orders (more let
 * placements run ahead of the saga: docs/internals/shop.md). The queue in
 * front of them is visible, so new work (`bounded`) is refused by how long
 * the queue makes a command wait now: as the oldest new work waiting has
 * waited, and as a newcomer would, behind what waits ahead of it at the
 * pace commands run; what is accepted waits at most about max_wait_us for
 * a worker. The caller answers TD_EBUSY with 503 at once,
 * in microseconds. Stopping runs what is queued, then joins.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "http/http.h"

#define GATE_POLL_NS (1000 * 1000L) /* gated work asks the gate again this often */

typedef struct job {
    http_work_fn fn;
    void *arg;
    int64_t queued_at; /* monotonic µs */
    bool bounded;      /* new work: gated, and refused past max_wait_us */
    struct job *next;
} job;

struct http_workers {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t *threads;
    unsigned count, started, idle, waiting, max_waiting;
    unsigned joined;     /* threads joined by http_workers_stop (the stopping thread's) */
    int64_t max_wait_us; /* for bounded submissions; 0: no bound */
    http_gate_fn gate;   /* may bounded work start now? NULL: always */
    void *gate_arg;
    bool polling;       /* a worker watches the gate */
    int64_t service_us; /* how long new work runs, smoothed (EWMA, 1/8) */
    bool stopping;
    job *first, *last;
};

static int64_t monotonic_us(void);

/* Takes the first job that may start: any unbounded one, and a bounded one
 * while the gate is open or once it has waited its time; lock held. */
static job *take(http_workers *w, bool open, int64_t now)
{
    job *prev = NULL;
    for (job *j = w->first; j; prev = j, j = j->next) {
        if (j->bounded && !open && !w->stopping && now - j->queued_at <= w->max_wait_us)
            continue;
        if (prev)
            prev->next = j->next;
        else
            w->first = j->next;
        if (w->last == j)
            w->last = prev;
        w->waiting--;
        return j;
    }
    return NULL;
}

/* Whether the gate lets bounded work start; asked without the lock (the
 * gate takes locks of its own). */
static bool gate_open(http_workers *w)
{
    bool gated = false;
    for (job *j = w->first; j && !gated; j = j->next)
        gated = j->bounded;
    if (!gated || w->gate == NULL)
        return true;
    pthread_mutex_unlock(&w->lock);
    bool open = w->gate(w->gate_arg);
    pthread_mutex_lock(&w->lock);
    return open;
}

static void wait_a_little(http_workers *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += GATE_POLL_NS;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w->wake, &w->lock, &ts);
}

/* One worker at a time (`polling`) watches the gate while new work waits,
 * asking it every GATE_POLL_NS; the others sleep until a command comes or
 * the watcher, having taken one, hands the watch on. So a shut gate costs
 * one thread's polling, not every worker's. */
static void *worker_main(void *arg)
{
    http_workers *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        job *j = NULL;
        while (j == NULL && (w->first || !w->stopping)) {
            if (w->first == NULL) {
                w->idle++;
                pthread_cond_wait(&w->wake, &w->lock);
                w->idle--;
                continue;
            }
            bool watcher = !w->polling, open = false;
            if (watcher) {
                w->polling = true;
                open = gate_open(w);
            }
            j = take(w, open, monotonic_us()); /* without the gate: other commands, overdue ones */
            if (j && watcher && w->first)
                pthread_cond_signal(&w->wake); /* someone else watches the gate now */
            if (j == NULL && watcher)
                wait_a_little(w); /* new work waits for the gate: ask it again soon */
            else if (j == NULL)
                pthread_cond_wait(&w->wake, &w->lock);
            if (watcher)
                w->polling = false;
        }
        if (j == NULL) /* stopping, and nothing left */
            break;
        pthread_mutex_unlock(&w->lock);
        int64_t began = monotonic_us();
        j->fn(j->arg);
        int64_t ran = monotonic_us() - began;
        bool bounded = j->bounded;
        free(j);
        pthread_mutex_lock(&w->lock);
        if (bounded) /* new orders' pace: a burst of logins (Argon2) must not turn orders away */
            w->service_us = w->service_us ? w->service_us + (ran - w->service_us) / 8 : ran;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static int64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int http_workers_start(http_workers **out, unsigned threads, unsigned max_waiting,
                       int64_t max_wait_us, http_gate_fn gate, void *gate_arg)
{
    http_workers *w = calloc(1, sizeof *w);
    if (w == NULL || (w->threads = calloc(threads, sizeof *w->threads)) == NULL) {
        free(w);
        return TD_ENOMEM;
    }
    w->count = threads;
    w->max_waiting = max_waiting;
    w->max_wait_us = max_wait_us;
    w->gate = gate;
    w->gate_arg = gate_arg;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    for (; w->started < threads; w->started++)
        if (pthread_create(&w->threads[w->started], NULL, worker_main, w) != 0) {
            http_workers_free(w);
            return TD_ERROR;
        }
    *out = w;
    return 0;
}

/* Why a submission now would be refused, or NULL; lock held. */
static const char *refusal(const http_workers *w, bool bounded, int64_t now)
{
    if (w->stopping)
        return "the server is stopping";
    if (w->waiting >= w->max_waiting)
        return "every command worker is busy and the queue for them is full";
    if (!bounded || w->max_wait_us == 0)
        return NULL;
    /* what waits ahead of it, at the pace commands run now */
    if ((int64_t)w->waiting * w->service_us / (int64_t)w->count > w->max_wait_us)
        return "new orders would wait to start longer than the shop admits them for";
    for (const job *j = w->first; j; j = j->next)
        if (j->bounded) /* the oldest new work waiting */
            return now - j->queued_at > w->max_wait_us
                       ? "new orders wait to start longer than the shop admits them for"
                       : NULL;
    return NULL;
}

const char *http_workers_full(http_workers *w, bool bounded)
{
    int64_t now = monotonic_us();
    pthread_mutex_lock(&w->lock);
    const char *why = refusal(w, bounded, now);
    pthread_mutex_unlock(&w->lock);
    return why;
}

int http_workers_submit(http_workers *w, http_work_fn fn, void *arg, bool bounded)
{
    job *j = malloc(sizeof *j);
    if (j == NULL)
        return TD_ENOMEM;
    int64_t now = monotonic_us();
    *j = (job){fn, arg, now, bounded, NULL};
    pthread_mutex_lock(&w->lock);
    bool room = refusal(w, bounded, now) == NULL;
    if (room) {
        if (w->last)
            w->last->next = j;
        else
            w->first = j;
        w->last = j;
        w->waiting++;
        pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->lock);
    if (!room)
        free(j);
    return room ? 0 : TD_EBUSY;
}

void http_workers_queue(http_workers *w, unsigned *waiting, double *oldest_s)
{
    *waiting = 0;
    *oldest_s = 0;
    if (w == NULL)
        return;
    int64_t now = monotonic_us();
    pthread_mutex_lock(&w->lock);
    *waiting = w->waiting;
    if (w->first)
        *oldest_s = (double)(now - w->first->queued_at) / 1e6;
    pthread_mutex_unlock(&w->lock);
}

void http_workers_stop(http_workers *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    for (; w->joined < w->started; w->joined++)
        pthread_join(w->threads[w->joined], NULL);
}

void http_workers_free(http_workers *w)
{
    if (w == NULL)
        return;
    http_workers_stop(w);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->threads);
    free(w);
}
