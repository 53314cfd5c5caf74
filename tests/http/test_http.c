/*
 * test_http.c: the shop's HTTP API end to end: `shop serve` started on a
 * free loopback port, talked to with libcurl. Every route, saga outcomes
 * over HTTP, and a graceful SIGTERM while orders are coming in, after which
 * every accepted order exists. Bad requests are data: test_bad_input.py
 * runs the cases in bad_input/.
 */
#include <errno.h>
#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"

#include "support.h"

static const char *shop_binary;
static char *dir;
static char store_url[4300]; /* the shop's store: SQLite in DATA, or a PostgreSQL schema */
static pid_t server;
static char base[64];
static char admin_key[128];     /* DATA/admin.key, made on the first start */
static const char *credentials; /* sent as the bearer token; admin_key unless changed */

/* ---- the server and requests ----------------------------------------------------- */

static void start_server(void)
{
    char data[4200];
    int fd;
    snprintf(data, sizeof data, "%s/data", dir);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    server = fork();
    if (server == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl(shop_binary, shop_binary, "serve", "--listen", "127.0.0.1:0", "--data", data, "--db",
              store_url, "--payment-timeout", "400", "--log-level", "error", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    fd = fds[0];
    FILE *out = fdopen(fd, "r");
    char line[512] = "";
    const char *at = NULL;
    while (at == NULL && fgets(line, sizeof line, out)) /* key notes come first */
        at = strstr(line, "listening on http://");
    assert_non_null(at);
    at += strlen("listening on ");
    snprintf(base, sizeof base, "%.*s", (int)strcspn(at, "\n"), at);
    fclose(out);
    char key_path[4300];
    snprintf(key_path, sizeof key_path, "%s/admin.key", data);
    FILE *key = fopen(key_path, "r");
    assert_non_null(key);
    assert_non_null(fgets(admin_key, sizeof admin_key, key));
    admin_key[strcspn(admin_key, "\n")] = '\0';
    fclose(key);
    credentials = admin_key;
}

static int stop_server(void)
{
    kill(server, SIGTERM);
    return tt_wait(server);
}

typedef struct reply {
    long status;
    char *body;
    size_t len;
    char allow[64], location[160], content_type[96], csp[512], cors[160];
} reply;

static size_t on_body(char *data, size_t size, size_t n, void *payload)
{
    reply *r = payload;
    char *grown = realloc(r->body, r->len + size * n + 1);
    if (grown == NULL)
        return 0;
    r->body = grown;
    memcpy(r->body + r->len, data, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *payload)
{
    reply *r = payload;
    size_t len = size * n;
    struct {
        const char *name;
        char *slot;
        size_t cap;
    } keep[] = {{"Allow: ", r->allow, sizeof r->allow},
                {"Location: ", r->location, sizeof r->location},
                {"Content-Type: ", r->content_type, sizeof r->content_type},
                {"Content-Security-Policy: ", r->csp, sizeof r->csp},
                {"Access-Control-Allow-Origin: ", r->cors, sizeof r->cors}};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        size_t k = strlen(keep[i].name);
        if (len > k && strncasecmp(data, keep[i].name, k) == 0)
            snprintf(keep[i].slot, keep[i].cap, "%.*s", (int)strcspn(data + k, "\r\n"), data + k);
    }
    return len;
}

static const char *idempotency_key; /* sent with the next requests when set */

/* With TD_HTTP_RECORD=FILE, every exchange is appended to FILE as a JSON
 * line (method, path, status, content_type, body), for the check of the
 * responses against docs/openapi.yaml (tests/openapi/check_responses.mjs). */
static void record_exchange(const char *method, const char *path, const reply *r)
{
    const char *file = getenv("TD_HTTP_RECORD");
    if (file == NULL || file[0] == '\0')
        return;
    json_error_t err;
    json_t *body = r->len ? json_loadb(r->body, r->len, 0, &err) : NULL;
    if (body == NULL && r->len)
        body = json_stringn(r->body, r->len);
    json_t *line = json_pack("{s:s,s:s,s:I,s:s,s:o?}", "method", method, "path", path, "status",
                             (json_int_t)r->status, "content_type", r->content_type, "body", body);
    FILE *f = fopen(file, "a");
    assert_non_null(line);
    assert_non_null(f);
    assert_int_equal(json_dumpf(line, f, JSON_COMPACT), 0);
    fputc('\n', f);
    assert_int_equal(fclose(f), 0);
    json_decref(line);
}

static reply request(const char *method, const char *path, const char *type, const char *body,
                     size_t body_len)
{
    reply r = {0};
    char url[1024], header[128];
    struct curl_slist *headers = NULL;
    snprintf(url, sizeof url, "%s%s", base, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (type) {
        snprintf(header, sizeof header, "Content-Type: %s", type);
        headers = curl_slist_append(headers, header);
    }
    headers = curl_slist_append(headers, "Expect:");
    if (credentials) {
        char auth[256];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", credentials);
        headers = curl_slist_append(headers, auth);
    }
    if (idempotency_key) {
        char key[256];
        snprintf(key, sizeof key, "Idempotency-Key: %s", idempotency_key);
        headers = curl_slist_append(headers, key);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (r.body == NULL)
        r.body = calloc(1, 1);
    record_exchange(method, path, &r);
    return r;
}

static json_t *call(const char *method, const char *path, const char *body, long status)
{
    reply r =
        request(method, path, body ? "application/json" : NULL, body, body ? strlen(body) : 0);
    if (r.status != status)
        fail_msg("%s %s: %ld, expected %ld: %s", method, path, r.status, status, r.body);
    json_error_t err;
    json_t *json = json_loads(r.body, 0, &err);
    free(r.body);
    return json;
}

static const char *str(json_t *json, const char *key)
{
    const char *v = json_string_value(json_object_get(json, key));
    assert_non_null(v);
    return v;
}

static int64_t head(void)
{
    json_t *h = call("GET", "/health", NULL, 200);
    int64_t n = json_integer_value(json_object_get(h, "head"));
    json_decref(h);
    return n;
}

static char user_id[64], product_id[64];

static void make_catalog(void)
{
    json_t *u = call(
        "POST", "/users",
        "{\"email\":\"http@example.com\",\"full_name\":\"H T\",\"password\":\"long enough pw\"}",
        201);
    snprintf(user_id, sizeof user_id, "%s", str(u, "id"));
    json_decref(u);
    json_t *p = call("POST", "/products",
                     "{\"name\":\"Pen\",\"price\":150,\"currency\":\"USD\",\"stock\":100}", 201);
    snprintf(product_id, sizeof product_id, "%s", str(p, "id"));
    assert_int_equal(json_integer_value(json_object_get(p, "stock")), 100);
    json_decref(p);
}

static char *order_body(const char *token, int quantity)
{
    char *body = malloc(1024);
    snprintf(body, 1024,
             "{\"user_id\":\"%s\",\"items\":[{\"product_id\":\"%s\",\"quantity\":%d}],"
             "\"shipping_address\":{\"line1\":\"1 Main St\",\"city\":\"Springfield\","
             "\"postal_code\":\"12345\",\"country\":\"US\"},"
             "\"payment\":{\"method\":\"card\",\"token\":\"%s\"}}",
             user_id, product_id, quantity, token);
    return body;
}

static json_t *wait_final(const char *order)
{
    char path[128];
    snprintf(path, sizeof path, "/orders/%s", order);
    for (int i = 0; i < 2000; i++) {
        json_t *o = call("GET", path, NULL, 200);
        if (strcmp(str(o, "status"), "Pending") != 0)
            return o;
        json_decref(o);
        usleep(5000);
    }
    fail_msg("order %s stayed Pending", order);
    return NULL;
}

static void wait_quiet(void)
{
    int64_t before = -1, now = head();
    while (now != before) {
        usleep(200000);
        before = now;
        now = head();
    }
}

/* ---- the tests ----------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    dir = tt_tmpdir();
    if (tt_postgres()) {
        char *url = tt_pg_schema_url("http");
        snprintf(store_url, sizeof store_url, "%s", url);
        free(url);
    } else {
        snprintf(store_url, sizeof store_url, "sqlite:%s/data/tidings.db", dir);
    }
    start_server();
    make_catalog();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(stop_server(), 0); /* a graceful stop exits 0 */
    tt_rmdir(dir);
    return 0;
}

/* The running server's store, opened as another process would. */
static td_store *server_store(void)
{
    return tt_open(store_url);
}

/* Writes the payments lease as another live holder's, until `until`. */
static int lease_elsewhere(td_txn *txn, void *payload)
{
    const td_time *until = payload;
    char body[256];
    snprintf(body, sizeof body,
             "{\"owner\":\"someone-else\",\"pid\":1,\"host\":\"elsewhere.example\","
             "\"expires_at\":%lld}",
             (long long)*until);
    return td_txn_doc_put(txn, "tidings_leases", "payments", body, 0);
}

static void set_lease_elsewhere(td_time until)
{
    td_store *other = server_store(); /* another process's writes, as far as the shop knows */
    assert_td_ok(td_transact(other, lease_elsewhere, &until));
    td_store_free(other);
}

/* GET /health: its status code, the first failed handler (or NULL), and
 * whether this instance runs the handler named. */
static long health(json_t **failed, const char *handler, bool *runs)
{
    reply r = request("GET", "/health", NULL, NULL, 0);
    json_error_t err;
    json_t *body = json_loadb(r.body, r.len, 0, &err);
    assert_non_null(body);
    *failed = json_incref(json_array_get(json_object_get(body, "failed_handlers"), 0));
    assert_string_equal(str(body, "status"), r.status == 200 ? "ok" : "unhealthy");
    json_t *instance = json_object_get(body, "instance");
    assert_non_null(instance);
    assert_int_equal(json_integer_value(json_object_get(instance, "live_instances")), 1);
    size_t i;
    json_t *name;
    *runs = false;
    json_array_foreach(json_object_get(instance, "runs"), i, name) *runs |=
        strcmp(json_string_value(name), handler) == 0;
    json_decref(body);
    free(r.body);
    return r.status;
}

/* A handler whose lease another process took over (as if this one had
 * stalled past it) stops here: /health no longer lists it among what this
 * instance runs, and it is not a failure (the other runs it). Once the
 * other holder's lease has expired, the shop takes the handler back and
 * payments work again. */
static void test_a_handler_taken_over_comes_back(void **state)
{
    (void)state;
    json_t *failed = NULL;
    bool runs = false;
    assert_int_equal(health(&failed, "payments", &runs), 200);
    assert_null(failed);
    assert_true(runs);
    set_lease_elsewhere(td_time_now() + 600 * 1000000LL);
    for (int i = 0; i < 100 && runs; i++) { /* renewed every 3 s */
        usleep(100000);
        assert_int_equal(health(&failed, "payments", &runs), 200);
        assert_null(failed);
    }
    assert_false(runs);
    usleep(2500000); /* the keeper tries again: still the other's */
    assert_int_equal(health(&failed, "payments", &runs), 200);
    assert_false(runs);
    set_lease_elsewhere(td_time_now() - 1); /* the other holder's lease ran out */
    for (int i = 0; i < 100 && !runs; i++) {
        usleep(100000);
        assert_int_equal(health(&failed, "payments", &runs), 200);
    }
    assert_true(runs);
    char *body = order_body("tok_visa", 1); /* paid: the payments handler runs again */
    json_t *placed = call("POST", "/orders", body, 202);
    json_t *o = wait_final(str(placed, "id"));
    assert_string_equal(str(o, "status"), "Processing");
    json_decref(o);
    json_decref(placed);
    free(body);
}

static void test_order_outcomes_over_http(void **state)
{
    (void)state;
    static const struct {
        const char *token, *status, *reason;
        int quantity;
    } cases[] = {{"tok_visa", "Processing", NULL, 1},
                 {"tok_decline", "Cancelled", "payment_declined", 1},
                 {"tok_timeout", "Cancelled", "payment_timeout", 1},
                 {"tok_flaky", "Processing", NULL, 1},
                 {"tok_visa", "Cancelled", "out_of_stock", 1000}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *body = order_body(cases[i].token, cases[i].quantity);
        json_t *placed = call("POST", "/orders", body, 202);
        assert_string_equal(str(placed, "status"), "Pending");
        json_t *o = wait_final(str(placed, "id"));
        assert_string_equal(str(o, "status"), cases[i].status);
        if (cases[i].reason)
            assert_string_equal(str(o, "cancel_reason"), cases[i].reason);
        json_decref(o);
        json_decref(placed);
        free(body);
    }
}

static void test_every_route(void **state)
{
    (void)state;
    char path[256], *body = order_body("tok_visa", 2);
    json_t *c = call("POST", "/categories", "{\"name\":\"Pens\"}", 201);
    json_decref(call("GET", "/categories", NULL, 200));
    json_decref(c);
    snprintf(path, sizeof path, "/users/%s", user_id);
    json_decref(call("GET", path, NULL, 200));
    json_t *page = call("GET", "/products?limit=1", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(page, "products")), 1);
    json_decref(page);
    snprintf(path, sizeof path, "/products/%s/price", product_id);
    json_t *p = call("PUT", path, "{\"price\":175}", 200);
    assert_int_equal(json_integer_value(json_object_get(p, "price")), 175);
    json_decref(p);
    snprintf(path, sizeof path, "/products/%s/stock", product_id);
    json_decref(call("POST", path, "{\"quantity_change\":5,\"reason\":\"restock\"}", 200));
    json_t *placed = call("POST", "/orders", body, 202);
    char order[64];
    snprintf(order, sizeof order, "%s", str(placed, "id"));
    json_decref(placed);
    json_decref(wait_final(order));
    snprintf(path, sizeof path, "/orders/%s/ship", order);
    json_decref(call("POST", path, NULL, 200));
    snprintf(path, sizeof path, "/orders/%s/deliver", order);
    json_t *done = call("POST", path, NULL, 200);
    assert_string_equal(str(done, "status"), "Delivered");
    json_decref(done);
    snprintf(path, sizeof path, "/orders/%s/cancel", order);
    json_decref(call("POST", path, NULL, 409)); /* illegal transition */
    snprintf(path, sizeof path, "/users/%s/orders", user_id);
    json_decref(call("GET", path, NULL, 200));
    json_t *events = call("GET", "/events?after=0&limit=5&type=OrderCreated", NULL, 200);
    assert_true(json_array_size(json_object_get(events, "events")) >= 1);
    json_decref(events);
    snprintf(path, sizeof path, "/streams/order-%s", order);
    json_t *stream = call("GET", path, NULL, 200);
    assert_true(json_integer_value(json_object_get(stream, "version")) >= 4);
    json_t *created = json_array_get(json_object_get(stream, "events"), 0);
    assert_string_equal(str(created, "type"), "OrderCreated");
    assert_int_equal(json_integer_value(json_object_get(created, "schema_version")), 3);
    json_decref(stream);
    json_decref(call("GET", "/dead-letters", NULL, 200));
    reply m = request("GET", "/metrics", NULL, NULL, 0);
    assert_int_equal(m.status, 200);
    assert_non_null(
        strstr(m.body, "http_requests_total{route=\"/orders\",method=\"POST\",status=\"202\"}"));
    assert_non_null(strstr(m.body, "domain_events_total{event_type=\"OrderCreated\""));
    assert_non_null(strstr(m.content_type, "text/plain"));
    free(m.body);
    free(body);
}

/* An order for a customer who does not exist, appended by another process:
 * the notifications handler parks it for good. Returns its stream. */
static void append_poison(char *stream, size_t size)
{
    char data[512];
    snprintf(stream, size, "order-01a00000-0000-7000-8000-0000000000f1");
    snprintf(data, sizeof data,
             "{\"order_id\":\"01a00000-0000-7000-8000-0000000000f1\",\"user_id\":"
             "\"01a00000-0000-7000-8000-0000000000f2\",\"total_amount\":100,\"currency\":"
             "\"USD\",\"order_date\":\"2026-12-01T00:00:00Z\",\"items\":[],"
             "\"payment_method\":\"card\",\"payment_method_id\":null}");
    td_store *other = server_store();
    td_event ev = tt_event("OrderCreated", data);
    ev.schema_version = 3;
    assert_td_ok(td_store_append(other, stream, TD_EXPECT_NO_STREAM, &ev, 1));
    td_store_free(other);
}

/* The dead entry of stream for notifications, once parked; NULL if none. */
static json_t *dead_entry(const char *stream)
{
    char path[256];
    snprintf(path, sizeof path, "/dead-letters?subscription=notifications&stream=%s", stream);
    for (int i = 0; i < 400; i++) {
        json_t *list = call("GET", path, NULL, 200), *e;
        size_t at;
        json_array_foreach(json_object_get(list, "dead_letters"), at, e)
        {
            if (strcmp(str(e, "status"), "dead") == 0) {
                json_incref(e);
                json_decref(list);
                return e;
            }
        }
        json_decref(list);
        usleep(10000);
    }
    return NULL;
}

/* What the operator console reads: subscriptions, the store, sagas, an
 * order's story, the whole dead-letter queue, and the console's files. */
static void test_console_routes(void **state)
{
    (void)state;
    char path[256], stream[128], *body = order_body("tok_visa", 1);
    json_t *placed = call("POST", "/orders", body, 202);
    char order[64];
    snprintf(order, sizeof order, "%s", str(placed, "id"));
    json_decref(placed);
    json_decref(wait_final(order));
    append_poison(stream, sizeof stream);
    json_t *dead = dead_entry(stream);
    assert_non_null(dead);
    wait_quiet();

    json_t *subs = call("GET", "/subscriptions", NULL, 200), *sub, *saga = NULL, *mail = NULL;
    size_t i;
    json_array_foreach(json_object_get(subs, "subscriptions"), i, sub)
    {
        if (strcmp(str(sub, "name"), "saga.order_processing") == 0)
            saga = sub;
        if (strcmp(str(sub, "name"), "notifications") == 0)
            mail = sub;
    }
    assert_non_null(saga);
    assert_non_null(mail);
    assert_string_equal(str(saga, "saga"), "order_processing");
    assert_true(json_is_true(json_object_get(saga, "live")));
    assert_true(json_integer_value(json_object_get(json_object_get(saga, "latency"), "count")) >=
                3);
    assert_true(json_integer_value(json_object_get(mail, "dead_letters")) >= 1);
    assert_int_equal(json_integer_value(json_object_get(subs, "head")), head());
    json_decref(subs);

    json_t *store = call("GET", "/store", NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(store, "head")), head());
    assert_string_equal(str(store, "state"), "ok");
    assert_true(json_integer_value(json_object_get(json_object_get(store, "writer"), "units")) > 0);
    json_decref(store);

    json_t *sagas = call("GET", "/sagas", NULL, 200);
    json_t *first = json_array_get(json_object_get(sagas, "sagas"), 0);
    assert_string_equal(str(first, "name"), "order_processing");
    assert_true(json_integer_value(json_object_get(first, "instances")) >= 2);
    json_decref(sagas);
    json_t *page =
        call("GET", "/sagas/order_processing/instances?state=processing&limit=1", NULL, 200);
    json_t *listed = json_array_get(json_object_get(page, "instances"), 0);
    assert_string_equal(str(listed, "state"), "processing");
    assert_string_equal(str(page, "next"), str(listed, "correlation_id"));
    json_decref(page);
    snprintf(path, sizeof path, "/sagas/order_processing/instances/%s", order);
    json_t *instance = call("GET", path, NULL, 200);
    assert_true(json_array_size(json_object_get(instance, "history")) >= 3);
    assert_null(json_object_get(json_object_get(instance, "data"), "payment_token"));
    json_decref(instance);
    json_decref(call("GET", "/sagas/Order/instances", NULL, 400));
    json_decref(call("GET", "/sagas/order_processing/instances?limit=0", NULL, 400));
    json_decref(call("GET", "/sagas/order_processing/instances/no-such-order", NULL, 404));

    snprintf(path, sizeof path, "/orders/%s/story", order);
    json_t *story = call("GET", path, NULL, 200), *ev;
    json_t *events = json_object_get(story, "events");
    assert_true(json_array_size(events) >= 7);
    int64_t last = 0;
    json_array_foreach(events, i, ev)
    {
        int64_t position = json_integer_value(json_object_get(ev, "position"));
        assert_true(position > last); /* in log order, each once */
        last = position;
    }
    assert_true(json_is_false(json_object_get(story, "tracing"))); /* no --trace-file here */
    json_decref(story);
    json_decref(call("GET", "/orders/01a00000-0000-7000-8000-000000000000/story", NULL, 404));

    snprintf(path, sizeof path, "/dead-letters/%s", str(dead, "id"));
    json_t *shown = call("GET", path, NULL, 200);
    assert_string_equal(str(json_object_get(shown, "event"), "stream"), stream);
    assert_non_null(strstr(str(shown, "last_error"), "does not exist"));
    json_decref(shown);
    json_decref(call("POST", "/dead-letters/retry", "{}", 400)); /* a filter, or all */
    json_decref(call("POST", "/dead-letters/retry", "{\"all\":\"yes\"}", 400));
    json_t *none = call("POST", "/dead-letters/retry", "{\"type\":\"NoSuchType\"}", 202);
    assert_int_equal(json_integer_value(json_object_get(none, "count")), 0);
    json_decref(none);
    /* a retry: the poison fails again and is parked anew, as a new entry */
    snprintf(path, sizeof path, "/dead-letters/%s/retry", str(dead, "id"));
    json_decref(call("POST", path, NULL, 202));
    json_t *again_dead = NULL;
    for (int tries = 0; tries < 400 && again_dead == NULL; tries++) {
        json_t *e = dead_entry(stream);
        if (e && strcmp(str(e, "id"), str(dead, "id")) != 0)
            again_dead = e;
        else
            json_decref(e);
        if (again_dead == NULL)
            usleep(10000);
    }
    assert_non_null(again_dead);
    json_decref(dead);
    dead = again_dead;
    snprintf(path, sizeof path, "/dead-letters/%s/drop", str(dead, "id"));
    json_decref(call("POST", path, NULL, 202));
    reply again = request("POST", path, NULL, NULL, 0); /* asked for already, or done */
    assert_true(again.status == 409 || again.status == 404);
    free(again.body);
    json_t *audit = call("GET", "/dead-letters/audit?limit=1", NULL, 200);
    json_t *newest = json_array_get(json_object_get(audit, "audit"), 0);
    assert_string_equal(str(newest, "action"), "drop");
    assert_string_equal(str(newest, "who"), "http:admin");
    assert_string_equal(str(newest, "dead_letter"), str(dead, "id"));
    json_decref(audit);
    json_decref(call("GET", "/dead-letters/audit?limit=0", NULL, 400));
    json_decref(dead);

    reply page_reply = request("GET", "/console", NULL, NULL, 0);
    assert_int_equal(page_reply.status, 200);
    assert_non_null(strstr(page_reply.content_type, "text/html"));
    assert_non_null(strstr(page_reply.csp, "default-src 'self'"));
    assert_non_null(strstr(page_reply.body, "/console/main.js"));
    free(page_reply.body);
    reply script = request("GET", "/console/main.js", NULL, NULL, 0);
    assert_int_equal(script.status, 200);
    assert_non_null(strstr(script.content_type, "text/javascript"));
    assert_string_equal(script.cors, "");
    free(script.body);
    json_decref(call("GET", "/console/no-such-file.js", NULL, 404));
    free(body);
}

static void test_idempotency_keys(void **state)
{
    (void)state;
    char *body = order_body("tok_visa", 1);
    wait_quiet();
    idempotency_key = "order-attempt-1";
    json_t *first = call("POST", "/orders", body, 202);
    int64_t after_first = head();
    json_t *again = call("POST", "/orders", body, 202);
    assert_string_equal(str(again, "id"), str(first, "id")); /* the first answer, replayed */
    json_t *other = call("POST", "/orders", "{\"user_id\":\"x\"}", 422);
    assert_string_equal(str(other, "code"), "idempotency_key_reused");
    idempotency_key = "has space";
    json_decref(call("POST", "/users", "{}", 400));
    idempotency_key = "user-1";
    json_t *u1 =
        call("POST", "/users",
             "{\"email\":\"idem@example.com\",\"full_name\":\"I\",\"password\":\"long enough pw\"}",
             201);
    json_t *u2 =
        call("POST", "/users",
             "{\"email\":\"idem@example.com\",\"full_name\":\"I\",\"password\":\"long enough pw\"}",
             201);
    assert_string_equal(str(u1, "id"), str(u2, "id"));
    idempotency_key = NULL;
    json_decref(wait_final(str(first, "id")));
    wait_quiet();
    /* exactly one order and one user were made by the repeated requests */
    json_t *orders = call("GET", "/events?type=OrderCreated&limit=1000", NULL, 200);
    json_t *users = call("GET", "/events?type=UserRegistered&limit=1000", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(orders, "events")), 1);
    assert_int_equal(json_array_size(json_object_get(users, "events")),
                     2); /* with make_catalog's */
    assert_true(after_first > 0);
    json_decref(orders);
    json_decref(users);
    json_decref(first);
    json_decref(again);
    json_decref(other);
    json_decref(u1);
    json_decref(u2);
    free(body);
}

/* ---- a server that stopped in the middle of a keyed request ---------------------------- */

typedef struct record {
    const char *key;
    char *json;
} record;

static int put_record(td_txn *txn, void *payload)
{
    record *r = payload;
    return td_txn_doc_put(txn, "http_idempotency", r->key, r->json, 0);
}

/* The document key of the admin key's record for an Idempotency-Key: the
 * BLAKE2b-256 of "key <key name>", a NUL and the Idempotency-Key (see
 * shop/http/idempotency.c: one caller's keys never meet another's). */
static const char *scoped(const char *key)
{
    static char out[65];
    static const char who[] = "key admin";
    unsigned char hash[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof hash);
    crypto_generichash_update(&st, (const unsigned char *)who, sizeof who);
    crypto_generichash_update(&st, (const unsigned char *)key, strlen(key));
    crypto_generichash_final(&st, hash, sizeof hash);
    sodium_bin2hex(out, sizeof out, hash, sizeof hash);
    return out;
}

/* Writes the record a stopped server would have left under key, into the
 * running server's store (another process, as an operator's tool would). */
static void leave_record(const char *key, const char *state, const char *fingerprint,
                         const char *time_field, td_time at)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"state\":\"%s\",\"fingerprint\":\"%s\",\"token\":\"gone\","
             "\"%s\":%lld}",
             state, fingerprint, time_field, (long long)at);
    td_store *st = server_store();
    record r = {scoped(key), json};
    assert_td_ok(td_transact(st, put_record, &r));
    td_store_free(st);
}

static char *fingerprint_of(const char *key)
{
    char *text = NULL;
    td_store *st = server_store();
    assert_td_ok(td_store_doc_get(st, "http_idempotency", scoped(key), &text, NULL));
    td_store_free(st);
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    char *print = strdup(str(doc, "fingerprint"));
    json_decref(doc);
    td_free(text);
    return print;
}

static size_t orders_made(void)
{
    json_t *orders = call("GET", "/events?type=OrderCreated&limit=1000", NULL, 200);
    size_t n = json_array_size(json_object_get(orders, "events"));
    json_decref(orders);
    return n;
}

static void test_idempotency_after_a_stop(void **state)
{
    (void)state;
    char *body = order_body("tok_visa", 1);
    idempotency_key = "probe"; /* the same request under another key: its fingerprint */
    json_decref(call("POST", "/orders", body, 202));
    char *print = fingerprint_of("probe");
    td_time long_ago = td_time_now() - 120 * 1000000LL;
    size_t before = orders_made();

    /* claimed long ago, never took effect: taken over and run, once */
    leave_record("stopped-before", "in_progress", print, "claimed_at", long_ago);
    idempotency_key = "stopped-before";
    json_t *placed = call("POST", "/orders", body, 202);
    json_t *again = call("POST", "/orders", body, 202);
    assert_string_equal(str(again, "id"), str(placed, "id"));
    assert_int_equal(orders_made(), before + 1);

    /* claimed just now: still running somewhere */
    leave_record("running", "in_progress", print, "claimed_at", td_time_now());
    idempotency_key = "running";
    json_t *busy = call("POST", "/orders", body, 409);
    assert_string_equal(str(busy, "code"), "request_in_progress");

    /* took effect, answer lost: said so, not done again */
    leave_record("stopped-after", "committed", print, "committed_at", long_ago);
    idempotency_key = "stopped-after";
    json_t *applied = call("POST", "/orders", body, 409);
    assert_string_equal(str(applied, "code"), "request_already_applied");
    assert_int_equal(orders_made(), before + 1);
    idempotency_key = NULL;
    json_decref(placed);
    json_decref(again);
    json_decref(busy);
    json_decref(applied);
    free(print);
    free(body);
}

/* ---- the live feed --------------------------------------------------------------- */

typedef struct feed {
    char path[256];
    const char *token; /* whose feed: NULL for the admin's */
    const char *last_event_id;
    int want; /* stop after this many events */
    int got;
    char ids[16][24], types[16][48];
    char buf[65536];
    size_t len;
    CURLcode rc; /* how the stream ended */
} feed;

static size_t on_feed(char *data, size_t size, size_t n, void *payload)
{
    feed *f = payload;
    size_t len = size * n;
    if (f->len + len >= sizeof f->buf)
        return 0;
    memcpy(f->buf + f->len, data, len);
    f->len += len;
    f->buf[f->len] = '\0';
    for (char *frame; f->got < f->want && (frame = strstr(f->buf, "\n\n")) != NULL;) {
        *frame = '\0';
        char *id = strstr(f->buf, "id: "), *type = strstr(f->buf, "event: ");
        if (id && type) {
            sscanf(id + 4, "%23s", f->ids[f->got]);
            sscanf(type + 7, "%47s", f->types[f->got]);
            f->got++;
        }
        size_t used = (size_t)(frame + 2 - f->buf);
        memmove(f->buf, frame + 2, f->len - used + 1);
        f->len -= used;
    }
    return f->got < f->want ? len : 0; /* enough: hang up */
}

static void *listen_feed(void *arg)
{
    feed *f = arg;
    char url[512], header[64], auth[256];
    struct curl_slist *headers = NULL;
    snprintf(url, sizeof url, "%s%s", base, f->path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", f->token ? f->token : admin_key);
    headers = curl_slist_append(headers, auth);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_feed);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (f->last_event_id) {
        snprintf(header, sizeof header, "Last-Event-ID: %s", f->last_event_id);
        headers = curl_slist_append(headers, header);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    f->rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return NULL;
}

static void test_live_feed_and_resume(void **state)
{
    (void)state;
    wait_quiet();
    int64_t start = head();
    static feed live, replay, resumed;
    memset(&live, 0, sizeof live);
    snprintf(live.path, sizeof live.path, "/events/stream?type=UserRegistered");
    live.want = 2;
    pthread_t t;
    pthread_create(&t, NULL, listen_feed, &live);
    usleep(300000); /* connected: from now on only new events */
    json_decref(
        call("POST", "/users",
             "{\"email\":\"sse1@example.com\",\"full_name\":\"S\",\"password\":\"long enough pw\"}",
             201));
    json_decref(
        call("POST", "/users",
             "{\"email\":\"sse2@example.com\",\"full_name\":\"S\",\"password\":\"long enough pw\"}",
             201));
    pthread_join(t, NULL);
    assert_int_equal(live.got, 2);
    assert_string_equal(live.types[0], "UserRegistered");
    assert_true(atoll(live.ids[0]) > start); /* nothing from before it connected */
    assert_true(atoll(live.ids[1]) > atoll(live.ids[0]));

    memset(&replay, 0, sizeof replay);
    snprintf(replay.path, sizeof replay.path, "/events/stream?after=0&type=UserRegistered");
    replay.want = 3; /* make_catalog's user, then the two above */
    listen_feed(&replay);
    assert_int_equal(replay.got, 3);
    assert_string_equal(replay.ids[1], live.ids[0]);

    memset(&resumed, 0, sizeof resumed);
    snprintf(resumed.path, sizeof resumed.path, "/events/stream?type=UserRegistered");
    resumed.last_event_id = live.ids[0]; /* a reconnect after the first */
    resumed.want = 1;
    listen_feed(&resumed);
    assert_int_equal(resumed.got, 1);
    assert_string_equal(resumed.ids[0], live.ids[1]); /* no gap, no repeat */
    reply bad = request("GET", "/events/stream?after=x", NULL, NULL, 0);
    assert_int_equal(bad.status, 400);
    free(bad.body);
}

/* More idle feeds than the server has threads (they park: that they cost
 * requests nothing is measured in make bench): requests are answered, a
 * commit wakes every parked feed it matches, and a stop ends the parked
 * ones and exits 0. */
#define IDLE_FEEDS 8

static void test_idle_feeds_wake_and_stop(void **state)
{
    (void)state;
    static feed waiting[IDLE_FEEDS], idle[IDLE_FEEDS];
    pthread_t t[IDLE_FEEDS], u[IDLE_FEEDS];
    for (int i = 0; i < IDLE_FEEDS; i++) {
        memset(&waiting[i], 0, sizeof waiting[i]);
        snprintf(waiting[i].path, sizeof waiting[i].path, "/events/stream?type=CategoryCreated");
        waiting[i].want = 1;
        pthread_create(&t[i], NULL, listen_feed, &waiting[i]);
    }
    usleep(300000);
    for (int i = 0; i < 5; i++)
        json_decref(call("GET", "/categories", NULL, 200));
    json_decref(call("POST", "/categories", "{\"name\":\"Parked\"}", 201));
    for (int i = 0; i < IDLE_FEEDS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(waiting[i].got, 1);
        assert_string_equal(waiting[i].types[0], "CategoryCreated");
    }
    for (int i = 0; i < IDLE_FEEDS; i++) {
        memset(&idle[i], 0, sizeof idle[i]);
        snprintf(idle[i].path, sizeof idle[i].path, "/events/stream?type=NothingEver");
        idle[i].want = 1;
        pthread_create(&u[i], NULL, listen_feed, &idle[i]);
    }
    usleep(300000);
    assert_int_equal(stop_server(), 0); /* parked feeds do not keep it from stopping */
    for (int i = 0; i < IDLE_FEEDS; i++) {
        pthread_join(u[i], NULL);
        assert_int_equal(idle[i].got, 0);
        assert_true(idle[i].rc != CURLE_OPERATION_TIMEDOUT); /* ended by the stop */
    }
    start_server(); /* for the teardown */
}

/* ---- graceful shutdown under load ------------------------------------------------------ */

#define LOADERS 4

typedef struct loader {
    char accepted[400][64];
    int count;
} loader;

static void *place_until_refused(void *arg)
{
    loader *l = arg;
    char *body = order_body("tok_visa", 1), url[256], auth[256];
    snprintf(url, sizeof url, "%s/orders", base);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin_key);
    while (l->count < 400) {
        reply r = {0};
        struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
        headers = curl_slist_append(headers, auth);
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(headers);
        curl_easy_cleanup(c);
        if (rc == CURLE_OK && status == 202) {
            json_error_t err;
            json_t *o = json_loads(r.body, 0, &err);
            snprintf(l->accepted[l->count++], 64, "%s",
                     json_string_value(json_object_get(o, "id")));
            json_decref(o);
        }
        free(r.body);
        if (rc != CURLE_OK)
            break; /* the server is gone */
    }
    free(body);
    return NULL;
}

static void test_graceful_shutdown_under_load(void **state)
{
    (void)state;
    static loader loaders[LOADERS];
    pthread_t threads[LOADERS];
    for (int i = 0; i < LOADERS; i++) {
        loaders[i].count = 0;
        pthread_create(&threads[i], NULL, place_until_refused, &loaders[i]);
    }
    usleep(700000);
    assert_int_equal(stop_server(), 0); /* SIGTERM in the middle of it: exits 0 */
    int accepted = 0;
    for (int i = 0; i < LOADERS; i++) {
        pthread_join(threads[i], NULL);
        accepted += loaders[i].count;
    }
    assert_true(accepted > 0);
    start_server(); /* same data folder */
    for (int i = 0; i < LOADERS; i++)
        for (int k = 0; k < loaders[i].count; k++) {
            json_t *o = wait_final(loaders[i].accepted[k]); /* every accepted order is there */
            json_decref(o);
        }
    print_message("%d orders accepted before the stop, all found and final\n", accepted);
}

static void test_short_load_run_is_consistent(void **state)
{
    (void)state;
    char command[8192], line[256], last[256] = "";
    snprintf(command, sizeof command,
             "'%s' load --url %s --orders 60 --concurrency 4 --products 3 --decline-rate 0.2 "
             "--key-file '%s/data/admin.key' 2>&1",
             shop_binary, base, dir);
    FILE *out = popen(command, "r");
    assert_non_null(out);
    bool rate = false, p95 = false;
    while (fgets(line, sizeof line, out)) {
        rate |= strncmp(line, "orders_per_s: ", 14) == 0;
        p95 |= strncmp(line, "order_to_final_p95_ms: ", 23) == 0;
        snprintf(last, sizeof last, "%s", line);
    }
    int status = pclose(out);
    assert_true(rate && p95);
    assert_string_equal(last, "consistency: ok\n");
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fprintf(stderr, "usage: %s PATH_TO_SHOP\n", argv[0]), 2;
    shop_binary = argv[1];
    const char *recording = getenv("TD_HTTP_RECORD");
    if (recording && recording[0] && truncate(recording, 0) < 0 && errno != ENOENT)
        return fprintf(stderr, "cannot empty %s: %s\n", recording, strerror(errno)), 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_console_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_outcomes_over_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_after_a_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_feed_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_feeds_wake_and_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graceful_shutdown_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_load_run_is_consistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_handler_taken_over_comes_back, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
