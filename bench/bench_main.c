/*
 * bench_main.c: `tidings-bench`, run by `make bench`. Prints one line per
 * figure ("name: value unit") and the ratios against the raw baselines
 * measured in the same run. Set TIDINGS_BENCH_DIR to pick the file system.
 * `tidings-bench store`, `tidings-bench dispatch`, `tidings-bench open` or
 * `tidings-bench postgres` runs one part; the last needs a server
 * (TIDINGS_BENCH_PG_URL, which `make bench` sets to a private one).
 * `tidings-bench broker` runs the broker part, which needs a RabbitMQ node
 * (bench/broker.sh starts one).
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

int main(int argc, char **argv)
{
    printf("tidings benchmark: medians of %d runs\n", BENCH_RUNS);
    const char *only = argc > 1 ? argv[1] : NULL;
    if ((!only || strcmp(only, "store") == 0) && bench_store() < 0)
        return 1;
    if ((!only || strcmp(only, "dispatch") == 0) && bench_dispatch() < 0)
        return 1;
    if ((!only || strcmp(only, "open") == 0) && bench_open() < 0)
        return 1;
    if ((!only || strcmp(only, "postgres") == 0) && bench_pg() < 0)
        return 1;
    if (only && strcmp(only, "broker") == 0 && bench_broker() < 0)
        return 1;
    return 0;
}
