/*
 * status.c (shop http): what the console shows of delivery and the store,
 * for administrators: GET /subscriptions (each subscription's and saga's
 * position, lag in events and seconds, handler latency, retries, failures
 * and dead letters) and GET /store (head, size, events by type, the
 * writer's load). Durable figures come from the store; the live ones
 * (latency, lag in seconds, retries) from this process's metrics, so a
 * subscription that runs elsewhere has them as null.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define MAX_BOUNDS 32

/* What the metrics say of one subscription. */
typedef struct figures {
    char name[128];
    bool live; /* some series of this process names it */
    bool has_lag_seconds;
    double lag_seconds, retries, failures, latency_sum;
    uint64_t latency_count;
    double bounds[MAX_BOUNDS];
    uint64_t buckets[MAX_BOUNDS + 1]; /* the last: above every bound */
    size_t bound_count;
} figures;

typedef struct gathered {
    figures *subs;
    size_t count;
    json_t *list;
    int64_t head;
} gathered;

static figures *figures_of(gathered *g, const char *name)
{
    for (size_t i = 0; i < g->count; i++)
        if (strcmp(g->subs[i].name, name) == 0)
            return &g->subs[i];
    return NULL;
}

static int add_status(const char *name, const td_subscription_status *st, void *payload)
{
    gathered *g = payload;
    figures *grown = realloc(g->subs, (g->count + 1) * sizeof *grown);
    if (grown == NULL)
        return TD_ENOMEM;
    g->subs = grown;
    memset(&g->subs[g->count], 0, sizeof *grown);
    snprintf(g->subs[g->count++].name, sizeof grown->name, "%s", name);
    char whole[TD_SUBSCRIPTION_NAME_MAX + 1];
    td_partition part;
    bool partitioned = td_partition_parse(name, whole, sizeof whole, &part);
    json_t *entry = json_pack("{s:s,s:s?,s:I,s:I,s:I,s:I,s:s?}", "name", name, "saga",
                              strncmp(whole, "saga.", 5) == 0 ? whole + 5 : NULL, "position",
                              (json_int_t)st->position, "lag_events", (json_int_t)st->lag_events,
                              "in_retry", (json_int_t)st->in_retry, "dead_letters",
                              (json_int_t)st->dead_letters, "held_by", st->holder);
    if (entry && partitioned)
        json_object_set_new(entry, "partition",
                            json_pack("{s:s,s:I,s:I}", "of", whole, "index", (json_int_t)part.index,
                                      "count", (json_int_t)part.count));
    if (st->head > g->head)
        g->head = st->head;
    return entry && json_array_append_new(g->list, entry) == 0 ? 0 : TD_ENOMEM;
}

static int note_lag(const td_metric_sample *s, void *payload)
{
    figures *f = s->label_count ? figures_of(payload, s->labels[0]) : NULL;
    if (f) {
        f->live = f->has_lag_seconds = true;
        f->lag_seconds = s->value;
    }
    return 0;
}

static int note_retries(const td_metric_sample *s, void *payload)
{
    figures *f = s->label_count ? figures_of(payload, s->labels[0]) : NULL;
    if (f)
        f->retries += s->value;
    return 0;
}

static int note_failures(const td_metric_sample *s, void *payload)
{
    figures *f = s->label_count ? figures_of(payload, s->labels[0]) : NULL;
    if (f)
        f->failures += s->value;
    return 0;
}

/* Latency series per event type, merged per subscription. */
static int note_latency(const td_metric_sample *s, void *payload)
{
    figures *f = s->label_count ? figures_of(payload, s->labels[0]) : NULL;
    if (f == NULL || s->bound_count > MAX_BOUNDS)
        return 0;
    f->live = true;
    f->bound_count = s->bound_count;
    memcpy(f->bounds, s->bounds, s->bound_count * sizeof *s->bounds);
    uint64_t below = 0;
    for (size_t b = 0; b < s->bound_count; b++) {
        f->buckets[b] += s->buckets[b];
        below += s->buckets[b];
    }
    f->buckets[s->bound_count] += s->count - below;
    f->latency_count += s->count;
    f->latency_sum += s->value;
    return 0;
}

/* The q-quantile as Prometheus estimates it: linear within its bucket; an
 * observation above the last bound reads as that bound. */
static double quantile(const figures *f, double q)
{
    double rank = q * (double)f->latency_count, seen = 0, lower = 0;
    for (size_t b = 0; b < f->bound_count; b++) {
        double n = (double)f->buckets[b];
        if (seen + n >= rank && n > 0)
            return lower + (f->bounds[b] - lower) * (rank - seen) / n;
        seen += n;
        lower = f->bounds[b];
    }
    return f->bound_count ? f->bounds[f->bound_count - 1] : 0;
}

static json_t *latency_json(const figures *f)
{
    if (f->latency_count == 0)
        return json_null();
    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)f->latency_count,
                     "sum_seconds", f->latency_sum, "mean_ms",
                     f->latency_sum / (double)f->latency_count * 1e3, "p50_ms",
                     quantile(f, 0.5) * 1e3, "p95_ms", quantile(f, 0.95) * 1e3, "p99_ms",
                     quantile(f, 0.99) * 1e3);
}

/* Adds the live figures to each entry of the list. */
static int add_figures(gathered *g)
{
    for (size_t i = 0; i < g->count; i++) {
        const figures *f = &g->subs[i];
        json_t *entry = json_array_get(g->list, i);
        int error = json_object_update_new(
            entry,
            json_pack("{s:b,s:o,s:o,s:o,s:o}", "live", f->live, "lag_seconds",
                      f->has_lag_seconds ? json_real(f->lag_seconds) : json_null(), "retries",
                      f->live ? json_integer((json_int_t)f->retries) : json_null(), "failures",
                      f->live ? json_integer((json_int_t)f->failures) : json_null(), "latency",
                      latency_json(f)));
        if (error < 0)
            return TD_ENOMEM;
    }
    return 0;
}

static int read_family(td_metrics *m, const char *name, td_metric_sample_fn fn, gathered *g)
{
    int error = td_metrics_read(m, name, fn, g);
    return error == TD_ENOTFOUND ? 0 : error; /* no subscription runs here */
}

static int get_subscriptions(http_request *req, http_response *res)
{
    gathered g = {NULL, 0, json_array(), 0};
    td_metrics *m = http_server_metrics(req->server);
    int error = g.list ? td_subscriptions_list(req->store, add_status, &g) : TD_ENOMEM;
    if (error == 0 && m) {
        td_metrics_collect(m); /* fresh lag gauges */
        error = read_family(m, "subscription_lag_seconds", note_lag, &g);
        if (error == 0)
            error = read_family(m, "event_retries_total", note_retries, &g);
        if (error == 0)
            error = read_family(m, "event_handler_failures_total", note_failures, &g);
        if (error == 0)
            error = read_family(m, "event_processing_duration_seconds", note_latency, &g);
    }
    if (error == 0)
        error = add_figures(&g);
    if (error == 0 && g.head == 0)
        error = td_store_head(req->store, &g.head);
    free(g.subs);
    if (error < 0) {
        json_decref(g.list);
        return http_problem(res, 500, "internal_error", NULL, "%s", td_error_last());
    }
    return http_json(res, 200,
                     json_pack("{s:I,s:o}", "head", (json_int_t)g.head, "subscriptions", g.list));
}

static int add_type(const char *type, int64_t count, void *payload)
{
    json_t *entry = json_pack("{s:s,s:I}", "type", type, "count", (json_int_t)count);
    return entry && json_array_append_new(payload, entry) == 0 ? 0 : TD_ENOMEM;
}

static json_t *writer_json(const td_writer_stats *w)
{
    return json_pack("{s:I,s:I,s:I,s:f,s:f,s:I,s:f}", "commits", (json_int_t)w->commits, "units",
                     (json_int_t)w->units, "units_failed", (json_int_t)w->units_failed,
                     "busy_seconds", w->busy_seconds, "commit_seconds", w->commit_seconds, "syncs",
                     (json_int_t)w->syncs, "sync_seconds", w->sync_seconds);
}

static int get_store(http_request *req, http_response *res)
{
    td_store_stats st;
    td_writer_stats w;
    td_store_health h;
    json_t *types = json_array();
    int error = types ? td_store_stats_get(req->store, &st) : TD_ENOMEM;
    if (error == 0)
        error = td_store_type_counts(req->store, add_type, types);
    if (error == 0)
        error = td_store_writer_stats(req->store, &w);
    if (error < 0) {
        json_decref(types);
        return http_problem(res, 500, "internal_error", NULL, "%s", td_error_last());
    }
    td_store_health_get(req->store, &h);
    const char *state = h.state == TD_STORE_OK     ? "ok"
                        : h.state == TD_STORE_FULL ? "storage_full"
                                                   : "failed";
    return http_json(res, 200,
                     json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:o,s:o}", "state", state, "head",
                               (json_int_t)st.head, "events", (json_int_t)st.events, "streams",
                               (json_int_t)st.streams, "types", (json_int_t)st.types, "documents",
                               (json_int_t)st.documents, "bytes", (json_int_t)st.bytes,
                               "schema_version", st.schema_version, "event_types", types, "writer",
                               writer_json(&w)));
}

const http_route http_status_routes[] = {
    {"GET", "/subscriptions", "/subscriptions", SHOP_ROLE_ADMIN, get_subscriptions, 0, 0},
    {"GET", "/store", "/store", SHOP_ROLE_ADMIN, get_store, 0, 0},
    {NULL, NULL, NULL, 0, NULL, 0, 0},
};
