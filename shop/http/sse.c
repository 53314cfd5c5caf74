/*
 * sse.c (shop http): GET /events/stream, committed events as Server-Sent
 * Events (id: position, event: type, data: the envelope as JSON).
 *
 * Filters: stream, type, category. Start: after=POS (after=0: from the
 * beginning), or a reconnect's Last-Event-ID (resume after it, no gap);
 * without either, the feed starts at the head (only what comes next).
 *
 * The feed is pulled: libmicrohttpd asks for the next block only when the
 * client's socket takes it, and each block is read from the store on demand.
 * A slow client therefore holds at most one block in memory and costs the
 * shop nothing; one that stops reading is dropped by the connection timeout.
 * With nothing to send, the feed parks its connection (feeds.c) instead of
 * waiting on one of the server's few threads, and is resumed by the next
 * commit after its position, or after 15 s to send a comment that keeps
 * proxies from closing the stream (and finds a client that went away).
 * Events come at the schema the shop reads, personal fields opened (a
 * forgotten customer's read as null); one it cannot read is announced as
 * `event: unreadable` and passed over.
 *
 * Administrators follow the whole log. A customer follows their own
 * orders: events of category order whose user_id is theirs, everything
 * else passed over as if filtered out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define SSE_PAGE         100
#define SSE_MISSED_READS 3 /* rereads when commits keep coming while parking */

typedef struct sse {
    td_store *store;
    shop *shop;
    char user[SHOP_ID_LEN + 1]; /* a customer's feed: their orders only; "" for all */
    char *stream, *type, *category;
    http_feed feed;    /* position (after) and last_sent, and the parking */
    size_t read;       /* events the last page read */
    int64_t last_read; /* ... and the position of its last */
    char *buf;
    size_t len, off;
    const atomic_bool *stopping;
    http_feeds *feeds;
    bool admitted; /* counted against the caps (feeds.c) */
} sse;

/* Appends one SSE message (the buffer grows as needed). */
static int append_message(sse *s, int64_t position, const char *type, const char *json)
{
    size_t need = s->len + strlen(json) + strlen(type) + 64;
    char *grown = realloc(s->buf, need);
    if (grown == NULL)
        return TD_ENOMEM;
    s->buf = grown;
    s->len += (size_t)snprintf(s->buf + s->len, need - s->len, "id: %lld\nevent: %s\ndata: %s\n\n",
                               (long long)position, type, json);
    s->feed.after = position;
    return 0;
}

/* An event the shop cannot read (upcast.h) is passed over with an
 * `unreadable` message naming it, so that the feed (and a reconnect) goes
 * on past it. */
static int append_unreadable(sse *s, const td_event *ev)
{
    json_t *why =
        json_pack("{s:I,s:s,s:i,s:s}", "position", (json_int_t)ev->position, "type", ev->type,
                  "schema_version", ev->schema_version, "error", td_error_last());
    char *json = why ? json_dumps(why, JSON_COMPACT) : NULL;
    json_decref(why);
    int error = json ? append_message(s, ev->position, "unreadable", json) : TD_ENOMEM;
    free(json);
    return error;
}

/* Whether a customer's feed shows the event: one of their orders'. */
static bool theirs(const sse *s, json_t *envelope)
{
    const char *user =
        json_string_value(json_object_get(json_object_get(envelope, "data"), "user_id"));
    return s->user[0] == '\0' || (user && strcmp(user, s->user) == 0);
}

static int append_event(const td_event *stored, void *payload)
{
    sse *s = payload;
    td_event *up = NULL;
    json_t *envelope = NULL;
    char *json = NULL;
    s->read++;
    s->last_read = stored->position;
    int error = td_upcast(td_store_upcasters(s->store), stored, &up);
    if (error == TD_EVERSION)
        return s->user[0] ? 0 : append_unreadable(s, stored);
    const td_event *ev = up ? up : stored;
    if (error == 0)
        error = http_event_json(s->shop, ev, &envelope);
    if (error == 0 && theirs(s, envelope) && (json = json_dumps(envelope, JSON_COMPACT)) == NULL)
        error = TD_ENOMEM;
    if (error == 0 && json)
        error = append_message(s, ev->position, ev->type, json);
    free(json);
    json_decref(envelope);
    td_event_free(up);
    return error;
}

/* Fills the buffer with the next page; returns < 0 on a store failure. */
static int refill(sse *s)
{
    int64_t head = td_store_known_head(s->store); /* no query: waits keep it fresh */
    td_read_query q = TD_READ_QUERY_INIT;
    q.after_position = s->feed.after;
    q.stream = s->stream;
    q.type = s->type;
    q.category = s->category;
    q.limit = SSE_PAGE;
    s->len = s->off = 0;
    s->read = 0;
    int error = td_store_read_stored(s->store, &q, append_event, s); /* upcast one by one */
    if (error == 0 && s->read < SSE_PAGE && head > s->feed.after)
        s->feed.after = head; /* nothing more matched up to the head */
    else if (error == 0 && s->last_read > s->feed.after)
        s->feed.after = s->last_read; /* a customer's feed passed over others' events */
    return error;
}

static void keep_alive(sse *s)
{
    free(s->buf);
    s->buf = strdup(": keep-alive\n\n");
    s->len = s->buf ? strlen(s->buf) : 0;
    s->off = 0;
}

static ssize_t next_block(void *cls, uint64_t pos, char *out, size_t max)
{
    sse *s = cls;
    (void)pos;
    if (atomic_load(s->stopping))
        return MHD_CONTENT_READER_END_OF_STREAM;
    for (int reads = 0; s->off == s->len; reads++) {
        if (refill(s) < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->off < s->len)
            break;
        if (td_time_now() - s->feed.last_sent >= HTTP_FEED_KEEPALIVE_US) {
            keep_alive(s);
            break;
        }
        if (reads == SSE_MISSED_READS)
            return 0; /* called again soon */
        http_feed_parking parked = http_feeds_park(s->feeds, &s->feed);
        if (parked == HTTP_FEED_STOPPING)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (parked == HTTP_FEED_PARKED)
            return 0; /* resumed when there is something to send */
    }
    size_t n = s->len - s->off < max ? s->len - s->off : max;
    if (n > 0) {
        memcpy(out, s->buf + s->off, n);
        s->off += n;
        s->feed.last_sent = td_time_now();
    }
    return (ssize_t)n;
}

static void release(void *cls)
{
    sse *s = cls;
    if (s->admitted)
        http_feeds_forget(s->feeds, &s->feed);
    free(s->stream);
    free(s->type);
    free(s->category);
    free(s->buf);
    free(s);
}

static char *copy(const char *s)
{
    return s ? strdup(s) : NULL;
}

bool http_parse_position(const char *text, int64_t *out)
{
    int64_t v = 0;
    if (text == NULL || text[0] == '\0')
        return false;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9' || v > (INT64_MAX - (*c - '0')) / 10)
            return false;
        v = v * 10 + (*c - '0');
    }
    *out = v;
    return true;
}

/* Where the feed starts: Last-Event-ID, else ?after=, else the head. */
static int start_position(http_request *req, int64_t *after, http_response *res)
{
    const char *resume =
        MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, "Last-Event-ID");
    const char *text = resume ? resume : http_query(req, "after");
    if (text == NULL)
        return td_store_head(req->store, after) < 0
               ? http_problem(res, 503, "unavailable", NULL, "%s", td_error_last()),
               -1 : 0;
    if (!http_parse_position(text, after))
        return http_problem(res, 400, "validation_failed", NULL,
                            "after and Last-Event-ID must be positions (whole numbers >= 0)"),
               -1;
    return 0;
}

int http_event_stream(http_request *req, http_response *res, const atomic_bool *stopping,
                      http_feeds *feeds, struct MHD_Response **out)
{
    td_read_query probe = TD_READ_QUERY_INIT;
    int64_t after = 0;
    bool customer = req->who.role == SHOP_ROLE_CUSTOMER;
    probe.stream = http_query(req, "stream");
    probe.type = http_query(req, "type");
    probe.category = customer ? "order" : http_query(req, "category");
    if ((probe.stream && td_stream_check(probe.stream) < 0) ||
        (probe.type && td_type_check(probe.type) < 0) ||
        (probe.category && td_category_check(probe.category) < 0))
        return http_problem(res, 400, "validation_failed", NULL, "%s", td_error_last());
    if (start_position(req, &after, res) < 0)
        return 0;
    sse *s = calloc(1, sizeof *s);
    if (s == NULL)
        return http_problem(res, 500, "internal_error", NULL, "out of memory");
    *s = (sse){.store = req->store,
               .shop = req->shop,
               .stream = copy(probe.stream),
               .type = copy(probe.type),
               .category = copy(probe.category),
               .feed = {.connection = req->connection, .after = after, .last_sent = td_time_now()},
               .stopping = stopping,
               .feeds = feeds};
    if (customer)
        memcpy(s->user, req->who.user_id, sizeof s->user);
    s->feed.stream = s->stream; /* what the waker matches new events against */
    s->feed.type = s->type;
    s->feed.category = s->category;
    s->feed.user = customer ? s->user : NULL;
    snprintf(s->feed.client, sizeof s->feed.client, "%s", req->client);
    s->buf = strdup("retry: 1000\n\n"); /* reconnect soon; Last-Event-ID resumes */
    s->len = s->buf ? strlen(s->buf) : 0;
    if (!s->buf || (probe.stream && !s->stream) || (probe.type && !s->type) ||
        (probe.category && !s->category)) {
        release(s);
        return http_problem(res, 500, "internal_error", NULL, "out of memory");
    }
    if (http_feeds_admit(feeds, &s->feed) < 0) {
        release(s);
        res->retry_after = 5;
        return http_problem(res, 503, "too_many_feeds", NULL,
                            "the server follows as many live feeds as it may, for you or in "
                            "all; try again later");
    }
    s->admitted = true;
    *out = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, next_block, s, release);
    if (*out == NULL) {
        release(s);
        return http_problem(res, 500, "internal_error", NULL, "out of memory");
    }
    MHD_add_response_header(*out, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(*out, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    res->status = 200;
    return 0;
}
