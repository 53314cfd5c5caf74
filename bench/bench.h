/*
 * bench.h: the benchmark harness. Each figure is the median of several runs;
 * each run uses a fresh store in a temporary folder on the same file system
 * as its raw-SQLite baseline, and runs of the baseline and of tidings
 * alternate, so machine noise hits both alike.
 */
#ifndef TD_BENCH_H
#define TD_BENCH_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_RUNS 5

double bench_now(void); /* monotonic seconds */
double bench_median(double *values, size_t n);
char *bench_tmpdir(void); /* caller frees with bench_rmdir */
void bench_rmdir(char *dir);
void bench_report(const char *name, double value, const char *unit);

/* bench_store.c */
int bench_store(void);
/* bench_dispatch.c */
int bench_dispatch(void);
/* bench_open.c */
int bench_open(void);
/* bench_pg.c: on the server TIDINGS_BENCH_PG_URL names (skipped without) */
int bench_pg(void);
/* bench_broker.c: skipped without TIDINGS_BENCH_RABBITMQ_URL_FILE */
int bench_broker(void);

#endif
