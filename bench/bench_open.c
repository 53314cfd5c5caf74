/*
 * bench_open.c: what the check at open costs (td_store_options.skip_check).
 *
 * A store of OPEN_EVENTS events (a million, in 1,000-event appends across
 * 10,000 streams) and OPEN_DOCUMENTS documents is closed, then opened and
 * freed again and again, with the check and without, alternately:
 *   open_checked_ms     td_store_open (writable) + td_store_free, checked
 *   open_unchecked_ms   the same with skip_check
 *   check_at_open_ms    the difference: the check itself
 * The file is in the page cache (it was just written): the figure is the
 * check's work, not the disk's. Cold, it reads the same pages: the schema,
 * the last TAIL events' leaf and every index's rightmost path (at most
 * about 64 × 6 lookups, each from a root to a leaf), the documents' two
 * edges; a few hundred pages whatever the store's size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "tidings/tidings.h"

#define OPEN_EVENTS    1000000
#define OPEN_DOCUMENTS 10000
#define OPEN_BATCH     1000
#define OPEN_STREAMS   10000

static int fill(td_store *store)
{
    static td_event events[OPEN_BATCH];
    char data[OPEN_BATCH][160], stream[32];
    for (int done = 0; done < OPEN_EVENTS; done += OPEN_BATCH) {
        snprintf(stream, sizeof stream, "order-%d", (done / OPEN_BATCH) % OPEN_STREAMS);
        for (int i = 0; i < OPEN_BATCH; i++) {
            snprintf(data[i], sizeof data[i],
                     "{\"order_id\":\"0190c3a0-1234-7abc-8def-%012d\",\"total_amount\":%d,"
                     "\"currency\":\"USD\",\"note\":\"bench\"}",
                     done + i, 100 + i);
            td_event_init(&events[i]);
            events[i].type = i % 3 ? "OrderCreated" : "OrderPaid";
            events[i].data = data[i];
        }
        if (td_store_append(store, stream, TD_EXPECT_ANY, events, OPEN_BATCH) < 0)
            return -1;
    }
    return 0;
}

typedef struct docs_args {
    int from, to;
} docs_args;

static int put_docs(td_txn *txn, void *payload)
{
    docs_args *a = payload;
    char key[32];
    for (int i = a->from; i < a->to; i++) {
        snprintf(key, sizeof key, "doc-%06d", i);
        int error = td_txn_doc_put(txn, "bench_docs", key, "{\"n\":1,\"text\":\"bench\"}", 0);
        if (error < 0)
            return error;
    }
    return 0;
}

static double open_once(const char *url, bool skip_check)
{
    td_store *store = NULL;
    td_store_options opts = TD_STORE_OPTIONS_INIT;
    opts.skip_check = skip_check;
    double start = bench_now();
    if (td_store_open(&store, url, &opts) < 0) {
        fprintf(stderr, "bench open: %s\n", td_error_last());
        return -1;
    }
    td_store_free(store);
    return (bench_now() - start) * 1000;
}

int bench_open(void)
{
    char url[4200];
    char *dir = bench_tmpdir();
    td_store *store = NULL;
    int error = dir ? 0 : -1;
    if (error == 0) {
        snprintf(url, sizeof url, "sqlite:%s/open.db", dir);
        error = td_store_open(&store, url, NULL);
    }
    double start = bench_now();
    if (error == 0)
        error = fill(store);
    for (int i = 0; error == 0 && i < OPEN_DOCUMENTS; i += 1000) {
        docs_args a = {i, i + 1000};
        error = td_transact(store, put_docs, &a);
    }
    double filled = bench_now() - start;
    td_store_free(store);
    double checked[BENCH_RUNS], unchecked[BENCH_RUNS], diff[BENCH_RUNS];
    for (int r = 0; error == 0 && r < BENCH_RUNS; r++) {
        checked[r] = open_once(url, false);
        unchecked[r] = open_once(url, true);
        diff[r] = checked[r] - unchecked[r];
        if (checked[r] < 0 || unchecked[r] < 0)
            error = -1;
    }
    if (error == 0) {
        printf("open: a store of %d events and %d documents, written in %.1f s\n", OPEN_EVENTS,
               OPEN_DOCUMENTS, filled);
        printf("open_checked_ms: %.2f ms\n", bench_median(checked, BENCH_RUNS));
        printf("open_unchecked_ms: %.2f ms\n", bench_median(unchecked, BENCH_RUNS));
        printf("check_at_open_ms: %.2f ms\n", bench_median(diff, BENCH_RUNS));
    } else {
        fprintf(stderr, "bench open: %s\n", td_error_last());
    }
    bench_rmdir(dir);
    return error < 0 ? -1 : 0;
}
