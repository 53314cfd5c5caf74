/*
 * bench_pg.c: the event store on PostgreSQL against raw libpq, on the
 * server TIDINGS_BENCH_PG_URL names (`make bench` starts a private one
 * with scripts/start-postgres.sh: fsync on, synchronous_commit on).
 *
 * The baseline writes rows of the same shape into the same table (a store
 * created by tidings in a schema of its own, so the same indexes and
 * trigger) with the same durability, straight through libpq with a
 * prepared statement:
 *   pg_raw_append_1       one single-row INSERT, committed on its own
 *   pg_raw_batch_1000     one 1000-row INSERT (a multi-row VALUES) per
 *                         transaction
 * against tidings:
 *   pg_append_1           td_store_append of one event, one thread
 *   pg_append_64          the same from 64 threads at once (group commit)
 *   pg_batch_1000         td_store_append of 1000 events in one call
 * Runs of the baseline and of tidings alternate, each on a fresh schema.
 * Then the latency from a durable commit to a handler reading the store
 * through a second handle, woken by LISTEN/NOTIFY, at 1,000 events/s
 * (pg_notify_*_us_at_1k; bench_dispatch.c).
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "tidings/tidings.h"

#define DATA           "{\"order_id\":\"0190c3a0-1234-7abc-8def-0123456789ab\",\"total_amount\":1999}"
#define SINGLE_APPENDS 600
#define PRODUCERS      64
#define PER_PRODUCER   100
#define BATCHES        10
#define BATCH          1000

#define ROW_SQL                                                                                    \
    "($%d, $%d::uuid, 'order-bench', $%d, 'OrderCreated', 1, 0, 'order', $%d, NULL, NULL, "        \
    "'00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '{}', $%d, "                       \
    "'\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)"

static const char insert_head[] =
    "INSERT INTO events (position, id, stream, version, type, schema_version, kind, source, "
    "occurred_at, correlation_id, causation_id, traceparent, metadata, data, hash) VALUES ";

static const char *server_url;

void bench_fresh_url(char *out, size_t size, const char *server, const char *what)
{
    static int schemas;
    snprintf(out, size, "%s%soptions=-csearch_path%%3Dbench_%ld_%s_%d", server,
             strchr(server, '?') ? "&" : "?", (long)getpid(), what, ++schemas);
}

/* A store URL in a new schema of the server. */
static void schema_url(char *out, size_t size, const char *what)
{
    bench_fresh_url(out, size, server_url, what);
}

static int make_store(const char *url)
{
    td_store *store = NULL;
    if (td_store_open(&store, url, NULL) < 0) {
        fprintf(stderr, "bench: %s\n", td_error_last());
        return -1;
    }
    td_store_free(store);
    return 0;
}

/* ---- the raw libpq baseline ------------------------------------------------- */

typedef struct raw {
    PGconn *pg;
    int64_t position;
} raw;

static int raw_open(raw *r, const char *url, int rows)
{
    memset(r, 0, sizeof *r);
    if (make_store(url) < 0)
        return -1;
    r->pg = PQconnectdb(url);
    if (PQstatus(r->pg) != CONNECTION_OK) {
        fprintf(stderr, "bench: %s", PQerrorMessage(r->pg));
        return -1;
    }
    size_t size = sizeof insert_head + (size_t)rows * 400;
    char *sql = malloc(size);
    if (sql == NULL)
        return -1;
    size_t n = (size_t)snprintf(sql, size, "%s", insert_head);
    for (int i = 0; i < rows; i++) {
        int p = i * 5;
        n += (size_t)snprintf(sql + n, size - n, "%s" ROW_SQL, i ? ", " : "", p + 1, p + 2, p + 3,
                              p + 4, p + 5);
    }
    PGresult *res = PQexec(r->pg, "SET synchronous_commit = on");
    PQclear(res);
    res = PQprepare(r->pg, "insert", sql, 0, NULL);
    free(sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "bench: %s", PQerrorMessage(r->pg));
    PQclear(res);
    return ok ? 0 : -1;
}

/* One INSERT of rows rows, committed on its own (autocommit). */
static int raw_insert(raw *r, int rows, int64_t *version)
{
    enum { FIELDS = 5 };
    static char text[BATCH][FIELDS][40];
    static const char *values[BATCH * FIELDS];
    for (int i = 0; i < rows; i++) {
        td_uuid id;
        td_uuid_v7(&id);
        snprintf(text[i][0], sizeof text[i][0], "%lld", (long long)++r->position);
        td_uuid_format(text[i][1], &id);
        snprintf(text[i][2], sizeof text[i][2], "%lld", (long long)++*version);
        snprintf(text[i][3], sizeof text[i][3], "%lld", (long long)td_time_now());
        for (int f = 0; f < 4; f++)
            values[i * FIELDS + f] = text[i][f];
        values[i * FIELDS + 4] = DATA;
    }
    PGresult *res = PQexecPrepared(r->pg, "insert", rows * FIELDS, values, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "bench: %s", PQerrorMessage(r->pg));
    PQclear(res);
    return ok ? 0 : -1;
}

/* Events per second of `transactions` raw INSERTs of `rows` rows each. */
static double raw_rate(int transactions, int rows)
{
    char url[2048];
    raw r;
    int64_t version = 0;
    schema_url(url, sizeof url, "raw");
    if (raw_open(&r, url, rows) < 0) {
        PQfinish(r.pg);
        return -1;
    }
    double start = bench_now();
    int rc = 0;
    for (int t = 0; t < transactions && rc == 0; t++)
        rc = raw_insert(&r, rows, &version);
    double rate = transactions * rows / (bench_now() - start);
    PQfinish(r.pg);
    return rc == 0 ? rate : -1;
}

/* ---- tidings ---------------------------------------------------------------- */

static int append_n(td_store *store, const char *stream, int count, int per_call)
{
    td_event *events = calloc((size_t)per_call, sizeof *events);
    if (events == NULL)
        return -1;
    for (int done = 0; done < count; done += per_call) {
        for (int i = 0; i < per_call; i++) {
            td_event_init(&events[i]);
            events[i].type = "OrderCreated";
            events[i].data = DATA;
        }
        if (td_store_append(store, stream, TD_EXPECT_ANY, events, (size_t)per_call) < 0) {
            fprintf(stderr, "append: %s\n", td_error_last());
            free(events);
            return -1;
        }
    }
    free(events);
    return 0;
}

static td_store *fresh_store(void)
{
    char url[2048];
    td_store *store = NULL;
    schema_url(url, sizeof url, "td");
    if (td_store_open(&store, url, NULL) < 0) {
        fprintf(stderr, "bench: %s\n", td_error_last());
        return NULL;
    }
    return store;
}

static double tidings_rate(int count, int per_call)
{
    td_store *store = fresh_store();
    if (store == NULL)
        return -1;
    double start = bench_now();
    int rc = append_n(store, "order-bench", count, per_call);
    double rate = count / (bench_now() - start);
    td_store_free(store);
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
    pthread_t threads[PRODUCERS];
    producer producers[PRODUCERS];
    int rc = 0;
    td_store *store = fresh_store();
    if (store == NULL)
        return -1;
    double start = bench_now();
    for (int i = 0; i < PRODUCERS; i++) {
        producers[i] = (producer){store, i, 0};
        pthread_create(&threads[i], NULL, produce, &producers[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(threads[i], NULL);
        rc |= producers[i].rc;
    }
    double rate = PRODUCERS * PER_PRODUCER / (bench_now() - start);
    td_store_free(store);
    return rc == 0 ? rate : -1;
}

/* ---- the report ---------------------------------------------------------------- */

enum { RAW_1, APPEND_1, APPEND_64, RAW_BATCH, BATCH_1000, FIGURES };

int bench_pg(void)
{
    static const char *names[FIGURES] = {"pg_raw_append_1_per_s", "pg_append_1_per_s",
                                         "pg_append_64_per_s", "pg_raw_batch_1000_per_s",
                                         "pg_batch_1000_per_s"};
    double runs[FIGURES][BENCH_RUNS], median[FIGURES];
    server_url = getenv("TIDINGS_BENCH_PG_URL");
    if (server_url == NULL || server_url[0] == '\0') {
        printf("postgres: skipped (TIDINGS_BENCH_PG_URL is not set; make bench starts a server)\n");
        return 0;
    }
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
    printf("ratio pg_append_1_vs_raw_1: %.2f\n", median[APPEND_1] / median[RAW_1]);
    printf("ratio pg_append_64_vs_raw_1: %.2f\n", median[APPEND_64] / median[RAW_1]);
    printf("ratio pg_batch_1000_vs_raw_batch: %.2f\n", median[BATCH_1000] / median[RAW_BATCH]);
    double p99;
    return bench_latency(server_url, true, 1000, "1k", &p99);
}
