/*
 * load.c (shop): `shop load`, the load generator.
 *
 *   shop load --url URL --orders N --concurrency C [--products P]
 *             [--decline-rate R] [--seed S] [--rate ORDERS_PER_S] [--key-file F]
 *             [--settle SECONDS]
 *
 * With the admin key in F (DATA/admin.key of the shop), it creates P
 * products, registers C customers with passwords and logs each in, then C
 * client threads place N orders (1 to 3 items, tok_decline with
 * probability R), each as its own customer with its session token, as fast
 * as they can or paced to --rate orders per second in all. (Without a key
 * it sends no credentials: for a shop serving with --open-access.) One
 * Server-Sent Events connection watches OrderStatusChanged and notes when
 * each order reaches a final status (Processing or Cancelled), so
 * order-to-final latency is measured without polling: from the POST to the
 * final event's arrival on the feed (order_to_final_ms), and to the final
 * event's occurred_at in the store (order_to_final_store_ms: the shop's
 * own time, apart from how fast the feed carries it; same host, same
 * clock). Afterwards it checks
 * consistency: every order final, and for every product its initial stock
 * minus the units of its Processing orders is the stock the shop reports.
 * Where that stock is fed from another process (the shop as services: the
 * catalog hears of reservations and releases through the broker, and a
 * cancelled order's release is decided after the order is final),
 * --settle S asks the same question again every 100 ms for up to S seconds
 * and reports how long the figures took to agree and in how many checks
 * (stock_settled_ms: MS (N checks)); the default, 0, asks once.
 * The last three lines are orders_per_s, order_to_final_p95_ms and
 * consistency: ok (or FAILED with why, and exit 1). With --ids, each
 * acknowledged order's id is appended to FILE as it is acknowledged, a line
 * each: what a run cut short (the shop killed under it) had been told.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <tidings/tidings.h>

#include "cmd/commands.h"
#include "cmdline.h"

#define MAX_PRODUCTS      64
#define STOCK_PER_PRODUCT 1000000

typedef struct order_slot {
    char id[40];
    double placed_at, final_at; /* seconds, monotonic */
    double placed_wall;         /* seconds, the wall clock, as occurred_at */
    double placement_ms;
    bool refused;      /* 503 or 429 and not tried again: the shop turned it away */
    double refusal_ms; /* how long the last refusal took to come */
    char status[16];
    int quantities[MAX_PRODUCTS];
} order_slot;

typedef struct load {
    const char *url;
    char key[128];      /* the admin key, or "" */
    char (*tokens)[64]; /* each client's session */
    int orders, concurrency, products;
    double decline_rate;
    double rate;   /* orders per second in all; 0: as fast as possible */
    double settle; /* seconds the stock may take to agree (--settle); 0: at once */
    bool no_retry; /* a refused order stays refused (else: tried again after Retry-After) */
    const char *key_file;
    double start;
    unsigned seed;
    char product_ids[MAX_PRODUCTS][40];
    char (*user_ids)[40];
    order_slot *slots;
    atomic_int next, placed, finals, failures, refused;
    FILE *ids; /* --ids: acknowledged orders, under lock; NULL: none */
    pthread_mutex_t lock;
    atomic_bool stop_feed;
    char first_failure[256]; /* why the first failed placement failed (under lock) */
} load;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct buffer {
    char *data;
    size_t len;
} buffer;

static size_t collect(char *data, size_t size, size_t n, void *payload)
{
    buffer *b = payload;
    char *grown = realloc(b->data, b->len + size * n + 1);
    if (grown == NULL)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, data, size * n);
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

/* A JSON request with token's credentials (none when ""); returns the
 * parsed answer (caller decrefs) and *status. */
/* Keeps why the first failed placement failed, for the report. */
static void note_failure(load *l, long status, json_t *answer)
{
    const char *detail = json_string_value(json_object_get(answer, "detail"));
    pthread_mutex_lock(&l->lock);
    if (status == 0)
        snprintf(l->first_failure, sizeof l->first_failure, "no answer (connection failed)");
    else
        snprintf(l->first_failure, sizeof l->first_failure, "status %ld: %s", status,
                 detail ? detail : "(no detail)");
    pthread_mutex_unlock(&l->lock);
}

static json_t *call(CURL *c, const char *base, const char *token, const char *method,
                    const char *path, const char *body, long *status)
{
    char url[512], auth[256];
    buffer b = {NULL, 0};
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    if (token[0])
        headers = curl_slist_append(headers, auth);
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    *status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(headers);
    json_error_t err;
    json_t *json = b.data ? json_loads(b.data, 0, &err) : NULL;
    free(b.data);
    return json;
}

/* call, waiting out 429 Too Many Requests (registrations and logins are
 * throttled per client address). */
static json_t *patient_call(CURL *c, const char *base, const char *token, const char *method,
                            const char *path, const char *body, long *status)
{
    for (int tries = 0;; tries++) {
        json_t *json = call(c, base, token, method, path, body, status);
        if (*status != 429 || tries == 600)
            return json;
        json_decref(json);
        sleep(1);
    }
}

/* ---- setting up ------------------------------------------------------------------- */

/* Registers customer u (new on every run, also against the same shop) and,
 * on a shop with authentication, logs them in. */
static int make_customer(load *l, CURL *c, int u)
{
    char body[512], email[128], password[40];
    long status;
    snprintf(email, sizeof email, "load-%u-%lld-%d@example.com", l->seed, (long long)td_time_now(),
             u);
    snprintf(password, sizeof password, "load-%08x-%08x", (unsigned)rand(), (unsigned)rand());
    snprintf(body, sizeof body,
             "{\"email\":\"%s\",\"full_name\":\"Load client %d\",\"password\":\"%s\"}", email, u,
             password);
    json_t *user = patient_call(c, l->url, l->key, "POST", "/users", body, &status);
    const char *id = json_string_value(json_object_get(user, "id"));
    if (status != 201 || !id) {
        fprintf(stderr, "shop load: cannot register customers (%ld)\n", status);
        json_decref(user);
        return -1;
    }
    snprintf(l->user_ids[u], sizeof l->user_ids[u], "%s", id);
    json_decref(user);
    if (l->key[0] == '\0')
        return 0; /* --open-access: no sessions */
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    json_t *session = patient_call(c, l->url, "", "POST", "/sessions", body, &status);
    const char *token = json_string_value(json_object_get(session, "token"));
    if (status != 201 || !token || strlen(token) >= sizeof l->tokens[u]) {
        fprintf(stderr, "shop load: cannot log customers in (%ld)\n", status);
        json_decref(session);
        return -1;
    }
    snprintf(l->tokens[u], sizeof l->tokens[u], "%s", token);
    json_decref(session);
    return 0;
}

static int make_catalog(load *l, CURL *c)
{
    long status;
    char body[256];
    for (int p = 0; p < l->products; p++) {
        snprintf(body, sizeof body,
                 "{\"name\":\"Load item %d\",\"price\":%d,\"currency\":\"USD\",\"stock\":%d}", p,
                 100 + p * 25, STOCK_PER_PRODUCT);
        json_t *product = call(c, l->url, l->key, "POST", "/products", body, &status);
        const char *id = json_string_value(json_object_get(product, "id"));
        if (status != 201 || !id)
            return fprintf(stderr, "shop load: cannot create products (%ld)\n", status), -1;
        snprintf(l->product_ids[p], sizeof l->product_ids[p], "%s", id);
        json_decref(product);
    }
    for (int u = 0; u < l->concurrency; u++)
        if (make_customer(l, c, u) < 0)
            return -1;
    return 0;
}

/* ---- the clients ------------------------------------------------------------------------ */

static void order_body(load *l, unsigned *seed, int client, order_slot *slot, char *body,
                       size_t size)
{
    int items = 1 + (int)(rand_r(seed) % 3), used = 0;
    char list[512] = "";
    bool taken[MAX_PRODUCTS] = {false};
    for (int i = 0; i < items && i < l->products; i++) {
        int p = (int)(rand_r(seed) % (unsigned)l->products);
        while (taken[p])
            p = (p + 1) % l->products;
        taken[p] = true;
        int q = 1 + (int)(rand_r(seed) % 3);
        slot->quantities[p] = q;
        used += snprintf(list + used, sizeof list - (size_t)used,
                         "%s{\"product_id\":\"%s\",\"quantity\":%d}", i ? "," : "",
                         l->product_ids[p], q);
    }
    bool decline = (double)rand_r(seed) / RAND_MAX < l->decline_rate;
    snprintf(body, size,
             "{\"user_id\":\"%s\",\"items\":[%s],\"shipping_address\":{\"line1\":\"1 Load St\","
             "\"city\":\"Benchville\",\"postal_code\":\"1000\",\"country\":\"US\"},"
             "\"payment\":{\"method\":\"card\",\"token\":\"%s\"}}",
             l->user_ids[client], list, decline ? "tok_decline" : "tok_visa");
}

typedef struct client {
    load *l;
    int index;
} client;

/* Places slot's order: once, or, refused (503, 429: nothing was done),
 * again after the Retry-After the shop gave (at most 5 s) until it is taken,
 * unless --no-retry. Counts every refusal; the placement's figures are
 * those of the attempt that was answered otherwise. */
static void place(load *l, CURL *c, const char *token, order_slot *slot, const char *body)
{
    for (;;) {
        long status;
        double start = now_s();
        double wall = (double)td_time_now() / 1e6;
        pthread_mutex_lock(&l->lock);
        slot->placed_at = start;
        slot->placed_wall = wall;
        pthread_mutex_unlock(&l->lock);
        json_t *order = call(c, l->url, token, "POST", "/orders", body, &status);
        const char *id = json_string_value(json_object_get(order, "id"));
        double took_ms = (now_s() - start) * 1000;
        bool refused = status == 503 || status == 429;
        pthread_mutex_lock(&l->lock);
        if (refused)
            slot->refusal_ms = took_ms;
        else
            slot->placement_ms = took_ms;
        if (status == 202 && id)
            snprintf(slot->id, sizeof slot->id, "%s", id);
        if (status == 202 && id && l->ids) {
            fprintf(l->ids, "%s\n", id);
            fflush(l->ids);
        }
        pthread_mutex_unlock(&l->lock);
        if (status == 202 && id)
            atomic_fetch_add(&l->placed, 1);
        else if (refused) /* said at once, so the client may wait or go elsewhere */
            atomic_fetch_add(&l->refused, 1);
        else if (atomic_fetch_add(&l->failures, 1) == 0)
            note_failure(l, status, order);
        json_decref(order);
        curl_off_t retry_after = 1;
        if (!refused || l->no_retry) {
            slot->refused = refused;
            return;
        }
        if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry_after) != CURLE_OK || retry_after < 1)
            retry_after = 1;
        sleep(retry_after > 5 ? 5u : (unsigned)retry_after);
    }
}

static void *run_client(void *arg)
{
    client *cl = arg;
    load *l = cl->l;
    unsigned seed = l->seed * 7919u + (unsigned)cl->index;
    CURL *c = curl_easy_init();
    char body[1024];
    for (int i; c && (i = atomic_fetch_add(&l->next, 1)) < l->orders;) {
        order_slot *slot = &l->slots[i];
        if (l->rate > 0) { /* order i is due at start + i / rate */
            double wait = l->start + i / l->rate - now_s();
            if (wait > 0)
                usleep((useconds_t)(wait * 1e6));
        }
        order_body(l, &seed, cl->index, slot, body, sizeof body);
        place(l, c, l->tokens[cl->index], slot, body);
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* ---- watching orders become final -------------------------------------------------- */

typedef struct final_note {
    char id[40];
    char status[16];
    double at;       /* arrival on the feed: seconds, monotonic */
    double occurred; /* the event's occurred_at: seconds, wall clock; 0 if unreadable */
} final_note;

typedef struct watcher {
    load *l;
    final_note *notes; /* appended by the feed thread under lock */
    int count, cap;
    char buf[1 << 16];
    size_t len;
    pthread_mutex_t lock;
} watcher;

static void note_frame(watcher *w, char *frame)
{
    char *data = strstr(frame, "data: ");
    json_error_t err;
    json_t *event = data ? json_loads(data + 6, 0, &err) : NULL;
    json_t *d = json_object_get(event, "data");
    const char *to = json_string_value(json_object_get(d, "to_status"));
    const char *id = json_string_value(json_object_get(d, "order_id"));
    if (id && to && (strcmp(to, "Processing") == 0 || strcmp(to, "Cancelled") == 0) &&
        w->count < w->cap) {
        pthread_mutex_lock(&w->lock);
        final_note *n = &w->notes[w->count];
        snprintf(n->id, sizeof n->id, "%s", id);
        snprintf(n->status, sizeof n->status, "%s", to);
        n->at = now_s();
        td_time occurred = 0;
        const char *text = json_string_value(json_object_get(event, "occurred_at"));
        n->occurred = text && td_time_parse(&occurred, text) == 0 ? (double)occurred / 1e6 : 0;
        w->count++;
        pthread_mutex_unlock(&w->lock);
        atomic_fetch_add(&w->l->finals, 1);
    }
    json_decref(event);
}

static size_t on_feed(char *data, size_t size, size_t n, void *payload)
{
    watcher *w = payload;
    size_t len = size * n;
    if (w->len + len >= sizeof w->buf)
        return 0;
    memcpy(w->buf + w->len, data, len);
    w->len += len;
    w->buf[w->len] = '\0';
    for (char *end; (end = strstr(w->buf, "\n\n")) != NULL;) {
        *end = '\0';
        note_frame(w, w->buf);
        size_t used = (size_t)(end + 2 - w->buf);
        memmove(w->buf, end + 2, w->len - used + 1);
        w->len -= used;
    }
    return len;
}

static int keep_going(void *payload, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    watcher *w = payload;
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    return atomic_load(&w->l->stop_feed) ? 1 : 0;
}

static void *watch(void *arg)
{
    watcher *w = arg;
    char url[512];
    snprintf(url, sizeof url, "%s/events/stream?type=OrderStatusChanged", w->l->url);
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", w->l->key);
    struct curl_slist *headers = w->l->key[0] ? curl_slist_append(NULL, auth) : NULL;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_feed);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, keep_going);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    return NULL;
}

/* ---- the report ---------------------------------------------------------------------- */

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double *values, int n, double p)
{
    if (n == 0)
        return 0;
    qsort(values, (size_t)n, sizeof *values, by_value);
    int i = (int)(p * n);
    return values[i < n ? i : n - 1];
}

static void progress(load *l, bool tty, int *last_decile)
{
    int placed = atomic_load(&l->placed), finals = atomic_load(&l->finals);
    if (tty) {
        int filled = l->orders ? finals * 40 / l->orders : 40;
        printf("\r[%-40.*s] %d/%d placed, %d final", filled,
               "########################################", placed, l->orders, finals);
        fflush(stdout);
    } else if (l->orders && finals * 10 / l->orders > *last_decile) {
        *last_decile = finals * 10 / l->orders;
        printf("progress: %d/%d placed, %d final\n", placed, l->orders, finals);
        fflush(stdout);
    }
}

/* How many of the orders this run placed the feed has seen final. The
 * feed carries every order's status, others' too (a test placing its own
 * meanwhile), so counting finals alone can end the wait before all of ours
 * are final. After the clients are joined (their ids are set); takes the
 * watcher's lock against the feed thread. */
static int own_finals(load *l, watcher *w)
{
    int done = 0;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < l->orders; i++) {
        const order_slot *s = &l->slots[i];
        for (int k = 0; s->id[0] && k < w->count; k++)
            if (strcmp(w->notes[k].id, s->id) == 0) {
                done++;
                break;
            }
    }
    pthread_mutex_unlock(&w->lock);
    return done;
}

/* Matches notes to orders; fills latencies (to_store: *stored of them);
 * returns how many orders are final. */
static int reconcile(load *l, watcher *w, double *to_final, double *to_store, int *stored,
                     int *processing, int *cancelled)
{
    int done = 0;
    *processing = *cancelled = *stored = 0;
    for (int i = 0; i < l->orders; i++) {
        order_slot *s = &l->slots[i];
        for (int k = 0; s->id[0] && k < w->count; k++)
            if (strcmp(w->notes[k].id, s->id) == 0) {
                snprintf(s->status, sizeof s->status, "%s", w->notes[k].status);
                to_final[done++] = (w->notes[k].at - s->placed_at) * 1000;
                if (w->notes[k].occurred > 0)
                    to_store[(*stored)++] = (w->notes[k].occurred - s->placed_wall) * 1000;
                *processing += strcmp(s->status, "Processing") == 0;
                *cancelled += strcmp(s->status, "Cancelled") == 0;
                break;
            }
    }
    return done;
}

/* Stock conserved: initial - units of Processing orders == reported stock. */
static int check_stock_once(load *l, CURL *c, char *why, size_t size)
{
    int error = 0;
    for (int p = 0; p < l->products && error == 0; p++) {
        long expected = STOCK_PER_PRODUCT, status;
        for (int i = 0; i < l->orders; i++)
            if (strcmp(l->slots[i].status, "Processing") == 0)
                expected -= l->slots[i].quantities[p];
        char path[96];
        snprintf(path, sizeof path, "/products/%s", l->product_ids[p]);
        json_t *product = call(c, l->url, "", "GET", path, NULL, &status);
        long stock = (long)json_integer_value(json_object_get(product, "stock"));
        if (status != 200 || stock != expected) {
            snprintf(why, size, "product %d has stock %ld, expected %ld", p, stock, expected);
            error = -1;
        }
        json_decref(product);
    }
    return error;
}

/* check_stock_once, again every 100 ms until it holds or l->settle
 * seconds have passed; *settled_ms: how long it took to hold (the checks'
 * own time included), *checks: how many were made. */
static int check_stock(load *l, char *why, size_t size, double *settled_ms, int *checks)
{
    CURL *c = curl_easy_init();
    if (c == NULL) {
        snprintf(why, size, "out of memory for the stock check");
        return -1;
    }
    double start = now_s(), deadline = start + l->settle;
    int error;
    *checks = 1;
    while ((error = check_stock_once(l, c, why, size)) < 0 && now_s() < deadline) {
        usleep(100000);
        ++*checks;
    }
    *settled_ms = (now_s() - start) * 1000;
    curl_easy_cleanup(c);
    return error;
}

/* ---- the command -------------------------------------------------------------------------- */

/* The key in path: its first line. */
static int read_key(const char *path, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(out, (int)size, f) == NULL) {
        fprintf(stderr, "shop load: cannot read the key file '%s': %s\n", path,
                f == NULL ? strerror(errno) : "it is empty");
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static const cmdline_option load_options[] = {
    {"url", 'u', "URL", "the running shop, like http://127.0.0.1:8080\n(required)"},
    {"orders", 'o', "N", "orders to place, 1..1000000 (required)"},
    {"concurrency", 'c', "C", "customers placing them at once, 1..256 (required)"},
    {"products", 'p', "P", "products to make and order from, 1..64 (default 5)"},
    {"decline-rate", 'd', "R", "the share of payments declined, 0..1 (default 0)"},
    {"rate", 'r', "ORDERS_PER_S", "orders per second in all (default: as fast as\npossible)"},
    {"seed", 's', "S", "the random seed (default 42)"},
    {"settle", 'S', "SECONDS",
     "give the stock check up to SECONDS, 0..600, to\nagree (a shop as services: stock "
     "follows the\nbroker); default 0: checked once"},
    {"key-file", 'k', "FILE",
     "the shop's admin key (DATA/admin.key): it makes\nproducts and follows every order; "
     "customers\nlog in on their own"},
    {"no-retry", 'n', NULL,
     "a refused order (503, 429) stays refused; by\ndefault it is placed again after the "
     "Retry-After\nthe shop gave"},
    {"ids", 'i', "FILE",
     "append each acknowledged order's id to FILE, a\nline each (for runs cut short)"},
    {NULL, 0, NULL, NULL},
};

static const cmdline load_line = {
    .program = "shop load",
    .usage = "--url URL --orders N --concurrency C [options]",
    .summary = "Places orders against a running shop, as customers that register and log\n"
               "in, follows each to its end, and checks the outcome (stock, statuses).",
    .version = SHOP_VERSION,
    .options = load_options,
    .epilog = SHOP_EXIT_CODES_HELP,
};

/* A number from text in [min, max], or a usage error naming the option. */
static int number(const char *option, const char *text, double min, double max, bool whole,
                  double *out)
{
    char *end = NULL;
    errno = 0;
    *out = strtod(text, &end);
    if (text[0] && *end == '\0' && errno == 0 && *out >= min && *out <= max &&
        (!whole || *out == (double)(long long)*out))
        return 0;
    return cmdline_error(&load_line, "--%s must be a%s number from %.15g to %.15g, not '%s'",
                         option, whole ? " whole" : "", min, max, text);
}

/* Returns 0 to go on, or 1 + the exit code to stop with. */
static int parse(int argc, char **argv, load *l)
{
    cmdline line = load_line;
    const char *value;
    double n = 0;
    int key, rc = 0;
    cmdline_start(&line, argc, argv);
    while (rc == 0 && (key = cmdline_next(&line, &value)) > 0) {
        switch (key) {
        case 'u':
            l->url = value;
            break;
        case 'o':
            rc = number("orders", value, 1, 1000000, true, &n);
            l->orders = (int)n;
            break;
        case 'c':
            rc = number("concurrency", value, 1, 256, true, &n);
            l->concurrency = (int)n;
            break;
        case 'p':
            rc = number("products", value, 1, MAX_PRODUCTS, true, &n);
            l->products = (int)n;
            break;
        case 'd':
            rc = number("decline-rate", value, 0, 1, false, &l->decline_rate);
            break;
        case 'r':
            rc = number("rate", value, 0, 1e9, false, &l->rate);
            break;
        case 's':
            rc = number("seed", value, 0, 4294967295.0, true, &n);
            l->seed = (unsigned)n;
            break;
        case 'S':
            rc = number("settle", value, 0, 600, false, &l->settle);
            break;
        case 'k':
            l->key_file = value;
            break;
        case 'n':
            l->no_retry = true;
            break;
        case 'i':
            if (l->ids == NULL && (l->ids = fopen(value, "a")) == NULL)
                rc = cmdline_error(&load_line, "--ids: cannot open %s", value);
            break;
        default:
            rc = cmdline_error(&load_line, "unexpected argument '%s'", value);
        }
    }
    if (rc == 0 && key < 0)
        return 1 + line.exit_code;
    if (rc == 0 && (l->url == NULL || l->orders == 0 || l->concurrency == 0))
        rc = cmdline_error(&load_line, "--url, --orders and --concurrency are required");
    return rc == 0 ? 0 : 1 + rc;
}

static void report(load *l, watcher *w, double elapsed, double settled_ms, int checks,
                   bool consistent, const char *why)
{
    double *placement = calloc((size_t)l->orders + 1, sizeof(double));
    double *refusal = calloc((size_t)l->orders + 1, sizeof(double));
    double *to_final = calloc((size_t)l->orders + 1, sizeof(double));
    double *to_store = calloc((size_t)l->orders + 1, sizeof(double));
    int processing = 0, cancelled = 0, n = 0, r = 0, stored = 0;
    if (!placement || !refusal || !to_final || !to_store) {
        printf("consistency: FAILED (out of memory for the report)\n");
        free(placement);
        free(refusal);
        free(to_final);
        free(to_store);
        return;
    }
    for (int i = 0; i < l->orders; i++) {
        if (l->slots[i].id[0])
            placement[n++] = l->slots[i].placement_ms;
        if (l->slots[i].refusal_ms > 0) /* its last refusal, taken again or not */
            refusal[r++] = l->slots[i].refusal_ms;
    }
    int finals = reconcile(l, w, to_final, to_store, &stored, &processing, &cancelled);
    printf("orders: %d placed, %d refused, %d failed, %d final\n", atomic_load(&l->placed),
           atomic_load(&l->refused), atomic_load(&l->failures), finals);
    if (l->first_failure[0])
        printf("first_failure: %s\n", l->first_failure);
    printf("elapsed_s: %.2f\n", elapsed);
    printf("placement_ms: p50 %.1f p95 %.1f p99 %.1f\n", percentile(placement, n, 0.5),
           percentile(placement, n, 0.95), percentile(placement, n, 0.99));
    if (r > 0)
        printf("refusal_ms: p50 %.1f p95 %.1f p99 %.1f\n", percentile(refusal, r, 0.5),
               percentile(refusal, r, 0.95), percentile(refusal, r, 0.99));
    double p95 = percentile(to_final, finals, 0.95);
    printf("order_to_final_ms: p50 %.1f p95 %.1f p99 %.1f\n", percentile(to_final, finals, 0.5),
           p95, percentile(to_final, finals, 0.99));
    printf("order_to_final_store_ms: p50 %.1f p95 %.1f p99 %.1f\n",
           percentile(to_store, stored, 0.5), percentile(to_store, stored, 0.95),
           percentile(to_store, stored, 0.99));
    printf("status Processing: %d\nstatus Cancelled: %d\n", processing, cancelled);
    if (l->settle > 0 && settled_ms >= 0)
        printf("stock_settled_ms: %.0f (%d checks)\n", settled_ms, checks);
    printf("orders_per_s: %.0f\n", elapsed > 0 ? finals / elapsed : 0);
    printf("order_to_final_p95_ms: %.1f\n", p95);
    printf(consistent ? "consistency: ok\n" : "consistency: FAILED (%s)\n", why);
    free(placement);
    free(refusal);
    free(to_final);
    free(to_store);
}

static int run(load *l)
{
    CURL *setup = curl_easy_init();
    watcher w = {l,
                 calloc((size_t)l->orders * 2 + 16, sizeof(final_note)),
                 0,
                 l->orders * 2 + 16,
                 "",
                 0,
                 PTHREAD_MUTEX_INITIALIZER};
    pthread_t feed, *clients = calloc((size_t)l->concurrency, sizeof *clients);
    client *args = calloc((size_t)l->concurrency, sizeof *args);
    bool tty = isatty(1);
    int decile = 0, error = !setup || !w.notes || !clients || !args ? -1 : make_catalog(l, setup);
    curl_easy_cleanup(setup);
    if (error == 0) {
        pthread_create(&feed, NULL, watch, &w);
        usleep(200000); /* the feed is open: every final from now on is seen */
        double start = now_s();
        l->start = start;
        for (int i = 0; i < l->concurrency; i++) {
            args[i] = (client){l, i};
            pthread_create(&clients[i], NULL, run_client, &args[i]);
        }
        for (int i = 0; i < l->concurrency; i++)
            pthread_join(clients[i], NULL);
        double deadline = now_s() + 60;
        while (own_finals(l, &w) < atomic_load(&l->placed) && now_s() < deadline) {
            progress(l, tty, &decile);
            usleep(100000);
        }
        progress(l, tty, &decile);
        if (tty)
            printf("\n");
        double elapsed = now_s() - start;
        atomic_store(&l->stop_feed, true);
        pthread_join(feed, NULL);
        char why[256] = "";
        int processing, cancelled, stored;
        double *scratch = calloc(2 * ((size_t)l->orders + 1), sizeof(double));
        int finals = scratch ? reconcile(l, &w, scratch, scratch + l->orders + 1, &stored,
                                         &processing, &cancelled)
                             : 0;
        free(scratch);
        int accepted = atomic_load(&l->placed);
        bool consistent = finals == accepted && atomic_load(&l->failures) == 0;
        double settled_ms = -1;
        int checks = 0;
        if (!consistent)
            snprintf(why, sizeof why, "%d of %d accepted orders final, %d placements failed",
                     finals, accepted, atomic_load(&l->failures));
        else if (check_stock(l, why, sizeof why, &settled_ms, &checks) < 0)
            consistent = false;
        report(l, &w, elapsed, settled_ms, checks, consistent, why);
        error = consistent ? 0 : -1;
    }
    free(w.notes);
    pthread_mutex_destroy(&w.lock);
    free(clients);
    free(args);
    return error;
}

int shop_load_main(int argc, char **argv)
{
    load l = {.products = 5, .seed = 42};
    int rc = parse(argc, argv, &l);
    if (rc != 0) {
        if (l.ids)
            fclose(l.ids);
        return rc - 1;
    }
    if (l.key_file && read_key(l.key_file, l.key, sizeof l.key) < 0) {
        if (l.ids)
            fclose(l.ids);
        return 1;
    }
    srand(l.seed ^ (unsigned)td_time_now());
    l.slots = calloc((size_t)l.orders, sizeof *l.slots);
    l.user_ids = calloc((size_t)l.concurrency, sizeof *l.user_ids);
    l.tokens = calloc((size_t)l.concurrency, sizeof *l.tokens);
    pthread_mutex_init(&l.lock, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = l.slots && l.user_ids && l.tokens && run(&l) == 0 ? SHOP_EXIT_OK : SHOP_EXIT_FAIL;
    curl_global_cleanup();
    if (l.ids && fclose(l.ids) != 0)
        rc = SHOP_EXIT_FAIL;
    free(l.slots);
    free(l.user_ids);
    free(l.tokens);
    pthread_mutex_destroy(&l.lock);
    return rc;
}
