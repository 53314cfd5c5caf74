/*
 * feeds.c (shop http): live event feeds with nothing to send are parked,
 * and woken only for what they follow.
 *
 * libmicrohttpd serves all connections on a small pool of threads, so a
 * feed must not wait for events on one of them: every other connection of
 * that thread would wait too. A feed with nothing to send suspends its
 * connection instead (MHD_suspend_connection, from its content reader, as
 * libmicrohttpd prescribes) and is put on the list here. One thread, the
 * waker, waits for commits:
 *
 *   commit ──▶ read the new events' stream, type and user_id once
 *          ──▶ each parked feed: one of them is its ──▶ resume (it reads)
 *                                none is            ──▶ move its position on
 *   keep-alive due, or the server stops ──▶ resume
 *
 * So thousands of feeds that follow their own few streams cost a pass over
 * a list per commit, not a read each. When more events came at once than
 * WAKE_BATCH, every feed behind is resumed and reads for itself.
 *
 * A commit between a feed's last read and its parking is not lost: a feed
 * parks only if the head this process knows is still at its position, and
 * the waker scans the list after every rise of that head. A parked feed's
 * position is the waker's to move (its content reader does not run while
 * it is parked).
 *
 * Feeds are capped in all and per client address (http_feeds_admit).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define WAKER_WAIT_MS  250  /* keep-alives and a stop are noticed within this */
#define WAKE_BATCH     1024 /* new events matched per wake before resuming all */
#define CLIENT_BUCKETS 1024

typedef struct seen_event {
    char stream[TD_STREAM_MAX + 1];
    char type[TD_TYPE_MAX + 1];
    char user[SHOP_ID_LEN + 1];
} seen_event;

typedef struct client_count {
    char client[64];
    unsigned feeds;
    struct client_count *next;
} client_count;

struct http_feeds {
    td_store *store;
    pthread_t thread;
    pthread_mutex_t lock;
    http_feed *parked;
    bool stopping;
    unsigned open, max_feeds, max_per_client;
    client_count *clients[CLIENT_BUCKETS];
    seen_event *batch; /* the waker's */
    size_t batch_count;
    bool batch_full;
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

/* ---- what the new events are ---------------------------------------------------- */

static int note_event(const td_event *ev, json_t *values, void *payload)
{
    http_feeds *feeds = payload;
    seen_event *e = &feeds->batch[feeds->batch_count++];
    const char *user = json_string_value(json_object_get(values, "user_id"));
    snprintf(e->stream, sizeof e->stream, "%s", ev->stream);
    snprintf(e->type, sizeof e->type, "%s", ev->type);
    snprintf(e->user, sizeof e->user, "%s", user ? user : "");
    return 0;
}

/* Reads (from, to]'s events into the batch; batch_full when it could not
 * hold them all (or could not read them). */
static void learn(http_feeds *feeds, int64_t from, int64_t to)
{
    static const char *const fields[] = {"user_id", NULL};
    td_read_query q = TD_READ_QUERY_INIT;
    q.after_position = from;
    q.limit = WAKE_BATCH;
    feeds->batch_count = 0;
    feeds->batch_full = to - from > WAKE_BATCH ||
                        td_store_read_fields(feeds->store, &q, fields, note_event, feeds) < 0;
}

static bool in_category(const char *stream, const char *category)
{
    size_t n = strlen(category);
    return strncmp(stream, category, n) == 0 && stream[n] == '-';
}

/* Whether f would send e (the filters of sse.c). */
static bool follows(const http_feed *f, const seen_event *e)
{
    return (!f->stream || strcmp(f->stream, e->stream) == 0) &&
           (!f->type || strcmp(f->type, e->type) == 0) &&
           (!f->category || in_category(e->stream, f->category)) &&
           (!f->user || strcmp(f->user, e->user) == 0);
}

static bool wanted(const http_feeds *feeds, const http_feed *f)
{
    for (size_t i = 0; i < feeds->batch_count; i++)
        if (follows(f, &feeds->batch[i]))
            return true;
    return false;
}

/* ---- the waker ---------------------------------------------------------------------- */

/* After the head rose from `from` to `seen`: resume the feeds that want
 * something new, move the others on; and those whose keep-alive is due.
 * Lock held. */
static void wake(http_feeds *feeds, int64_t from, int64_t seen, td_time now)
{
    for (http_feed **link = &feeds->parked; *link;) {
        http_feed *f = *link;
        bool behind = f->after < seen;
        if (behind && !feeds->batch_full && f->after >= from && !wanted(feeds, f)) {
            f->after = seen; /* nothing it follows came */
            behind = false;
        }
        if (feeds->stopping || behind || now - f->last_sent >= HTTP_FEED_KEEPALIVE_US)
            resume(link);
        else
            link = &f->next;
    }
}

static void *waker_main(void *arg)
{
    http_feeds *feeds = arg;
    int64_t seen = td_store_known_head(feeds->store);
    pthread_mutex_lock(&feeds->lock);
    while (!feeds->stopping) {
        pthread_mutex_unlock(&feeds->lock);
        int64_t head = seen, from = seen;
        if (td_store_wait(feeds->store, seen, WAKER_WAIT_MS, &head) == 0 && head > seen)
            seen = head;
        pthread_mutex_lock(&feeds->lock);
        bool anyone = feeds->parked != NULL; /* else nothing to match: no read */
        pthread_mutex_unlock(&feeds->lock);
        feeds->batch_count = 0;
        feeds->batch_full = !anyone; /* unread: a feed that parks meanwhile is resumed */
        if (seen > from && anyone)
            learn(feeds, from, seen);
        td_time now = td_time_now();
        pthread_mutex_lock(&feeds->lock);
        wake(feeds, from, seen, now);
    }
    while (feeds->parked) /* the streams end once resumed */
        resume(&feeds->parked);
    pthread_mutex_unlock(&feeds->lock);
    return NULL;
}

int http_feeds_start(http_feeds **out, td_store *store, unsigned max_feeds,
                     unsigned max_feeds_per_client)
{
    http_feeds *feeds = calloc(1, sizeof *feeds);
    seen_event *batch = calloc(WAKE_BATCH, sizeof *batch);
    if (feeds == NULL || batch == NULL) {
        free(feeds);
        free(batch);
        return TD_ENOMEM;
    }
    feeds->store = store;
    feeds->batch = batch;
    feeds->max_feeds = max_feeds;
    feeds->max_per_client = max_feeds_per_client;
    pthread_mutex_init(&feeds->lock, NULL);
    if (pthread_create(&feeds->thread, NULL, waker_main, feeds) != 0) {
        pthread_mutex_destroy(&feeds->lock);
        free(batch);
        free(feeds);
        return TD_ERROR;
    }
    *out = feeds;
    return 0;
}

/* ---- caps -------------------------------------------------------------------------------- */

static client_count **bucket_of(http_feeds *feeds, const char *client)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = client; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    client_count **link = &feeds->clients[h % CLIENT_BUCKETS];
    while (*link && strcmp((*link)->client, client) != 0)
        link = &(*link)->next;
    return link;
}

int http_feeds_admit(http_feeds *feeds, http_feed *f)
{
    int error = 0;
    pthread_mutex_lock(&feeds->lock);
    client_count **link = bucket_of(feeds, f->client), *c = *link;
    if (feeds->stopping || feeds->open >= feeds->max_feeds ||
        (c && c->feeds >= feeds->max_per_client))
        error = TD_EBUSY;
    else if (c == NULL && (c = calloc(1, sizeof *c)) != NULL) {
        snprintf(c->client, sizeof c->client, "%s", f->client);
        *link = c;
    }
    if (error == 0 && c == NULL)
        error = TD_ENOMEM;
    if (error == 0) {
        c->feeds++;
        feeds->open++;
    }
    pthread_mutex_unlock(&feeds->lock);
    return error;
}

unsigned http_feeds_open(http_feeds *feeds)
{
    pthread_mutex_lock(&feeds->lock);
    unsigned n = feeds->open;
    pthread_mutex_unlock(&feeds->lock);
    return n;
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
    client_count **link = bucket_of(feeds, f->client), *c = *link;
    if (c && --c->feeds == 0) {
        *link = c->next;
        free(c);
    }
    feeds->open--;
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
    for (size_t i = 0; i < CLIENT_BUCKETS; i++)
        while (feeds->clients[i]) {
            client_count *c = feeds->clients[i];
            feeds->clients[i] = c->next;
            free(c);
        }
    pthread_mutex_destroy(&feeds->lock);
    free(feeds->batch);
    free(feeds);
}
