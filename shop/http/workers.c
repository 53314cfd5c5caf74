/*
 * workers.c (shop http): commands run off the connection threads.
 *
 * A command (a POST, PUT or DELETE) waits for the store's writer until its
 * unit of work is durable: milliseconds, more when the shop is busy. Run
 * on one of libmicrohttpd's few connection threads, it would hold every
 * other connection of that thread meanwhile, and offered more than the
 * shop can do, clients would queue where no one can see them: in the
 * threads' sockets. So the connection thread suspends the connection and
 * hands the command to a worker here; the worker runs it, then resumes
 * the connection, and the connection thread sends the answer.
 *
 *   submit ──▶ a worker is free, or fewer than max_waiting wait ──▶ queued
 *          ──▶ otherwise TD_EBUSY: the caller answers 503 at once
 *
 * The workers bound the commands in flight, and so how long an accepted
 * one waits for the writer; what is over is refused in microseconds
 * instead of waiting without bound. Stopping runs what is queued, then
 * joins.
 */
#include <pthread.h>
#include <stdlib.h>

#include "http/http.h"

typedef struct job {
    http_work_fn fn;
    void *arg;
    struct job *next;
} job;

struct http_workers {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t *threads;
    unsigned count, started, idle, waiting, max_waiting;
    bool stopping;
    job *first, *last;
};

static void *worker_main(void *arg)
{
    http_workers *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->first == NULL && !w->stopping) {
            w->idle++;
            pthread_cond_wait(&w->wake, &w->lock);
            w->idle--;
        }
        job *j = w->first;
        if (j == NULL) /* stopping, and nothing left */
            break;
        w->first = j->next;
        if (w->first == NULL)
            w->last = NULL;
        w->waiting--;
        pthread_mutex_unlock(&w->lock);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int http_workers_start(http_workers **out, unsigned threads, unsigned max_waiting)
{
    http_workers *w = calloc(1, sizeof *w);
    if (w == NULL || (w->threads = calloc(threads, sizeof *w->threads)) == NULL) {
        free(w);
        return TD_ENOMEM;
    }
    w->count = threads;
    w->max_waiting = max_waiting;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    for (; w->started < threads; w->started++)
        if (pthread_create(&w->threads[w->started], NULL, worker_main, w) != 0) {
            http_workers_stop(w);
            return TD_ERROR;
        }
    *out = w;
    return 0;
}

bool http_workers_full(http_workers *w)
{
    pthread_mutex_lock(&w->lock);
    bool full = w->stopping || (w->idle <= w->waiting && w->waiting >= w->max_waiting);
    pthread_mutex_unlock(&w->lock);
    return full;
}

int http_workers_submit(http_workers *w, http_work_fn fn, void *arg)
{
    job *j = malloc(sizeof *j);
    if (j == NULL)
        return TD_ENOMEM;
    *j = (job){fn, arg, NULL};
    pthread_mutex_lock(&w->lock);
    bool room = !w->stopping && (w->idle > w->waiting || w->waiting < w->max_waiting);
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

void http_workers_stop(http_workers *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < w->started; i++)
        pthread_join(w->threads[i], NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->threads);
    free(w);
}
