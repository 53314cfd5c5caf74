/*
 * bench_store.c: the event store against raw SQLite.
 *
 * The baseline writes rows of the same shape into the same table (a store
 * created by tidings, so the same indexes and triggers) with the same
 * durability (WAL, synchronous=FULL), straight through SQLite's API:
 *   raw_append_1     one single-row transaction at a time
 *   raw_batch_1000   one 1000-row transaction at a time
 * against tidings:
 *   append_1         td_store_append of one event, one thread
 *   append_64        the same from 64 threads at once (group commit)
 *   batch_1000       td_store_append of 1000 events in one call
 *   read             td_store_read over the whole store, forward
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "tidings/tidings.h"

#define DATA           "{\"order_id\":\"0190c3a0-1234-7abc-8def-0123456789ab\",\"total_amount\":1999}"
#define SINGLE_APPENDS 600
#define PRODUCERS      64
#define PER_PRODUCER   150
#define BATCHES        20
#define BATCH          1000
#define READ_EVENTS    200000

static const char insert_sql[] =
    "INSERT INTO events (position, id, stream, version, type, schema_version, kind, source, "
    "occurred_at, correlation_id, causation_id, traceparent, metadata, data, hash) "
    "VALUES (?1, ?2, ?3, ?4, 'OrderCreated', 1, 0, 'order', ?5, NULL, NULL, "
    "'00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '{}', ?6, zeroblob(32))";

/* ---- the raw SQLite baseline ------------------------------------------------ */

typedef struct raw {
    char *dir;
    sqlite3 *db;
    sqlite3_stmt *insert;
    int64_t position;
} raw;

static int raw_open(raw *r)
{
    char path[4200];
    td_store *store = NULL;
    memset(r, 0, sizeof *r);
    if ((r->dir = bench_tmpdir()) == NULL)
        return -1;
    snprintf(path, sizeof path, "%s/raw.db", r->dir);
    if (td_store_open(&store, path, NULL) < 0) /* the same schema */
        return -1;
    td_store_free(store);
    if (sqlite3_open(path, &r->db) != SQLITE_OK ||
        sqlite3_exec(r->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(r->db, insert_sql, -1, &r->insert, NULL) != SQLITE_OK)
        return -1;
    return 0;
}

static void raw_close(raw *r)
{
    sqlite3_finalize(r->insert);
    sqlite3_close(r->db);
    bench_rmdir(r->dir);
}

static int raw_insert(raw *r, int64_t version)
{
    td_uuid id;
    td_uuid_v7(&id);
    sqlite3_bind_int64(r->insert, 1, ++r->position);
    sqlite3_bind_blob(r->insert, 2, id.bytes, 16, SQLITE_TRANSIENT);
    sqlite3_bind_text(r->insert, 3, "order-bench", -1, SQLITE_STATIC);
    sqlite3_bind_int64(r->insert, 4, version);
    sqlite3_bind_int64(r->insert, 5, td_time_now());
    sqlite3_bind_text(r->insert, 6, DATA, -1, SQLITE_STATIC);
    int rc = sqlite3_step(r->insert);
    sqlite3_reset(r->insert);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int raw_transaction(raw *r, int rows, int64_t *version)
{
    int rc = sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
    for (int i = 0; rc == 0 && i < rows; i++)
        rc = raw_insert(r, ++*version);
    if (rc == 0 && sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = -1;
    return rc;
}

/* Events per second of `transactions` raw transactions of `rows` rows. */
static double raw_rate(int transactions, int rows)
{
    raw r;
    int64_t version = 0;
    if (raw_open(&r) < 0)
        return -1;
    double start = bench_now();
    for (int t = 0; t < transactions; t++)
        if (raw_transaction(&r, rows, &version) < 0) {
            raw_close(&r);
            return -1;
        }
    double rate = transactions * rows / (bench_now() - start);
    raw_close(&r);
    return rate;
}

/* ---- tidings ---------------------------------------------------------------- */

typedef struct fresh {
    char *dir;
    td_store *store;
} fresh;

static int fresh_open(fresh *f)
{
    char url[4200];
    if ((f->dir = bench_tmpdir()) == NULL)
        return -1;
    snprintf(url, sizeof url, "sqlite:%s/bench.db", f->dir);
    return td_store_open(&f->store, url, NULL);
}

static void fresh_close(fresh *f)
{
    td_store_free(f->store);
    bench_rmdir(f->dir);
}

static int append_n(td_store *store, const char *stream, int count, int per_call)
{
    td_event events[BATCH];
    for (int done = 0; done < count; done += per_call) {
        for (int i = 0; i < per_call; i++) {
            td_event_init(&events[i]);
            events[i].type = "OrderCreated";
            events[i].data = DATA;
        }
        if (td_store_append(store, stream, TD_EXPECT_ANY, events, (size_t)per_call) < 0) {
            fprintf(stderr, "append: %s\n", td_error_last());
            return -1;
        }
    }
    return 0;
}

static double tidings_rate(int count, int per_call)
{
    fresh f;
    if (fresh_open(&f) < 0)
        return -1;
    double start = bench_now();
    int rc = append_n(f.store, "order-bench", count, per_call);
    double rate = count / (bench_now() - start);
    fresh_close(&f);
    return rc == 0 ? rate : -1;
}

typedef struct producer {
    td_store *store;
    int index;
    int rc;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    char stream[32];
    snprintf(stream, sizeof stream, "order-p%d", p->index);
    p->rc = append_n(p->store, stream, PER_PRODUCER, 1);
    return NULL;
}

static double concurrent_rate(void)
{
    fresh f;
    pthread_t threads[PRODUCERS];
    producer producers[PRODUCERS];
    int rc = 0;
    if (fresh_open(&f) < 0)
        return -1;
    double start = bench_now();
    for (int i = 0; i < PRODUCERS; i++) {
        producers[i] = (producer){f.store, i, 0};
        pthread_create(&threads[i], NULL, produce, &producers[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(threads[i], NULL);
        rc |= producers[i].rc;
    }
    double rate = PRODUCERS * PER_PRODUCER / (bench_now() - start);
    fresh_close(&f);
    return rc == 0 ? rate : -1;
}

static int count_event(const td_event *ev, void *payload)
{
    (void)ev;
    ++*(int64_t *)payload;
    return 0;
}

/* The RFC's step: a schema-1 OrderCreated gains its currency. */
static int add_currency(const td_event *ev, json_t *data, void *payload)
{
    (void)ev;
    (void)payload;
    return json_object_set_new(data, "currency", json_string("USD")) == 0 ? 0 : TD_ENOMEM;
}

/* Reads every event, as stored and through an upcaster (every event is at
 * schema 1, the program reads 2): the whole cost of versioning on read. */
static int read_rates(double *rates, double *upcast_rates)
{
    fresh f;
    td_upcasters *ups = NULL;
    if (td_upcasters_new(&ups) < 0 || td_upcasters_declare(ups, "OrderCreated", 2) < 0 ||
        td_upcasters_add(ups, "OrderCreated", 1, add_currency, NULL) < 0)
        return -1;
    if (fresh_open(&f) < 0 || append_n(f.store, "order-read", READ_EVENTS, BATCH) < 0)
        return -1;
    for (int run = 0; run < 2 * BENCH_RUNS; run++) {
        int64_t n = 0;
        td_read_query all = TD_READ_QUERY_INIT;
        bool upcast = run % 2; /* alternate, so that drift hits both alike */
        td_store_set_upcasters(f.store, upcast ? ups : NULL);
        double start = bench_now();
        if (td_store_read(f.store, &all, count_event, &n) < 0 || n != READ_EVENTS)
            return -1;
        (upcast ? upcast_rates : rates)[run / 2] = n / (bench_now() - start);
    }
    td_store_set_upcasters(f.store, NULL);
    fresh_close(&f);
    td_upcasters_free(ups);
    return 0;
}

/* ---- the report ---------------------------------------------------------------- */

enum { RAW_1, APPEND_1, APPEND_64, RAW_BATCH, BATCH_1000, FIGURES };

int bench_store(void)
{
    static const char *names[FIGURES] = {"raw_append_1_per_s", "append_1_per_s", "append_64_per_s",
                                         "raw_batch_1000_per_s", "batch_1000_per_s"};
    double runs[FIGURES][BENCH_RUNS], median[FIGURES], reads[BENCH_RUNS], upcasts[BENCH_RUNS];
    for (int run = 0; run < BENCH_RUNS; run++) {
        runs[RAW_1][run] = raw_rate(SINGLE_APPENDS, 1);
        runs[APPEND_1][run] = tidings_rate(SINGLE_APPENDS, 1);
        runs[APPEND_64][run] = concurrent_rate();
        runs[RAW_BATCH][run] = raw_rate(BATCHES, BATCH);
        runs[BATCH_1000][run] = tidings_rate(BATCHES * BATCH, BATCH);
        for (int i = 0; i < FIGURES; i++)
            if (runs[i][run] < 0) {
                fprintf(stderr, "benchmark %s failed\n", names[i]);
                return -1;
            }
    }
    for (int i = 0; i < FIGURES; i++) {
        median[i] = bench_median(runs[i], BENCH_RUNS);
        bench_report(names[i], median[i], "events/s");
    }
    if (read_rates(reads, upcasts) < 0) {
        fprintf(stderr, "read benchmark failed: %s\n", td_error_last());
        return -1;
    }
    printf("ratio append_1_vs_raw_1: %.2f\n", median[APPEND_1] / median[RAW_1]);
    printf("ratio append_64_vs_raw_1: %.2f\n", median[APPEND_64] / median[RAW_1]);
    printf("ratio batch_1000_vs_raw_batch: %.2f\n", median[BATCH_1000] / median[RAW_BATCH]);
    bench_report("read_events_per_s", bench_median(reads, BENCH_RUNS), "");
    bench_report("read_upcast_events_per_s", bench_median(upcasts, BENCH_RUNS), "");
    printf("ratio read_upcast_vs_read: %.2f\n",
           bench_median(upcasts, BENCH_RUNS) / bench_median(reads, BENCH_RUNS));
    return 0;
}
