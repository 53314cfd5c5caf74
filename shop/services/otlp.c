/*
 * otlp.c (shop): the OTLP/HTTP JSON span exporter (otlp.h).
 *
 * The queue is a ring of span texts (each a Span object in OTLP/JSON, made
 * by td_span_otlp_json on the thread that finished the span). The sending
 * thread takes up to a batch at a time and wraps them in one
 * ExportTraceServiceRequest:
 *   {"resourceSpans":[{"resource":{"attributes":[service.name]},
 *     "scopeSpans":[{"scope":{"name":"libtidings"},"spans":[…]}]}]}
 */
#include "services/otlp.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct shop_otlp {
    char url[1024];
    char service[128];
    size_t batch;
    int interval_ms, timeout_ms;
    td_metric *exported_total, *dropped_total; /* NULL without metrics */

    pthread_mutex_t lock;
    pthread_cond_t wake;
    char **ring; /* queue_cap slots, owned texts */
    size_t queue_cap, head, count;
    bool stopping;
    pthread_t thread;
    atomic_uint_fast64_t dropped, exported;
};

static void count(shop_otlp *o, bool sent, size_t n)
{
    if (n == 0)
        return;
    atomic_fetch_add(sent ? &o->exported : &o->dropped, n);
    td_metric *m = sent ? o->exported_total : o->dropped_total;
    if (m)
        (void)td_metric_add(m, NULL, (double)n);
}

void shop_otlp_export(const td_span *span, void *payload)
{
    shop_otlp *o = payload;
    char *text = NULL;
    if (td_span_otlp_json(&text, span) < 0) {
        count(o, false, 1);
        return;
    }
    pthread_mutex_lock(&o->lock);
    bool kept = o->count < o->queue_cap && !o->stopping;
    if (kept) {
        o->ring[(o->head + o->count) % o->queue_cap] = text;
        if (++o->count >= o->batch)
            pthread_cond_signal(&o->wake);
    }
    pthread_mutex_unlock(&o->lock);
    if (!kept) {
        td_free(text);
        count(o, false, 1);
    }
}

uint64_t shop_otlp_dropped(shop_otlp *o)
{
    return atomic_load(&o->dropped);
}

static size_t discard(char *data, size_t size, size_t n, void *payload)
{
    (void)data;
    (void)payload;
    return size * n;
}

/* The request body for texts[0..n): owned by the caller (free), or NULL. */
static char *request_body(const shop_otlp *o, char **texts, size_t n)
{
    size_t len = 256 + strlen(o->service);
    for (size_t i = 0; i < n; i++)
        len += strlen(texts[i]) + 1;
    char *body = malloc(len);
    if (body == NULL)
        return NULL;
    size_t at = (size_t)snprintf(body, len,
                                 "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":"
                                 "\"service.name\",\"value\":{\"stringValue\":\"%s\"}}]},"
                                 "\"scopeSpans\":[{\"scope\":{\"name\":\"libtidings\"},\"spans\":[",
                                 o->service);
    for (size_t i = 0; i < n; i++) {
        size_t t = strlen(texts[i]);
        if (i > 0)
            body[at++] = ',';
        memcpy(body + at, texts[i], t);
        at += t;
    }
    snprintf(body + at, len - at, "]}]}]}");
    return body;
}

/* POSTs one batch; true if the collector took it (2xx). */
static bool post(shop_otlp *o, CURL *curl, char **texts, size_t n, int timeout_ms)
{
    char *body = request_body(o, texts, n);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    long status = 0;
    bool ok = false;
    if (body && headers) {
        curl_easy_setopt(curl, CURLOPT_URL, o->url);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        ok = curl_easy_perform(curl) == CURLE_OK &&
             curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
             status >= 200 && status < 300;
    }
    curl_slist_free_all(headers);
    free(body);
    return ok;
}

/* Takes up to batch texts off the queue into texts (lock held). */
static size_t take(shop_otlp *o, char **texts)
{
    size_t n = 0;
    while (n < o->batch && o->count > 0) {
        texts[n++] = o->ring[o->head];
        o->head = (o->head + 1) % o->queue_cap;
        o->count--;
    }
    return n;
}

/* Drops every queued span, counted (lock held). */
static void drop_queued(shop_otlp *o)
{
    size_t n = o->count;
    for (; o->count > 0; o->count--) {
        td_free(o->ring[o->head]);
        o->head = (o->head + 1) % o->queue_cap;
    }
    count(o, false, n);
}

static void deadline_after(struct timespec *at, int ms)
{
    clock_gettime(CLOCK_REALTIME, at);
    at->tv_sec += ms / 1000;
    at->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (at->tv_nsec >= 1000000000L) {
        at->tv_sec++;
        at->tv_nsec -= 1000000000L;
    }
}

static void *run(void *payload)
{
    shop_otlp *o = payload;
    CURL *curl = curl_easy_init();
    char **texts = calloc(o->batch, sizeof *texts);
    pthread_mutex_lock(&o->lock);
    for (;;) {
        /* wait for a full batch, or for the interval after the first span */
        while (o->count == 0 && !o->stopping)
            pthread_cond_wait(&o->wake, &o->lock);
        if (o->count < o->batch && !o->stopping) {
            struct timespec at;
            deadline_after(&at, o->interval_ms);
            while (o->count < o->batch && !o->stopping &&
                   pthread_cond_timedwait(&o->wake, &o->lock, &at) == 0) {
            }
        }
        bool last = o->stopping;
        size_t n = texts ? take(o, texts) : 0;
        pthread_mutex_unlock(&o->lock);
        bool sent = n > 0 && curl && post(o, curl, texts, n, o->timeout_ms);
        count(o, sent, n);
        for (size_t i = 0; i < n; i++)
            td_free(texts[i]);
        pthread_mutex_lock(&o->lock);
        /* on the way out, what the last request could not take is dropped;
         * so is everything when there was no memory for a batch */
        if (last || texts == NULL)
            drop_queued(o);
        if (last)
            break;
    }
    pthread_mutex_unlock(&o->lock);
    free(texts);
    if (curl)
        curl_easy_cleanup(curl);
    return NULL;
}

int shop_otlp_start(shop_otlp **out, const shop_otlp_options *opts)
{
    *out = NULL;
    const char *endpoint = opts->endpoint;
    size_t len = endpoint ? strlen(endpoint) : 0;
    if (len == 0 || (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0))
        return TD_EINVAL;
    shop_otlp *o = calloc(1, sizeof *o);
    if (o == NULL)
        return TD_ENOMEM;
    while (len > 0 && endpoint[len - 1] == '/')
        len--;
    bool full = len >= 10 && strncmp(endpoint + len - 10, "/v1/traces", 10) == 0;
    snprintf(o->url, sizeof o->url, "%.*s%s", (int)len, endpoint, full ? "" : "/v1/traces");
    snprintf(o->service, sizeof o->service, "%s", opts->service_name ? opts->service_name : "shop");
    o->queue_cap = opts->queue ? opts->queue : 2048;
    o->batch = opts->batch ? opts->batch : 512;
    o->interval_ms = opts->interval_ms > 0 ? opts->interval_ms : 1000;
    o->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    o->ring = calloc(o->queue_cap, sizeof *o->ring);
    int error = o->ring ? 0 : TD_ENOMEM;
    if (error == 0 && opts->metrics)
        error = td_metrics_counter(&o->exported_total, opts->metrics, "otlp_spans_exported_total",
                                   "Spans an OpenTelemetry collector took.", NULL);
    if (error == 0 && opts->metrics)
        error = td_metrics_counter(&o->dropped_total, opts->metrics, "otlp_spans_dropped_total",
                                   "Spans dropped: the queue for the collector was full, or the "
                                   "collector refused them or did not answer in time.",
                                   NULL);
    if (error == 0 && opts->metrics) /* both shown from the start, at 0 */
        error = td_metric_add(o->exported_total, NULL, 0) < 0 ||
                        td_metric_add(o->dropped_total, NULL, 0) < 0
                    ? TD_ENOMEM
                    : 0;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->wake, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (error == 0 && pthread_create(&o->thread, NULL, run, o) != 0)
        error = TD_ENOMEM;
    if (error < 0) {
        pthread_cond_destroy(&o->wake);
        pthread_mutex_destroy(&o->lock);
        free(o->ring);
        free(o);
        return error;
    }
    *out = o;
    return 0;
}

void shop_otlp_stop(shop_otlp *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->lock);
    o->stopping = true;
    pthread_cond_signal(&o->wake);
    pthread_mutex_unlock(&o->lock);
    pthread_join(o->thread, NULL);
    pthread_cond_destroy(&o->wake);
    pthread_mutex_destroy(&o->lock);
    free(o->ring);
    free(o);
}
