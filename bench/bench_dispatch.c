/*
 * bench_dispatch.c: delivery through a subscription.
 *
 * Latency: producer threads append single events at a fixed total rate
 * (1,000 and 10,000 events/s); a commit listener stamps each position with
 * the time its commit became durable, and a no-op handler records how long
 * after that it ran. Percentiles are over each run's events after a short
 * warm-up; each figure is the median over runs. bench_latency() runs the
 * same on any store URL, and with `apart` the subscription reads through a
 * second handle on the store, which learns of commits only as another
 * process would (on PostgreSQL: LISTEN/NOTIFY; bench_pg.c uses it).
 *
 * Throughput: a store filled with events of 100 streams is drained by a
 * subscription with a no-op handler; the baseline is reading the same
 * events forward with td_store_read, the floor of what delivery must do.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "tidings/tidings.h"

#define PRODUCERS       8
#define RUN_SECONDS     1.5
#define WARMUP_FRACTION 0.1
#define DRAIN_EVENTS    200000

typedef struct latency_run {
    td_store *store; /* the producers' */
    double rate;
    int64_t capacity;
    double *committed_at; /* by position: when its commit was durable */
    double *handled_at;   /* by position: when the handler ran */
    atomic_int failures;
} latency_run;

static void on_commit(td_store *store, int64_t first, int64_t last, void *payload)
{
    latency_run *run = payload;
    double now = bench_now();
    (void)store;
    for (int64_t p = first; p <= last && p < run->capacity; p++)
        run->committed_at[p] = now;
}

static int stamp(td_delivery *d, const td_event *ev, void *payload)
{
    latency_run *run = payload;
    (void)d;
    if (ev->position < run->capacity)
        run->handled_at[ev->position] = bench_now();
    return 0;
}

typedef struct producer {
    latency_run *run;
    int index;
} producer;

static void sleep_until(double t)
{
    double wait = t - bench_now();
    if (wait <= 0)
        return;
    struct timespec ts = {(time_t)wait, (long)((wait - floor(wait)) * 1e9)};
    nanosleep(&ts, NULL);
}

static void *produce(void *arg)
{
    producer *p = arg;
    char stream[32];
    double interval = PRODUCERS / p->run->rate;
    int count = (int)(p->run->rate * RUN_SECONDS / PRODUCERS);
    double next = bench_now() + interval * p->index / PRODUCERS;
    snprintf(stream, sizeof stream, "order-%d", p->index);
    for (int i = 0; i < count; i++, next += interval) {
        sleep_until(next);
        td_event ev;
        td_event_init(&ev);
        ev.type = "OrderPlaced";
        ev.data = "{\"total_amount\":1999}";
        if (td_store_append(p->run->store, stream, TD_EXPECT_ANY, &ev, 1) < 0)
            atomic_fetch_add(&p->run->failures, 1);
    }
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One run at `rate` on a fresh store at url (NULL: a SQLite file in a
 * temporary folder): fills p50, p95, p99 and max (µs). */
static int latency_once(const char *url, bool apart, double rate, double out[4])
{
    char path[4200], *dir = url ? NULL : bench_tmpdir();
    latency_run run = {.rate = rate, .capacity = (int64_t)(rate * RUN_SECONDS) + 16};
    td_store *reading = NULL;
    td_subscription *sub = NULL;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    pthread_t threads[PRODUCERS];
    producer producers[PRODUCERS];
    int error = url || dir ? 0 : -1;
    run.committed_at = calloc((size_t)run.capacity, sizeof(double));
    run.handled_at = calloc((size_t)run.capacity, sizeof(double));
    if (run.committed_at == NULL || run.handled_at == NULL)
        error = -1;
    snprintf(path, sizeof path, "sqlite:%s/latency.db", dir ? dir : "/tmp");
    opts.name = "bench";
    opts.lanes = 2;
    if (error == 0)
        error = td_store_open(&run.store, url ? url : path, NULL);
    if (error == 0 && apart)
        error = td_store_open(&reading, url ? url : path, NULL);
    if (error == 0)
        error = td_store_on_commit(run.store, on_commit, &run);
    if (error == 0)
        error = td_subscription_new(&sub, apart ? reading : run.store, &opts, stamp, &run);
    if (error == 0)
        error = td_subscription_start(sub);
    for (int i = 0; error == 0 && i < PRODUCERS; i++) {
        producers[i] = (producer){&run, i};
        pthread_create(&threads[i], NULL, produce, &producers[i]);
    }
    for (int i = 0; error == 0 && i < PRODUCERS; i++)
        pthread_join(threads[i], NULL);
    int64_t head = 0;
    if (error == 0 && (error = td_store_head(run.store, &head)) == 0)
        error = td_subscription_wait_until(sub, head, 30000);
    td_subscription_free(sub);
    td_store_free(reading);
    td_store_free(run.store); /* its commit listener has run for every commit */
    if (error == 0 && atomic_load(&run.failures) == 0) {
        /* Apart, a handler can run before the producers' store has told its
         * listener of the commit: that latency is under the clock's reach. */
        int64_t from = 1 + (int64_t)(head * WARMUP_FRACTION), n = 0;
        double *sorted = calloc((size_t)head + 1, sizeof(double));
        for (int64_t p = from; sorted && p <= head && p < run.capacity; p++)
            sorted[n++] = fmax(0, run.handled_at[p] - run.committed_at[p]) * 1e6;
        if (sorted && n > 0) {
            qsort(sorted, (size_t)n, sizeof(double), by_value);
            out[0] = sorted[n / 2];
            out[1] = sorted[(int64_t)(n * 0.95)];
            out[2] = sorted[(int64_t)(n * 0.99)];
            out[3] = sorted[n - 1];
        } else {
            error = -1;
        }
        free(sorted);
    } else if (error == 0) {
        error = -1;
    }
    free(run.committed_at);
    free(run.handled_at);
    bench_rmdir(dir);
    return error;
}

int bench_latency(const char *url, bool apart, double rate, const char *label, double *p99_out)
{
    double runs[4][BENCH_RUNS], figure[4];
    static const char *names[4] = {"p50", "p95", "p99", "max"};
    for (int r = 0; r < BENCH_RUNS; r++) {
        double out[4] = {0};
        char fresh[4200];
        if (url)
            bench_fresh_url(fresh, sizeof fresh, url, "latency");
        if (latency_once(url ? fresh : NULL, apart, rate, out) < 0) {
            fprintf(stderr, "latency run at %s failed: %s\n", label, td_error_last());
            return -1;
        }
        for (int i = 0; i < 4; i++)
            runs[i][r] = out[i];
    }
    for (int i = 0; i < 4; i++) {
        char name[64];
        figure[i] = bench_median(runs[i], BENCH_RUNS);
        snprintf(name, sizeof name, "%s_%s_us_at_%s", url ? "pg_notify" : "dispatch", names[i],
                 label);
        bench_report(name, figure[i], "us");
    }
    *p99_out = figure[2];
    return 0;
}

/* ---- throughput ------------------------------------------------------------------ */

static int noop(td_delivery *d, const td_event *ev, void *payload)
{
    (void)d;
    (void)ev;
    (void)payload;
    return 0;
}

static int count(const td_event *ev, void *payload)
{
    (void)ev;
    ++*(int64_t *)payload;
    return 0;
}

static int fill(td_store *store)
{
    td_event events[1000];
    char stream[32];
    for (int batch = 0; batch < DRAIN_EVENTS / 1000; batch++) {
        for (int i = 0; i < 1000; i++) {
            td_event_init(&events[i]);
            events[i].type = "OrderPlaced";
            events[i].data = "{\"total_amount\":1999}";
        }
        snprintf(stream, sizeof stream, "order-%d", batch % 100);
        if (td_store_append(store, stream, TD_EXPECT_ANY, events, 1000) < 0)
            return -1;
    }
    return 0;
}

static int drain_once(double *dispatch_rate, double *read_rate)
{
    char url[4200], *dir = bench_tmpdir();
    td_store *store = NULL;
    td_subscription *sub = NULL;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    int64_t n = 0;
    snprintf(url, sizeof url, "sqlite:%s/drain.db", dir ? dir : "/tmp");
    opts.name = "drain";
    opts.lanes = 2;
    int error = dir && td_store_open(&store, url, NULL) == 0 && fill(store) == 0 ? 0 : -1;
    td_read_query all = TD_READ_QUERY_INIT;
    double start = bench_now();
    if (error == 0 && td_store_read(store, &all, count, &n) == 0 && n == DRAIN_EVENTS)
        *read_rate = n / (bench_now() - start);
    else
        error = -1;
    if (error == 0 && td_subscription_new(&sub, store, &opts, noop, NULL) == 0) {
        start = bench_now();
        if (td_subscription_start(sub) == 0 &&
            td_subscription_wait_until(sub, DRAIN_EVENTS, 60000) == 0)
            *dispatch_rate = DRAIN_EVENTS / (bench_now() - start);
        else
            error = -1;
    }
    td_subscription_free(sub);
    td_store_free(store);
    bench_rmdir(dir);
    return error;
}

int bench_dispatch(void)
{
    double p99_1k, p99_10k, dispatch[BENCH_RUNS], reads[BENCH_RUNS];
    if (bench_latency(NULL, false, 1000, "1k", &p99_1k) < 0 ||
        bench_latency(NULL, false, 10000, "10k", &p99_10k) < 0)
        return -1;
    for (int r = 0; r < BENCH_RUNS; r++)
        if (drain_once(&dispatch[r], &reads[r]) < 0) {
            fprintf(stderr, "throughput run failed: %s\n", td_error_last());
            return -1;
        }
    double d = bench_median(dispatch, BENCH_RUNS), baseline = bench_median(reads, BENCH_RUNS);
    bench_report("read_baseline_events_per_s", baseline, "events/s");
    printf("ratio dispatch_vs_read: %.2f\n", d / baseline);
    bench_report("dispatch_p99_us_at_10k", p99_10k, "");
    bench_report("dispatch_max_events_per_s", d, "");
    return 0;
}
