/*
 * bench_util.c: timing, medians, temporary folders and output lines
 * ("name: value unit") for the benchmarks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "tmpdir.h"

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *values, size_t n)
{
    qsort(values, n, sizeof *values, by_value);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

char *bench_tmpdir(void)
{
    return tmpdir_make(getenv("TIDINGS_BENCH_DIR"), "tidings-bench");
}

void bench_rmdir(char *dir)
{
    tmpdir_remove(dir);
}

void bench_report(const char *name, double value, const char *unit)
{
    printf("%s: %.0f%s%s\n", name, value, unit[0] ? " " : "", unit);
    fflush(stdout);
}
