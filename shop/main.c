/*
 * main.c (shop): the `shop` command.
 *
 *   shop serve [--db URL] [--listen HOST:PORT] [--data DIR] [--smtp URL]
 *              [--payment-timeout MS] [--log-level LEVEL] [--handlers eager|deferred]
 *              [--commits pipelined|each] [--writer-nice N] [--http-threads N]
 *
 *   shop load …      (load.c)      shop migrate …   (migrate.c)
 *   shop projections list|rebuild  (projections_cmd.c)
 *
 * Serves the shop's HTTP API. SIGTERM or SIGINT stops it gracefully: no new
 * connections, requests in progress answered, event handlers finished,
 * checkpoints saved; then it exits 0.
 */
#include <errno.h>
#include <sodium.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "http/http.h"
#include "migrate.h"
#include "projections_cmd.h"

typedef struct serve_args {
    const char *db, *listen, *data, *smtp, *broker, *log_level, *handlers, *commits;
    int payment_timeout_ms;
    int writer_nice;
    unsigned http_threads;
} serve_args;

static int usage(FILE *out, int code)
{
    fprintf(out, "usage: shop serve [--db URL] [--listen HOST:PORT] [--data DIR] [--smtp URL]\n"
                 "                  [--payment-timeout MS] [--log-level LEVEL]\n"
                 "                  [--handlers eager|deferred] [--commits pipelined|each]\n"
                 "                  [--writer-nice N] [--http-threads N]\n"
                 "  --db      the store (default sqlite:DATA/tidings.db, or TIDINGS_DB)\n"
                 "  --listen  where to serve HTTP (default 127.0.0.1:8080; port 0: any free)\n"
                 "  --data    the data folder: store and mail (default ./data)\n"
                 "  --smtp    send e-mail through smtp://host:port instead of DATA/mail\n"
                 "  --handlers  eager (default): the saga, inventory and read models act in\n"
                 "            the unit that appends their event; deferred: only on their lanes\n"
                 "  --commits pipelined (default): the store's writer goes on while a commit's\n"
                 "            fsync is in flight (answers still wait for it); each: one at a time\n"
                 "  --writer-nice  the store writer thread's nice value, -20..19 (default -10:\n"
                 "            it runs first when the cores are busy; kept at 0 if not allowed)\n"
                 "  --http-threads  threads answering requests, 1..64 (default 8)\n"
                 "usage: shop load --url URL --orders N --concurrency C [--products P]\n"
                 "                 [--decline-rate R] [--seed S] [--rate ORDERS_PER_S]\n"
                 "  places orders against a running shop and checks the outcome\n"
                 "usage: shop migrate --to URL [--db URL | --data DIR]\n"
                 "  copies the store into a new one, every event upcast to its current schema\n"
                 "usage: shop projections list|rebuild NAME [--db URL | --data DIR]\n"
                 "  each read model's position, lag and state; a fresh copy swapped in\n");
    return code;
}

/* --flag VALUE or --flag=VALUE at argv[*i]; 1 if it was name. */
static int flag(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0' || *i + 1 >= argc)
        return argv[*i][n] == '\0' ? -1 : 0;
    *value = argv[++*i];
    return 1;
}

static int parse(int argc, char **argv, serve_args *a)
{
    const char *timeout = NULL, *nice = NULL, *threads = NULL;
    for (int i = 0; i < argc; i++) {
        int rc = 0;
        const char *names[] = {
            "--db",          "--listen",          "--data",     "--smtp",    "--broker",
            "--log-level",   "--payment-timeout", "--handlers", "--commits", "--writer-nice",
            "--http-threads"};
        const char **slots[] = {&a->db,      &a->listen,    &a->data, &a->smtp,
                                &a->broker,  &a->log_level, &timeout, &a->handlers,
                                &a->commits, &nice,         &threads};
        for (int k = 0; k < 11 && rc == 0; k++)
            rc = flag(argc, argv, &i, names[k], slots[k]);
        if (rc <= 0) {
            fprintf(stderr, "shop serve: %s '%s'\n",
                    rc < 0 ? "missing value for" : "unknown argument", argv[i]);
            return -1;
        }
    }
    if (a->handlers && strcmp(a->handlers, "eager") != 0 && strcmp(a->handlers, "deferred") != 0) {
        fprintf(stderr, "shop serve: --handlers must be eager or deferred\n");
        return -1;
    }
    if (a->commits && strcmp(a->commits, "pipelined") != 0 && strcmp(a->commits, "each") != 0) {
        fprintf(stderr, "shop serve: --commits must be pipelined or each\n");
        return -1;
    }
    char *end = NULL;
    long n = nice ? strtol(nice, &end, 10) : -10;
    if (nice && (end == nice || *end != '\0' || n < -20 || n > 19)) {
        fprintf(stderr, "shop serve: --writer-nice must be a whole number from -20 to 19\n");
        return -1;
    }
    a->writer_nice = (int)n;
    long t = threads ? strtol(threads, &end, 10) : 8;
    if (threads && (end == threads || *end != '\0' || t < 1 || t > 64)) {
        fprintf(stderr, "shop serve: --http-threads must be a whole number from 1 to 64\n");
        return -1;
    }
    a->http_threads = (unsigned)t;
    if (timeout && (a->payment_timeout_ms = atoi(timeout)) <= 0) {
        fprintf(stderr, "shop serve: --payment-timeout must be a positive number of ms\n");
        return -1;
    }
    return 0;
}

static int split_listen(const char *listen, char *host, size_t size, int *port)
{
    const char *colon = strrchr(listen, ':');
    char *end = NULL;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == listen || (size_t)(colon - listen) >= size || *end != '\0' || p < 0 ||
        p > 65535)
        return -1;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    *port = (int)p;
    return 0;
}

typedef struct running {
    td_store *store;
    td_metrics *metrics;
    shop *shop;
    http_server *http;
} running;

static void stop_all(running *r)
{
    http_server_stop(r->http);
    shop_close(r->shop);
    td_metrics_free(r->metrics);
    td_store_free(r->store);
}

static int start_all(running *r, const serve_args *a, const char *host, int port)
{
    int error = shop_open_serving_store(
        &r->store, a->db, a->data, a->commits && strcmp(a->commits, "each") == 0, a->writer_nice);
    if (error == 0)
        error = td_metrics_new(&r->metrics);
    if (error == 0)
        error = td_metrics_watch_store(r->metrics, r->store);
    if (error < 0) {
        fprintf(stderr, "shop serve: %s\n", td_error_last());
        return error;
    }
    shop_options so = {.data_dir = a->data,
                       .payment_timeout_ms = a->payment_timeout_ms,
                       .metrics = r->metrics,
                       .smtp_url = a->smtp,
                       .deferred = a->handlers && strcmp(a->handlers, "deferred") == 0};
    if ((error = shop_open(&r->shop, r->store, &so)) < 0) {
        fprintf(stderr, "shop serve: %s\n", shop_error().message);
        return error;
    }
    http_options ho = {host, port, a->http_threads, r->metrics};
    if ((error = http_server_start(&r->http, r->shop, r->store, &ho)) < 0)
        fprintf(stderr, "shop serve: cannot listen on %s:%d\n", host, port);
    return error;
}

static int serve(int argc, char **argv)
{
    serve_args a = {NULL, "127.0.0.1:8080", "data", NULL, NULL, NULL, NULL, NULL, 0, -10, 8};
    char host[256];
    int port = 0, sig = 0;
    if (parse(argc, argv, &a) < 0 || split_listen(a.listen, host, sizeof host, &port) < 0)
        return usage(stderr, 2);
    if (a.broker) {
        fprintf(stderr, "shop serve: this build has no RabbitMQ transport yet\n");
        return 2;
    }
    if (td_log_to_stderr(a.log_level) < 0) {
        fprintf(stderr, "shop serve: %s\n", td_error_last());
        return 2;
    }
    if (mkdir(a.data, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "shop serve: cannot make the data folder %s\n", a.data);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN); /* a closed client or stdout is an error, not our death */
    if (sodium_init() < 0) {
        fprintf(stderr, "shop serve: libsodium cannot start\n");
        return 1;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* every thread started from here on too */
    running r = {0};
    if (start_all(&r, &a, host, port) < 0) {
        stop_all(&r);
        return 1;
    }
    printf("shop: listening on http://%s:%d\nshop: data in %s, store %s\n", host,
           http_server_port(r.http), a.data, td_store_url(r.store));
    fflush(stdout);
    sigwait(&stop, &sig);
    printf("shop: stopping (%s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    fflush(stdout);
    stop_all(&r);
    return 0;
}

int shop_load_main(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "load") == 0)
        return shop_load_main(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "migrate") == 0)
        return shop_migrate_main(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "projections") == 0)
        return shop_projections_main(argc - 2, argv + 2);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0))
        return usage(stdout, 0);
    return usage(stderr, 2);
}
