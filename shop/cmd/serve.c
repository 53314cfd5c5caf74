/*
 * serve.c (shop commands): `shop serve`, the shop's HTTP API.
 *
 * Start-up, in order: the data folder (made 0700, and every file in it
 * private to this user: umask 077); the store; the master key (made on the
 * first start, beside the store, and refused if missing for a store that
 * has sealed data); the shop and its handlers; an admin key when the store
 * has none (written to DATA/admin.key, mode 0600, and said where); then
 * the HTTP server. SIGTERM or SIGINT stops it gracefully: no new
 * connections, requests in progress answered, event handlers finished,
 * checkpoints saved; then it exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cmd/commands.h"
#include "cmd/common.h"
#include "http/http.h"

typedef struct serve_args {
    const char *db, *listen, *data, *smtp, *broker, *log_level, *handlers, *commits;
    const char *smtp_netrc, *smtp_ca;
    bool smtp_starttls;
    const char *master_key_file;
    int payment_timeout_ms;
    int writer_nice;
    unsigned http_threads;
    int64_t session_ttl_s;
    http_options http;
    size_t hosts, origins;
} serve_args;

static int usage(FILE *out, int code)
{
    fprintf(
        out,
        "usage: shop serve [--db URL] [--listen HOST:PORT] [--data DIR] [options]\n"
        "  --db URL          the store (default sqlite:DATA/tidings.db, or TIDINGS_DB)\n"
        "  --listen H:P      where to serve HTTP (default 127.0.0.1:8080; port 0: any free)\n"
        "  --data DIR        the data folder: store, keys, mail (default ./data)\n"
        "  --master-key-file F  the key that seals personal data (default DATA/master.key,\n"
        "                    made on the first start)\n"
        "  --allowed-host NAME  a Host name served besides localhost and the listening\n"
        "                    address (repeatable; '*': any)\n"
        "  --cors-origin ORIGIN  allow cross-origin requests from ORIGIN (repeatable)\n"
        "  --session-ttl T   how long a customer's session lasts: 30m, 24h (default), 7d\n"
        "  --idempotency-ttl T  how long Idempotency-Key answers are kept (default 24h)\n"
        "  --auth-limit N    logins and registrations per minute per client (default 60)\n"
        "  --smtp URL        send e-mail through smtp://host:port or smtps://host:port\n"
        "                    instead of spooling it in DATA/mail\n"
        "  --smtp-starttls   with smtp://: STARTTLS or no mail\n"
        "  --smtp-credentials-file F  the SMTP login, as a netrc file (mode 0600); or set\n"
        "                    SHOP_SMTP_USER and SHOP_SMTP_PASSWORD (never on the command line)\n"
        "  --smtp-ca-file F  CA certificates to check the SMTP server with\n"
        "  --payment-timeout MS  no payment answer by then: the order is cancelled\n"
        "  --log-level L     error, warn, info (default) or debug\n"
        "  --handlers eager|deferred  eager (default): the saga, inventory and read models\n"
        "                    act in the unit that appends their event\n"
        "  --commits pipelined|each  pipelined (default): the writer goes on while a\n"
        "                    commit's fsync is in flight (answers still wait for it)\n"
        "  --writer-nice N   the store writer thread's nice value, -20..19 (default -10)\n"
        "  --http-threads N  threads answering requests, 1..64 (default 8)\n"
        "  --open-access     no authentication: every request is an administrator's.\n"
        "                    For benchmarks on loopback only; refused on other addresses\n");
    return code;
}

static int bad(const char *what)
{
    fprintf(stderr, "shop serve: %s\n", what);
    return 2;
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

static int parse(int argc, char **argv, serve_args *a)
{
    static const struct option longs[] = {
        {"db", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"data", required_argument, NULL, 'D'},
        {"smtp", required_argument, NULL, 's'},
        {"broker", required_argument, NULL, 'b'},
        {"log-level", required_argument, NULL, 'L'},
        {"handlers", required_argument, NULL, 'H'},
        {"commits", required_argument, NULL, 'C'},
        {"master-key-file", required_argument, NULL, 'k'},
        {"payment-timeout", required_argument, NULL, 'p'},
        {"writer-nice", required_argument, NULL, 'n'},
        {"http-threads", required_argument, NULL, 't'},
        {"auth-limit", required_argument, NULL, 'a'},
        {"session-ttl", required_argument, NULL, 'T'},
        {"idempotency-ttl", required_argument, NULL, 'I'},
        {"allowed-host", required_argument, NULL, 'A'},
        {"cors-origin", required_argument, NULL, 'O'},
        {"open-access", no_argument, NULL, 'o'},
        {"smtp-credentials-file", required_argument, NULL, 'N'},
        {"rate-limit", required_argument, NULL, 'r'},
        {"credential-rate-limit", required_argument, NULL, 'R'},
        {"max-connections", required_argument, NULL, 'm'},
        {"max-connections-per-client", required_argument, NULL, 'M'},
        {"max-feeds", required_argument, NULL, 'f'},
        {"max-feeds-per-client", required_argument, NULL, 'F'},
        {"head-timeout", required_argument, NULL, 'e'},
        {"body-timeout", required_argument, NULL, 'E'},
        {"smtp-ca-file", required_argument, NULL, 'K'},
        {"smtp-starttls", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, rc = 0;
    optind = 0;
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout, 0);
            return 1;
        }
        if (c == ':' || c == '?') {
            fprintf(stderr, "shop serve: %s '%s'\n",
                    c == ':' ? "a value is needed for" : "unknown option", argv[optind - 1]);
            return 2;
        }
        rc = option(c, optarg, a);
    }
    if (rc == 0 && optind < argc) {
        fprintf(stderr, "shop serve: unexpected argument '%s'\n", argv[optind]);
        rc = 2;
    }
    if (rc == 0 && a->handlers && strcmp(a->handlers, "eager") != 0 &&
        strcmp(a->handlers, "deferred") != 0)
        rc = bad("--handlers must be eager or deferred");
    if (rc == 0 && a->commits && strcmp(a->commits, "pipelined") != 0 &&
        strcmp(a->commits, "each") != 0)
        rc = bad("--commits must be pipelined or each");
    return rc;
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

/* The data folder, private to this user: made 0700, or narrowed to it. */
static int private_folder(const char *data)
{
    struct stat st;
    if (mkdir(data, 0700) < 0 && errno != EEXIST) {
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
} running;

static void stop_all(running *r)
{
    http_server_stop(r->http);
    shop_close(r->shop);
    td_metrics_free(r->metrics);
    td_store_free(r->store);
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

static int start_shop(running *r, const serve_args *a)
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
                       .smtp_starttls = a->smtp_starttls};
    if (shop_cmd_master_key(master, r->store, a->master_key_file, a->data, true, "shop serve",
                            &created) < 0)
        return TD_EINVAL;
    if (created)
        printf("shop: created the master key %s/master.key: it seals customers' personal data; "
               "keep a copy apart from the store's backups\n",
               a->data);
    int error = shop_open(&r->shop, r->store, &so);
    sodium_memzero(master, sizeof master);
    if (error < 0)
        fprintf(stderr, "shop serve: %s\n", shop_error().message);
    return error;
}

static int start_all(running *r, serve_args *a, const char *host, int port)
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
    if ((error = start_shop(r, a)) < 0 ||
        (!a->http.open_access && (error = first_admin_key(r->store, a->data)) < 0))
        return error;
    a->http.host = host;
    a->http.port = port;
    a->http.threads = a->http_threads;
    a->http.metrics = r->metrics;
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
        return rc == 1 ? 0 : rc;
    if (split_listen(a.listen, host, sizeof host, &port) < 0)
        return bad("--listen takes HOST:PORT, like 127.0.0.1:8080");
    if (a.broker)
        return bad("this build has no RabbitMQ transport yet");
    if (a.http.open_access && !loopback(host))
        return bad("--open-access serves everyone as an administrator: loopback only");
    if (td_log_to_stderr(a.log_level) < 0) {
        fprintf(stderr, "shop serve: %s\n", td_error_last());
        return 2;
    }
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
    if (start_all(&r, &a, host, port) < 0) {
        stop_all(&r);
        return 1;
    }
    if (a.http.open_access)
        printf("shop: WARNING: --open-access: no authentication, every request is an "
               "administrator's\n");
    printf("shop: listening on http://%s:%d\nshop: data in %s, store %s\n", host,
           http_server_port(r.http), a.data, td_store_url(r.store));
    fflush(stdout);
    sigwait(&stop, &sig);
    printf("shop: stopping (%s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    fflush(stdout);
    stop_all(&r);
    return 0;
}
