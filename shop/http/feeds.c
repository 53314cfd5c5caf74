/*
 * feeds.c (shop http): live event feeds with nothing to send are parked.
 *
 * libmicrohttpd serves all connections on a small pool of threads, so a
 * feed must not wait for events on one of them: every other connection of
 * that thread would wait too. A feed with nothing to send suspends its
 * connection instead (MHD_suspend_connection, from its content reader, as
 * libmicrohttpd prescribes) and is put on the list here. One thread waits
 * for commits and resumes the feeds that have something new, or whose
 * keep-alive comment is due, and all of them when the server stops.
 *
 * A commit between a feed's last read and its parking is not lost: a feed
 * parks only if the head this process knows is still at its position, and
 * the waker scans the list after every rise of that head.
 */
#include <pthread.h>

#include "http/http.h"

#define WAKER_WAIT_MS 250 /* keep-alives and a stop are noticed within this */

struct http_feeds {
    td_store *store;
    pthread_t thread;
    pthread_mutex_t lock;
    http_feed *parked;
    bool stopping;
};

/* Takes the feed at *link off the list and resumes it; lock held. */
static void resume(http_feed **link)
{
    http_feed *f = *link;
    *link = f->next;
    f->next = NULL;
    f->parked = false;
    MHD_resume_connection(f->connection);
}

static void *waker_main(void *arg)
{
    http_feeds *feeds = arg;
    int64_t seen = td_store_known_head(feeds->store);
    pthread_mutex_lock(&feeds->lock);
    while (!feeds->stopping) {
        pthread_mutex_unlock(&feeds->lock);
        int64_t head = seen;
        if (td_store_wait(feeds->store, seen, WAKER_WAIT_MS, &head) == 0 && head > seen)
            seen = head;
        td_time now = td_time_now();
        pthread_mutex_lock(&feeds->lock);
        for (http_feed **link = &feeds->parked; *link;) {
            http_feed *f = *link;
            if (feeds->stopping || f->after < seen || now - f->last_sent >= HTTP_FEED_KEEPALIVE_US)
                resume(link);
            else
                link = &f->next;
        }
    }
    while (feeds->parked) /* the streams end once resumed */
        resume(&feeds->parked);
    pthread_mutex_unlock(&feeds->lock);
    return NULL;
}

int http_feeds_start(http_feeds **out, td_store *store)
{
    http_feeds *feeds = calloc(1, sizeof *feeds);
    if (feeds == NULL)
        return TD_ENOMEM;
    feeds->store = store;
    pthread_mutex_init(&feeds->lock, NULL);
    if (pthread_create(&feeds->thread, NULL, waker_main, feeds) != 0) {
        pthread_mutex_destroy(&feeds->lock);
        free(feeds);
        return TD_ERROR;
    }
    *out = feeds;
    return 0;
}

http_feed_parking http_feeds_park(http_feeds *feeds, http_feed *f)
{
    http_feed_parking result = HTTP_FEED_PARKED;
    pthread_mutex_lock(&feeds->lock);
    if (feeds->stopping)
        result = HTTP_FEED_STOPPING;
    else if (td_store_known_head(feeds->store) > f->after)
        result = HTTP_FEED_MISSED; /* committed since the feed last read */
    else {
        f->parked = true;
        f->next = feeds->parked;
        feeds->parked = f;
        MHD_suspend_connection(f->connection);
    }
    pthread_mutex_unlock(&feeds->lock);
    return result;
}

void http_feeds_forget(http_feeds *feeds, http_feed *f)
{
    pthread_mutex_lock(&feeds->lock);
    for (http_feed **link = &feeds->parked; *link; link = &(*link)->next)
        if (*link == f) {
            *link = f->next;
            break;
        }
    pthread_mutex_unlock(&feeds->lock);
}

void http_feeds_stop(http_feeds *feeds)
{
    if (feeds == NULL)
        return;
    pthread_mutex_lock(&feeds->lock);
    bool running = !feeds->stopping;
    feeds->stopping = true;
    pthread_mutex_unlock(&feeds->lock);
    if (running)
        pthread_join(feeds->thread, NULL); /* it resumes every parked feed first */
}

void http_feeds_free(http_feeds *feeds)
{
    if (feeds == NULL)
        return;
    http_feeds_stop(feeds);
    pthread_mutex_destroy(&feeds->lock);
    free(feeds);
}
