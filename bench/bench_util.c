/*
 * bench_util.c: timing, medians, temporary folders and output lines
 * ("name: value unit") for the benchmarks.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

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
    const char *base = getenv("TIDINGS_BENCH_DIR");
    char *dir = malloc(4096);
    if (dir == NULL)
        return NULL;
    snprintf(dir, 4096, "%s/tidings-bench-XXXXXX", base && base[0] ? base : "/tmp");
    if (mkdtemp(dir) == NULL) {
        free(dir);
        return NULL;
    }
    return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void bench_rmdir(char *dir)
{
    if (dir) {
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
    }
}

void bench_report(const char *name, double value, const char *unit)
{
    printf("%s: %.0f%s%s\n", name, value, unit[0] ? " " : "", unit);
    fflush(stdout);
}
