/*
 * serve.c (shop commands): `shop serve`, the shop's HTTP API.
 *
 * Start-up, in order: the data folder (made 0700, and every file in it
 * private to this user: umask 077); the store; the master key (made on the
 * first start, beside the store, and refused if missing for a store that
 * has sealed data); the shop and its handlers; an admin key when the store
 * has none (written to DATA/admin.key, mode 0600, and said where); then
 * the HTTP server. With --trace-file or --otlp-endpoint, the store's
 * appends and the shop's handlers are traced (services/otlp.h). SIGTERM or SIGINT stops it
 * gracefully: no new connections, requests in progress answered, event handlers finished,
 * checkpoints saved; then it exits 0. A store that stops writes after a failed sync or
 * commit (only reopening recovers) stops it the same way, and then it exits 1, for a
 * supervisor to restart it. It refuses to start (exit 1) on a store that fails the check
 * at open, unless --skip-check.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/resource.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker_url.h"
#include "common/contexts.h"
#include "services/transit.h"
#include "cmd/commands.h"
#include "cmd/common.h"
#include "http/http.h"
#include "services/otlp.h"
#include "services/spans.h"

typedef struct serve_args {
    const char *db, *listen, *data, *smtp, *broker, *broker_file, *exchange, *log_level, *handlers,
        *commits;
    const char *smtp_netrc, *smtp_ca;
    bool smtp_starttls;
    const char *master_key_file;
    const char *trace_file, *otlp_endpoint;
    unsigned partitions;
    const char *instance;
    unsigned services; /* SHOP_CTX_* bits (common/contexts.h) */
    const char *queue_type;
    unsigned prefetch; /* of the --services queue; 0: the library's */
    size_t otlp_queue;
    int payment_timeout_ms;
    int writer_nice;
    unsigned http_threads;
    bool skip_check;
    int64_t session_ttl_s;
    http_options http;
    size_t hosts, origins;
} serve_args;

static const cmdline_option serve_options[] = {
    {"listen", 'l', "HOST:PORT",
     "where to serve HTTP: an IPv4 address and a port\n(default 127.0.0.1:8080; port 0: any free "
     "one)"},
    {"master-key-file", 'k', "FILE",
     "the key that seals personal data (default\nDATA/master.key, made on the first start)"},
    {"allowed-host", 'A', "NAME",
     "a Host name served besides localhost and the\nlistening address (repeatable; '*': any)"},
    {"cors-origin", 'O', "ORIGIN", "allow cross-origin requests from ORIGIN\n(repeatable)"},
    {"session-ttl", 'T', "T", "how long a customer's session lasts: 30m, 24h\n(default), 7d"},
    {"idempotency-ttl", 'I', "T", "how long Idempotency-Key answers are kept\n(default 24h)"},
    {"auth-limit", 'a', "N", "logins and registrations per minute per client\n(default 60)"},
    {"rate-limit", 'r', "N", "requests per second per client address\n(default 2000)"},
    {"credential-rate-limit", 'R', "N", "requests per second per credential (default 1000)"},
    {"max-connections", 'm', "N", "connections in all, 16..1000000 (default 10000)"},
    {"max-connections-per-client", 'M', "N", "connections per client address (default 256)"},
    {"max-feeds", 'f', "N", "live feeds (GET /events/stream) in all\n(default 10000)"},
    {"max-feeds-per-client", 'F', "N", "live feeds per client address (default 64)"},
    {"command-workers", 'W', "N",
     "run commands (POST, PUT, DELETE) on N workers,\n0..256 (default 8; 0: on the connection "
     "threads)"},
    {"admit-wait", 'w', "MS",
     "new orders get 503 while commands wait longer\nthan MS for a worker (default 50; 0: never)"},
    {"admit-backlog", 'B', "MS",
     "new orders get 503 while the saga, inventory or\npayments are more than MS behind\n"
     "(default 100; 0: never)"},
    {"head-timeout", 'e', "S", "seconds a request's head may take to arrive\n(default 10)"},
    {"body-timeout", 'E', "S", "seconds its body may take after it (default 30)"},
    {"smtp", 's', "URL",
     "send e-mail through smtp://host:port or\nsmtps://host:port instead of spooling it in\n"
     "DATA/mail"},
    {"smtp-starttls", 'S', NULL, "with smtp://: STARTTLS or no mail"},
    {"smtp-credentials-file", 'N', "FILE",
     "the SMTP login, as a netrc file (mode 0600); or\nset SHOP_SMTP_USER and SHOP_SMTP_PASSWORD\n"
     "(never on the command line)"},
    {"smtp-ca-file", 'K', "FILE", "CA certificates to check the SMTP server with"},
    {"payment-timeout", 'p', "MS", "no payment answer by then: the order is\ncancelled"},
    {"log-level", 'L', "LEVEL", "error, warn, info (default) or debug"},
    {"handlers", 'H', "eager|deferred",
     "eager (default): the saga, inventory and read\nmodels act in the unit that appends their "
     "event"},
    {"commits", 'C', "pipelined|each",
     "pipelined (default): the writer goes on while a\ncommit's fsync is in flight (answers still "
     "wait)"},
    {"writer-nice", 'n', "N", "the store writer thread's nice value, -20..19\n(default -10)"},
    {"http-threads", 't', "N", "threads answering requests, 1..64 (default 8)"},
    {"open-access", 'o', NULL,
     "no authentication: every request is an\nadministrator's. For benchmarks on loopback only"},
    {"trace-file", 'x', "PATH",
     "append a span per append and per handler call\nto PATH, as OTLP/JSON lines"},
    {"otlp-endpoint", 'X', "URL",
     "send spans to an OpenTelemetry collector:\nPOST URL/v1/traces (OTLP/HTTP JSON), batched;\n"
     "when it is slow, spans are dropped and counted"},
    {"otlp-queue", 'Q', "N", "spans kept waiting for the collector, 16..1000000\n(default 2048)"},
    {"broker", 'b', "URL",
     "publish the shop's integration events to RabbitMQ\n(amqp://HOST:PORT, no password: that goes "
     "in\n"
     "--broker-file or TIDINGS_BROKER)"},
    {"broker-file", 'U', "FILE", "a file (mode 0600) holding the broker URL"},
    {"broker-exchange", 'G', "NAME", "the broker's topic exchange (default tidings)"},
    {"partitions", 'P', "N",
     "share the handlers with other instances on the\nsame database: inventory, payments, "
     "notifications\nand the saga each in N partitions, 1..64 (default\n1: each handler runs "
     "whole, in one instance).\nEvery instance on a store gives the same N"},
    {"instance", 'i', "NAME", "how /health and the logs name this instance\n(default PID@HOST)"},
    {"services", 'V', "LIST",
     "the bounded contexts this process runs, of users,\ncatalog, inventory, orders, payments, "
     "notifications\n(orders with users), or all (default). Others\ncome from the broker "
     "(needs --broker); each\nprocess has a store and a data folder of its own\nand the same "
     "master key"},
    {"queue-type", 'Y', "quorum|classic",
     "the kind of queue --services consumes from\n(default quorum)"},
    {"prefetch", 'Z', "N",
     "messages of that queue unacknowledged at a time,\n1..65535 (default 256): "
     "appended in one unit\nof work each batch"},
    {"skip-check", 'c', NULL,
     "start on a store that fails the check made at\nopen (bounded; 'tidings check' checks in "
     "full)"},
    {NULL, 0, NULL, NULL},
};

static const cmdline serve_line = {
    .program = "shop serve",
    .usage = "[options]",
    .summary = "Serves the shop's HTTP API until SIGTERM or SIGINT, then stops gracefully.\n"
               "On its first start it makes DATA/master.key and DATA/admin.key.",
    .version = SHOP_VERSION,
    .options = serve_options,
    .common = shop_cmd_store_options,
    .epilog = SHOP_EXIT_CODES_HELP,
};

/* A usage error: says what, and returns SHOP_EXIT_USAGE. */
static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return cmdline_error(&serve_line, "%s", message);
}

/* A whole number in min..max from text, or fails with message. */
static int number(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    *out = strtol(text, &end, 10);
    return text[0] && !errno && *end == '\0' && *out >= min && *out <= max ? 0 : -2;
}

/* A duration like 90s, 30m, 24h, 7d (seconds without a unit). */
static int duration(const char *text, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    int64_t unit = *end == 'd' ? 86400 : *end == 'h' ? 3600 : *end == 'm' ? 60 : 1;
    if (*end && strchr("smhd", *end))
        end++;
    if (errno || end == text || *end || n < 1 || n > SHOP_SESSION_TTL_MAX_S / unit)
        return -2;
    *out = n * unit;
    return 0;
}

static int option(int c, const char *value, serve_args *a)
{
    long n = 0;
    switch (c) {
    case 'd':
        a->db = value;
        return 0;
    case 'l':
        a->listen = value;
        return 0;
    case 'D':
        a->data = value;
        return 0;
    case 's':
        a->smtp = value;
        return 0;
    case 'b':
        a->broker = value;
        return 0;
    case 'U':
        a->broker_file = value;
        return 0;
    case 'G':
        a->exchange = value;
        return 0;
    case 'L':
        a->log_level = value;
        return 0;
    case 'H':
        a->handlers = value;
        return 0;
    case 'C':
        a->commits = value;
        return 0;
    case 'k':
        a->master_key_file = value;
        return 0;
    case 'o':
        a->http.open_access = true;
        return 0;
    case 'N':
        a->smtp_netrc = value;
        return 0;
    case 'K':
        a->smtp_ca = value;
        return 0;
    case 'S':
        a->smtp_starttls = true;
        return 0;
    case 'c':
        a->skip_check = true;
        return 0;
    case 'x':
        a->trace_file = value;
        return 0;
    case 'X':
        if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
            return bad("--otlp-endpoint takes an http:// or https:// URL, not '%s'", value);
        a->otlp_endpoint = value;
        return 0;
    case 'Q':
        return number(value, 16, 1000000, &n) < 0
                   ? bad("--otlp-queue must be a whole number from 16 to 1000000")
                   : (a->otlp_queue = (size_t)n, 0);
    case 'p':
        return number(value, 1, 3600000, &n) < 0
                   ? bad("--payment-timeout must be a positive number of ms")
                   : (a->payment_timeout_ms = (int)n, 0);
    case 'n':
        return number(value, -20, 19, &n) < 0
                   ? bad("--writer-nice must be a whole number from -20 to 19")
                   : (a->writer_nice = (int)n, 0);
    case 't':
        return number(value, 1, 64, &n) < 0
                   ? bad("--http-threads must be a whole number from 1 to 64")
                   : (a->http_threads = (unsigned)n, 0);
    case 'a':
        return number(value, 1, 100000, &n) < 0
                   ? bad("--auth-limit must be a whole number from 1 to 100000")
                   : (a->http.auth_per_minute = (double)n, 0);
    case 'r':
        return number(value, 1, 1000000, &n) < 0
                   ? bad("--rate-limit must be a whole number from 1 to 1000000")
                   : (a->http.client_per_second = (double)n, 0);
    case 'R':
        return number(value, 1, 1000000, &n) < 0
                   ? bad("--credential-rate-limit must be a whole number from 1 to 1000000")
                   : (a->http.credential_per_second = (double)n, 0);
    case 'm':
        return number(value, 16, 1000000, &n) < 0
                   ? bad("--max-connections must be a whole number from 16 to 1000000")
                   : (a->http.max_connections = (unsigned)n, 0);
    case 'M':
        return number(value, 1, 1000000, &n) < 0
                   ? bad("--max-connections-per-client must be a whole number from 1 to 1000000")
                   : (a->http.max_connections_per_client = (unsigned)n, 0);
    case 'f':
        return number(value, 1, 1000000, &n) < 0
                   ? bad("--max-feeds must be a whole number from 1 to 1000000")
                   : (a->http.max_feeds = (unsigned)n, 0);
    case 'F':
        return number(value, 1, 1000000, &n) < 0
                   ? bad("--max-feeds-per-client must be a whole number from 1 to 1000000")
                   : (a->http.max_feeds_per_client = (unsigned)n, 0);
    case 'V': {
        char why[300];
        return shop_contexts_parse(value, &a->services, why, sizeof why) < 0 ? bad("%s", why) : 0;
    }
    case 'Z':
        return number(value, 1, 65535, &n) < 0
                   ? bad("--prefetch must be a whole number from 1 to 65535")
                   : (a->prefetch = (unsigned)n, 0);
    case 'Y':
        if (strcmp(value, "quorum") != 0 && strcmp(value, "classic") != 0)
            return bad("--queue-type must be quorum or classic, not '%s'", value);
        a->queue_type = value;
        return 0;
    case 'P':
        return number(value, 1, SHOP_PARTITIONS_MAX, &n) < 0
                   ? bad("--partitions must be a whole number from 1 to %d", SHOP_PARTITIONS_MAX)
                   : (a->partitions = (unsigned)n, 0);
    case 'i':
        if (value[0] == '\0' || strlen(value) > 64)
            return bad("--instance takes a name of 1 to 64 characters");
        for (const char *ch = value; *ch; ch++)
            if ((unsigned char)*ch < 0x21 || *ch == 0x7f)
                return bad("--instance takes printable characters without spaces");
        a->instance = value;
        return 0;
    case 'W':
        return number(value, 0, 256, &n) < 0
                   ? bad("--command-workers must be a whole number from 0 to 256")
                   : (a->http.command_workers = n ? (int)n : -1, 0);
    case 'w':
        return number(value, 0, 3600000, &n) < 0
                   ? bad("--admit-wait must be a number of milliseconds from 0 to 3600000")
                   : (a->http.admit_wait_ms = n ? (int)n : -1, 0);
    case 'B':
        return number(value, 0, 3600000, &n) < 0
                   ? bad("--admit-backlog must be a number of milliseconds from 0 to 3600000")
                   : (a->http.admit_backlog_ms = n ? (int)n : -1, 0);
    case 'e':
        return number(value, 1, 3600, &n) < 0
                   ? bad("--head-timeout must be a number of seconds from 1 to 3600")
                   : (a->http.head_timeout_s = (unsigned)n, 0);
    case 'E':
        return number(value, 1, 3600, &n) < 0
                   ? bad("--body-timeout must be a number of seconds from 1 to 3600")
                   : (a->http.body_timeout_s = (unsigned)n, 0);
    case 'I':
        return duration(value, &a->http.idempotency_ttl_s) < 0
                   ? bad("--idempotency-ttl must be a duration like 30m, 24h or 7d (up to 365d)")
                   : 0;
    case 'T':
        return duration(value, &a->session_ttl_s) < 0
                   ? bad("--session-ttl must be a duration like 30m, 24h or 7d (up to 365d)")
                   : 0;
    case 'A':
        return a->hosts == HTTP_MAX_HOSTS ? bad("too many --allowed-host")
                                          : (a->http.hosts[a->hosts++] = value, 0);
    case 'O':
        return a->origins == HTTP_MAX_ORIGINS ? bad("too many --cors-origin")
                                              : (a->http.origins[a->origins++] = value, 0);
    default: /* an option in the table with no case here */
        return bad("an option this build does not handle");
    }
}

/* Returns 0 to go on, or 1 + the exit code to stop with. */
static int parse(int argc, char **argv, serve_args *a)
{
    cmdline line = serve_line;
    const char *value;
    int key, rc = 0;
    cmdline_start(&line, argc, argv);
    while (rc == 0 && (key = cmdline_next(&line, &value)) > 0)
        rc = key == CMDLINE_WORD ? bad("unexpected argument '%s'", value) : option(key, value, a);
    if (rc == 0 && key < 0)
        return 1 + line.exit_code;
    if (rc == 0 && a->handlers && strcmp(a->handlers, "eager") != 0 &&
        strcmp(a->handlers, "deferred") != 0)
        rc = bad("--handlers must be eager or deferred, not '%s'", a->handlers);
    if (rc == 0 && a->commits && strcmp(a->commits, "pipelined") != 0 &&
        strcmp(a->commits, "each") != 0)
        rc = bad("--commits must be pipelined or each, not '%s'", a->commits);
    return rc == 0 ? 0 : 1 + rc;
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
    struct in_addr ignored;
    return inet_pton(AF_INET, host, &ignored) == 1 ? 0 : -1;
}

/* Whether the address can be listened on, tried before anything starts so
 * that a taken port stops the shop before its handlers run: binds a socket
 * as the HTTP server will (SO_REUSEADDR) and closes it. Says why not. */
static int can_listen(const char *host, int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, error = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || inet_pton(AF_INET, host, &addr.sin_addr) != 1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 1) < 0)
        error = errno ? errno : EINVAL;
    if (fd >= 0)
        close(fd);
    if (error)
        fprintf(stderr, "shop serve: cannot listen on %s:%d: %s\n", host, port, strerror(error));
    return error ? -1 : 0;
}

/* mkdir -p: the folders above data too (mode 700; umask 077 is set). */
static int make_folders(const char *data)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", data);
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* The data folder, private to this user: made 0700, or narrowed to it. */
static int private_folder(const char *data)
{
    struct stat st;
    if (make_folders(data) < 0) {
        fprintf(stderr, "shop serve: cannot make the data folder %s: %s\n", data, strerror(errno));
        return -1;
    }
    if (stat(data, &st) == 0 && (st.st_mode & 077) != 0) {
        if (chmod(data, 0700) < 0) {
            fprintf(stderr,
                    "shop serve: the data folder %s is open to others (mode %03o) and "
                    "cannot be made private: %s\n",
                    data, (unsigned)(st.st_mode & 0777), strerror(errno));
            return -1;
        }
        printf("shop: made the data folder %s private (mode 700, was %03o)\n", data,
               (unsigned)(st.st_mode & 0777));
    }
    return 0;
}

typedef struct running {
    td_store *store;
    td_metrics *metrics;
    shop *shop;
    http_server *http;
    td_tracer *tracer;     /* what the shop and the store hand spans to, or NULL */
    td_tracer *trace_file; /* --trace-file's, or NULL */
    shop_otlp *otlp;       /* --otlp-endpoint's, or NULL */
    shop_spans *spans;     /* the last spans, for the console; with tracing only */
    td_relay *relay;       /* --broker's, or NULL */
    td_consumer *consumer; /* with --services: what the other services send, or NULL */
    shop_transit *transit; /* sealing for the broker, with --broker (services/transit.h) */
} running;

/* The tracer's exporter: the trace file, the collector's queue, and the
 * ring of recent spans that the console reads. */
static void export_span(const td_span *span, void *payload)
{
    running *r = payload;
    if (r->trace_file)
        td_tracer_export(r->trace_file, span);
    if (r->otlp)
        shop_otlp_export(span, r->otlp);
    shop_spans_export(span, r->spans);
}

/* Nothing appends or handles once the shop is closed, so the exporters
 * stop after it; the metrics they count into go after them. */
static void stop_all(running *r)
{
    http_server_stop(r->http);
    td_consumer_free(r->consumer); /* what it appended is acknowledged */
    shop_close(r->shop);
    td_relay_free(r->relay);       /* after the shop: what it published last is confirmed */
    shop_transit_free(r->transit); /* after the relay and the consumer that use it */
    shop_otlp_stop(r->otlp);
    td_metrics_free(r->metrics);
    td_store_free(r->store);
    td_tracer_free(r->tracer);
    td_tracer_free(r->trace_file);
    shop_spans_free(r->spans);
}

/* The tracer of --trace-file and --otlp-endpoint, given to the store (for
 * appends) and the shop (for handlers). */
static int start_tracing(running *r, const serve_args *a)
{
    int error = 0;
    if (a->trace_file && (error = td_tracer_new_file(&r->trace_file, a->trace_file)) < 0)
        fprintf(stderr, "shop serve: %s\n", td_error_last());
    if (error == 0 && a->otlp_endpoint) {
        shop_otlp_options o = {
            .endpoint = a->otlp_endpoint, .queue = a->otlp_queue, .metrics = r->metrics};
        if ((error = shop_otlp_start(&r->otlp, &o)) < 0)
            fprintf(stderr, "shop serve: cannot send spans to %s\n", a->otlp_endpoint);
    }
    if (error == 0 && (a->trace_file || a->otlp_endpoint)) {
        if ((error = shop_spans_new(&r->spans, 0)) == 0)
            error = td_tracer_new(&r->tracer, export_span, r);
        if (error < 0)
            fprintf(stderr, "shop serve: cannot start tracing: out of memory\n");
    }
    if (error == 0 && r->tracer)
        td_store_set_tracer(r->store, r->tracer);
    return error;
}

/* An admin key on a store that has none, in DATA/admin.key. */
static int first_admin_key(td_store *store, const char *data)
{
    char key[SHOP_TOKEN_LEN + 1], path[4200], name[32] = "admin";
    bool any = false;
    int error = shop_key_any(store, SHOP_ROLE_ADMIN, &any);
    if (error < 0 || any)
        return error < 0 ? (fprintf(stderr, "shop serve: %s\n", shop_error().message), error) : 0;
    for (int n = 2;
         (error = shop_key_create(store, SHOP_ROLE_ADMIN, name, key)) == TD_EEXISTS && n < 100; n++)
        snprintf(name, sizeof name, "admin-%d", n); /* "admin" names a key of another role */
    snprintf(path, sizeof path, "%s/admin.key", data);
    if (error == 0)
        error = shop_cmd_write_secret(path, key, "shop serve");
    else
        fprintf(stderr, "shop serve: %s\n", shop_error().message);
    sodium_memzero(key, sizeof key);
    if (error == 0)
        printf("shop: created the admin key '%s' in %s (send it as Authorization: Bearer; "
               "more keys: shop keys create)\n",
               name, path);
    return error;
}

/* The store stopped writes after a failed sync or commit (the keeper's
 * thread): the main thread, waiting for a signal, stops the shop as for
 * SIGTERM and exits 1. */
static atomic_bool store_failed;

static void on_store_failed(const char *why, void *payload)
{
    (void)payload;
    fprintf(stderr,
            "shop serve: the store stopped writes (%s); stopping, for a supervisor to "
            "restart the shop\n",
            why);
    atomic_store(&store_failed, true);
    kill(getpid(), SIGTERM); /* to the process: the main thread's sigwait takes it */
}

static int start_shop(running *r, const serve_args *a, bool with_broker)
{
    unsigned char master[TD_MASTER_KEY_BYTES];
    bool created = false;
    shop_options so = {.data_dir = a->data,
                       .payment_timeout_ms = a->payment_timeout_ms,
                       .metrics = r->metrics,
                       .smtp_url = a->smtp,
                       .deferred = a->handlers && strcmp(a->handlers, "deferred") == 0,
                       .master_key = master,
                       .session_ttl_s = a->session_ttl_s,
                       .smtp_netrc_file = a->smtp_netrc,
                       .smtp_user = getenv("SHOP_SMTP_USER"),
                       .smtp_password = getenv("SHOP_SMTP_PASSWORD"),
                       .smtp_ca_file = a->smtp_ca,
                       .smtp_starttls = a->smtp_starttls,
                       .tracer = r->tracer,
                       .on_store_failed = on_store_failed,
                       .partitions = a->partitions,
                       .instance_label = a->instance,
                       .services = a->services};
    if (shop_cmd_master_key(master, r->store, a->master_key_file, a->data, true, "shop serve",
                            &created) < 0)
        return TD_EINVAL;
    if (created)
        printf("shop: created the master key %s/master.key: it seals customers' personal data; "
               "keep a copy apart from the store's backups\n",
               a->data);
    int error = shop_open(&r->shop, r->store, &so);
    if (error < 0)
        fprintf(stderr, "shop serve: %s\n", shop_error().message);
    else if (with_broker &&
             (error = shop_transit_new(&r->transit, r->store, a->services, master)) < 0)
        fprintf(stderr, "shop serve: cannot prepare the broker's sealing: %s\n", td_error_last());
    sodium_memzero(master, sizeof master);
    return error;
}

/* The relay of the shop's integration events to the broker (broker.h),
 * when there is one: it connects in the background, and /health says how
 * it is doing. Another instance on the same store may run it already: this
 * one then stands by and takes over when that one stops or dies. With
 * --services it sends only what this process's contexts wrote, each body
 * as the transit seals it (services/transit.h). */
static int start_relay(running *r, const char *url, const char *exchange, unsigned services)
{
    const char *sources[SHOP_CTX_COUNT + 1];
    shop_contexts_sources(services, sources, SHOP_CTX_COUNT + 1);
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "shop";
    ro.standby = true;
    ro.broker.url = url;
    ro.broker.exchange = exchange;
    ro.broker.metrics = r->metrics;
    if (services != SHOP_CTX_ALL) /* what this process received is not sent out again */
        ro.sources = sources;
    ro.encode = shop_transit_encode;
    ro.encode_payload = r->transit;
    int error = td_relay_new(&r->relay, r->store, &ro);
    if (error == 0)
        error = td_relay_start(r->relay);
    if (error < 0)
        fprintf(stderr, "shop serve: %s\n", td_error_last());
    return error;
}

/* With --services: the queue of this process's contexts ("shop.inventory",
 * "shop.payments-notifications"), bound to what they read of the others'
 * events (common/contexts.h), appended into the store for the handlers. */
static int start_consumer(running *r, const serve_args *a, const char *url)
{
    const char *types[32];
    td_consumer_type bound[32];
    char names[SHOP_CTX_LIST_MAX], queue[SHOP_CTX_LIST_MAX + 8];
    size_t n = shop_contexts_inbound(a->services, types, 32);
    if (n == 0)
        return 0; /* nothing it needs comes from elsewhere */
    for (size_t i = 0; i < n && i < 32; i++)
        bound[i] = (td_consumer_type){types[i], 0};
    shop_contexts_format(a->services, '-', names, sizeof names);
    snprintf(queue, sizeof queue, "shop.%s", names);
    td_consumer_options co = TD_CONSUMER_OPTIONS_INIT;
    co.queue = queue;
    co.broker.url = url;
    co.broker.exchange = a->exchange;
    co.broker.metrics = r->metrics;
    co.types = bound;
    co.type_count = n < 32 ? n : 32;
    co.queue_type =
        a->queue_type && strcmp(a->queue_type, "classic") == 0 ? TD_QUEUE_CLASSIC : TD_QUEUE_QUORUM;
    co.decode = shop_transit_decode;
    co.decode_payload = r->transit;
    co.prefetch = a->prefetch;
    co.standby = true; /* another instance on this store (--partitions) may consume already */
    int error = td_consumer_new(&r->consumer, r->store, &co);
    if (error == 0)
        error = td_consumer_start(r->consumer);
    if (error < 0)
        fprintf(stderr, "shop serve: %s\n", td_error_last());
    return error;
}

static int start_all(running *r, serve_args *a, const char *host, int port, char *broker)
{
    int error = shop_open_serving_store(&r->store, a->db, a->data,
                                        a->commits && strcmp(a->commits, "each") == 0,
                                        a->writer_nice, a->skip_check);
    if (error == 0)
        error = td_metrics_new(&r->metrics);
    if (error == 0)
        error = td_metrics_watch_store(r->metrics, r->store);
    if (error < 0) {
        fprintf(stderr, "shop serve: %s\n", td_error_last());
        return error;
    }
    if ((error = start_tracing(r, a)) < 0)
        return error;
    if ((error = start_shop(r, a, broker[0] != '\0')) < 0 ||
        (!a->http.open_access && (error = first_admin_key(r->store, a->data)) < 0))
        return error;
    a->http.host = host;
    a->http.port = port;
    a->http.threads = a->http_threads;
    if (broker[0] && ((error = start_relay(r, broker, a->exchange, a->services)) < 0 ||
                      (a->services != SHOP_CTX_ALL && (error = start_consumer(r, a, broker)) < 0)))
        return error;
    a->http.metrics = r->metrics;
    a->http.spans = r->spans;
    a->http.relay = r->relay;
    a->http.consumer = r->consumer;
    if ((error = http_server_start(&r->http, r->shop, r->store, &a->http)) < 0)
        fprintf(stderr, "shop serve: cannot listen on %s:%d\n", host, port);
    return error;
}

/* Raises the open-file limit to what max_connections needs (and a margin
 * for the store, its readers and the mail), or lowers the cap to what the
 * hard limit allows, saying so. */
#define FILES_MARGIN 256
static void fit_open_files(http_options *o)
{
    struct rlimit lim;
    rlim_t want = (rlim_t)(o->max_connections ? o->max_connections : 10000) + FILES_MARGIN;
    if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
        return;
    if (lim.rlim_cur < want) {
        lim.rlim_cur = lim.rlim_max < want ? lim.rlim_max : want;
        (void)setrlimit(RLIMIT_NOFILE, &lim);
        (void)getrlimit(RLIMIT_NOFILE, &lim);
    }
    if (lim.rlim_cur < want && lim.rlim_cur > 2 * FILES_MARGIN) {
        o->max_connections = (unsigned)(lim.rlim_cur - FILES_MARGIN);
        printf("shop: the open-file limit is %llu: at most %u connections\n",
               (unsigned long long)lim.rlim_cur, o->max_connections);
    }
}

static bool loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0;
}

int shop_serve_main(int argc, char **argv)
{
    serve_args a = {
        .listen = "127.0.0.1:8080", .data = "data", .writer_nice = -10, .http_threads = 8};
    char host[256];
    int port = 0, sig = 0, rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc - 1;
    if (split_listen(a.listen, host, sizeof host, &port) < 0)
        return bad("--listen takes HOST:PORT with an IPv4 address, like 127.0.0.1:8080, not "
                   "'%s'",
                   a.listen);
    char broker[1024], why[512];
    if (broker_url_resolve(broker, sizeof broker, a.broker, a.broker_file, why, sizeof why) < 0)
        return bad("%s", why);
    if (a.services == 0)
        a.services = SHOP_CTX_ALL;
    if (a.services != SHOP_CTX_ALL && broker[0] == '\0')
        return bad("--services runs part of the shop: the other services reach it through a "
                   "broker (--broker-file FILE, or TIDINGS_BROKER)");
    if (a.http.open_access && !loopback(host))
        return bad("--open-access serves everyone as an administrator: loopback only");
    if (td_log_to_stderr(a.log_level) < 0) {
        fprintf(stderr, "shop serve: %s\n", td_error_last());
        return 2;
    }
    if (can_listen(host, port) < 0)
        return SHOP_EXIT_FAIL;
    umask(077); /* the store, its log, keys, mail: this user's alone */
    fit_open_files(&a.http);
    if (private_folder(a.data) < 0)
        return 1;
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
    int started = start_all(&r, &a, host, port, broker);
    sodium_memzero(broker, sizeof broker); /* the relay and the consumer have their copies */
    if (started < 0) {
        stop_all(&r);
        return 1;
    }
    if (a.http.open_access)
        printf("shop: WARNING: --open-access: no authentication, every request is an "
               "administrator's\n");
    printf("shop: listening on http://%s:%d\nshop: data in %s, store %s\n", host,
           http_server_port(r.http), a.data, td_store_url(r.store));
    if (a.services != SHOP_CTX_ALL) {
        char names[SHOP_CTX_LIST_MAX];
        shop_contexts_format(a.services, ',', names, sizeof names);
        printf("shop: running the services %s; the others' events come from the broker\n", names);
    }
    if (r.relay)
        printf("shop: publishing integration events to the broker (GET /health shows "
               "the connection)\n");
    fflush(stdout);
    sigwait(&stop, &sig);
    bool failed = atomic_load(&store_failed);
    printf("shop: stopping (%s)\n", failed           ? "the store failed"
                                    : sig == SIGTERM ? "SIGTERM"
                                                     : "SIGINT");
    fflush(stdout);
    stop_all(&r);
    return failed ? 1 : 0;
}
