/*
 * deadlines.c (shop http): whole-request deadlines, so that a slow client
 * cannot keep a connection by sending a byte every few seconds.
 *
 * libmicrohttpd's own timeout is an idle timeout: any byte resets it, and
 * the application hears of a request only once its head is complete. So
 * this file keeps a deadline per connection, from libmicrohttpd's
 * connection notifications and the request handler:
 *
 *   opened ──▶ waiting for a head: deadline = opened + head_s
 *      ▲          │ head complete (the handler's first call)
 *      │          ▼
 *      │       reading the body: deadline = head + body_s
 *      │          │ answer queued
 *      │          ▼
 *      │       answering: no deadline (a live feed may last hours; a client
 *      │          │        that stops reading is libmicrohttpd's idle timeout)
 *      └──────────┘ request completed (keep-alive: the next head's deadline)
 *
 * A thread looks every TICK_MS and shuts down (SHUT_RDWR) the socket of
 * each connection past its deadline; libmicrohttpd then sees the end of
 * the stream and closes it as it closes any other. The socket is only ever
 * shut down under the lock that the connection's "closed" notification
 * takes, and libmicrohttpd notifies before it closes the descriptor, so a
 * descriptor number reused by a new connection is never touched.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "http/http.h"

#define TICK_MS 250

typedef struct watched {
    int fd;
    td_time deadline; /* 0: none */
    struct watched *prev, *next;
} watched;

struct http_deadlines {
    int64_t head_us, body_us;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool stopping;
    watched *list;
    atomic_llong cut; /* connections shut down for their deadline */
};

static void *watch_main(void *arg)
{
    http_deadlines *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += TICK_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        (void)pthread_cond_timedwait(&d->wake, &d->lock, &until);
        td_time now = td_time_now();
        for (watched *w = d->list; w; w = w->next)
            if (w->deadline && now > w->deadline) {
                (void)shutdown(w->fd, SHUT_RDWR);
                w->deadline = 0; /* once */
                atomic_fetch_add(&d->cut, 1);
            }
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

int http_deadlines_start(http_deadlines **out, unsigned head_s, unsigned body_s)
{
    http_deadlines *d = calloc(1, sizeof *d);
    if (d == NULL)
        return TD_ENOMEM;
    d->head_us = (int64_t)head_s * 1000000;
    d->body_us = (int64_t)body_s * 1000000;
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&d->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&d->thread, NULL, watch_main, d) != 0) {
        pthread_cond_destroy(&d->wake);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return TD_ERROR;
    }
    *out = d;
    return 0;
}

void http_deadlines_stop(http_deadlines *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    while (d->list) { /* connections libmicrohttpd did not report closed */
        watched *w = d->list;
        d->list = w->next;
        free(w);
    }
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

long long http_deadlines_cut(const http_deadlines *d)
{
    return atomic_load(&((http_deadlines *)d)->cut);
}

void http_deadlines_opened(http_deadlines *d, struct MHD_Connection *c, void **context)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    watched *w = info ? calloc(1, sizeof *w) : NULL;
    *context = w;
    if (w == NULL)
        return; /* unwatched: libmicrohttpd's idle timeout still holds */
    w->fd = info->connect_fd;
    w->deadline = td_time_now() + d->head_us;
    pthread_mutex_lock(&d->lock);
    w->next = d->list;
    if (d->list)
        d->list->prev = w;
    d->list = w;
    pthread_mutex_unlock(&d->lock);
}

void http_deadlines_closed(http_deadlines *d, void **context)
{
    watched *w = *context;
    *context = NULL;
    if (w == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        d->list = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&d->lock);
    free(w);
}

/* The connection's watched record, from libmicrohttpd's socket context. */
static watched *of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

void http_deadlines_set(http_deadlines *d, struct MHD_Connection *c, http_phase phase)
{
    watched *w = of(c);
    if (w == NULL)
        return;
    td_time now = td_time_now();
    pthread_mutex_lock(&d->lock);
    w->deadline = phase == HTTP_PHASE_BODY        ? now + d->body_us
                  : phase == HTTP_PHASE_NEXT_HEAD ? now + d->head_us
                                                  : 0;
    pthread_mutex_unlock(&d->lock);
}
