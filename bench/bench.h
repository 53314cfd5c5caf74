/*
 * bench.h: the benchmark harness. Each figure is the median of several runs;
 * each run uses a fresh store in a temporary folder on the same file system
 * as its raw-SQLite baseline, and runs of the baseline and of tidings
 * alternate, so machine noise hits both alike.
 */
#ifndef TD_BENCH_H
#define TD_BENCH_H

#include <stdbool.h>
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
/* Commit-to-handler latency at rate events/s on fresh stores: a SQLite file
 * when url is NULL (figures dispatch_*), else bench_fresh_url(url) (figures
 * pg_notify_*); apart: the subscription on a second handle of the store.
 * Reports p50/p95/p99/max in µs (medians over BENCH_RUNS) and the p99. */
int bench_latency(const char *url, bool apart, double rate, const char *label, double *p99_out);
/* bench_open.c */
int bench_open(void);
/* bench_pg.c: on the server TIDINGS_BENCH_PG_URL names (skipped without) */
int bench_pg(void);
/* A store URL on server_url in a schema of its own, named after what. */
void bench_fresh_url(char *out, size_t size, const char *server_url, const char *what);
/* bench_broker.c: skipped without TIDINGS_BENCH_RABBITMQ_URL_FILE */
int bench_broker(void);

#endif
