/*
 * bench_main.c: `tidings-bench`, run by `make bench`. Prints one line per
 * figure ("name: value unit") and the ratios against the raw baselines
 * measured in the same run. Set TIDINGS_BENCH_DIR to pick the file system.
 */
#include <stdio.h>

#include "bench.h"

int main(void)
{
    printf("tidings benchmark: medians of %d runs\n", BENCH_RUNS);
    return bench_store() == 0 ? 0 : 1;
}
