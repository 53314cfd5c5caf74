/*
 * test_metrics.c: the registry renders valid Prometheus exposition text
 * (checked line by line by a small parser written from the format's spec),
 * and the built-in series agree with what was published and handled.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "recorder.h"
#include "support.h"

/* ---- a small exposition-format parser ------------------------------------------ */

#define MAX_SAMPLES 512

typedef struct sample {
    char series[512]; /* name{labels} exactly as written */
    char name[128];
    double value;
} sample;

typedef struct exposition {
    sample samples[MAX_SAMPLES];
    int count;
    char types[64][256]; /* "name type" */
    int type_count;
} exposition;

static const char *metric_name(const char *p, char *out)
{
    size_t n = 0;
    if (!(isalpha((unsigned char)*p) || *p == '_' || *p == ':'))
        fail_msg("bad metric name at '%.40s'", p);
    while (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == ':')
        n++;
    memcpy(out, p, n);
    out[n] = '\0';
    return p + n;
}

/* {label="value",…}: escapes \\ \" \n only. */
static const char *labels(const char *p)
{
    if (*p != '{')
        return p;
    p++;
    while (*p != '}') {
        if (!(isalpha((unsigned char)*p) || *p == '_'))
            fail_msg("bad label name at '%.40s'", p);
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (p[0] != '=' || p[1] != '"')
            fail_msg("expected =\" at '%.40s'", p);
        for (p += 2; *p != '"'; p++) {
            if (*p == '\0' || *p == '\n')
                fail_msg("unterminated label value");
            if (*p == '\\' && !(p[1] == '\\' || p[1] == '"' || p[1] == 'n'))
                fail_msg("bad escape in label value");
            if (*p == '\\')
                p++;
        }
        p++;
        if (*p == ',')
            p++;
        else if (*p != '}')
            fail_msg("expected , or } at '%.40s'", p);
    }
    return p + 1;
}

static const char *declared_type(exposition *e, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < e->type_count; i++)
        if (strncmp(e->types[i], name, n) == 0 && e->types[i][n] == ' ')
            return e->types[i] + n + 1;
    return NULL;
}

static void family_of(exposition *e, const char *name, char *family)
{
    static const char *suffixes[] = {"_bucket", "_sum", "_count"};
    strcpy(family, name);
    for (int i = 0; i < 3 && !declared_type(e, family); i++) {
        size_t n = strlen(name), k = strlen(suffixes[i]);
        if (n > k && strcmp(name + n - k, suffixes[i]) == 0) {
            memcpy(family, name, n - k);
            family[n - k] = '\0';
            if (declared_type(e, family) && strcmp(declared_type(e, family), "histogram") == 0)
                return;
            strcpy(family, name);
        }
    }
}

static void parse_sample(exposition *e, const char *line)
{
    sample *s = &e->samples[e->count++];
    char family[128];
    const char *p = labels(metric_name(line, s->name));
    size_t n = (size_t)(p - line);
    memcpy(s->series, line, n);
    s->series[n] = '\0';
    if (*p != ' ')
        fail_msg("expected a space before the value: '%s'", line);
    char *end = NULL;
    s->value = strcmp(p + 1, "+Inf") == 0 ? INFINITY : strtod(p + 1, &end);
    if (end && *end != '\0')
        fail_msg("bad value in '%s'", line);
    family_of(e, s->name, family);
    if (declared_type(e, family) == NULL)
        fail_msg("sample '%s' before its # TYPE line", line);
}

static void parse_comment(exposition *e, const char *line)
{
    char name[128];
    if (strncmp(line, "# HELP ", 7) == 0) {
        metric_name(line + 7, name);
        return;
    }
    if (strncmp(line, "# TYPE ", 7) != 0)
        return; /* other comments are allowed */
    const char *type = metric_name(line + 7, name) + 1;
    if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram") &&
        strcmp(type, "summary") && strcmp(type, "untyped"))
        fail_msg("unknown type in '%s'", line);
    if (declared_type(e, name))
        fail_msg("second # TYPE for %s", name);
    snprintf(e->types[e->type_count++], sizeof e->types[0], "%s %s", name, type);
}

static void parse(exposition *e, char *text)
{
    memset(e, 0, sizeof *e);
    assert_true(text[0] == '\0' || text[strlen(text) - 1] == '\n');
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        assert_true(e->count < MAX_SAMPLES);
        if (line[0] == '#')
            parse_comment(e, line);
        else
            parse_sample(e, line);
    }
}

static double value_of(exposition *e, const char *series)
{
    for (int i = 0; i < e->count; i++)
        if (strcmp(e->samples[i].series, series) == 0)
            return e->samples[i].value;
    fail_msg("no series %s", series);
    return NAN;
}

static exposition *render(td_metrics *m)
{
    static exposition e;
    char *text = NULL;
    size_t len = 0;
    assert_td_ok(td_metrics_render(m, &text, &len));
    assert_int_equal(strlen(text), len);
    parse(&e, text);
    td_free(text);
    return &e;
}

/* ---- the registry ------------------------------------------------------------------ */

static void test_registry_renders_valid_text(void **state)
{
    (void)state;
    td_metrics *m = NULL;
    td_metric *requests, *temperature, *latency, *again;
    assert_td_ok(td_metrics_new(&m));
    assert_td_ok(
        td_metrics_counter(&requests, m, "http_requests_total", "Requests\nmade.", "route,status"));
    assert_td_ok(td_metrics_gauge(&temperature, m, "temperature", "Now.", NULL));
    double bounds[] = {0.1, 1, 10};
    assert_td_ok(
        td_metrics_histogram(&latency, m, "latency_seconds", "Latency.", "route", bounds, 3));
    assert_td_ok(td_metrics_counter(&again, m, "http_requests_total", "x", "route,status"));
    assert_ptr_equal(again, requests);
    td_metric *clash;
    assert_td_code(td_metrics_gauge(&clash, m, "http_requests_total", "x", "route"), TD_EEXISTS);
    assert_td_code(td_metrics_counter(&clash, m, "9bad", "x", NULL), TD_EINVAL);
    assert_td_code(td_metrics_counter(&clash, m, "ok", "x", "le"), TD_EINVAL);

    const char *hostile[] = {"/a\"b\\c\nd", "200"};
    assert_td_ok(td_metric_add(requests, hostile, 2));
    assert_td_ok(td_metric_add(requests, hostile, 1));
    assert_td_code(td_metric_add(requests, hostile, -1), TD_EINVAL);
    assert_td_ok(td_metric_set(temperature, NULL, -3.5));
    const char *route[] = {"/orders"};
    double observations[] = {0.05, 0.5, 0.5, 5, 50};
    for (int i = 0; i < 5; i++)
        assert_td_ok(td_metric_observe(latency, route, observations[i]));
    assert_td_code(td_metric_observe(requests, hostile, 1), TD_EINVAL);

    exposition *e = render(m);
    assert_true(value_of(e, "http_requests_total{route=\"/a\\\"b\\\\c\\nd\",status=\"200\"}") == 3);
    assert_true(value_of(e, "temperature") == -3.5);
    assert_true(value_of(e, "latency_seconds_bucket{route=\"/orders\",le=\"0.1\"}") == 1);
    assert_true(value_of(e, "latency_seconds_bucket{route=\"/orders\",le=\"1\"}") == 3);
    assert_true(value_of(e, "latency_seconds_bucket{route=\"/orders\",le=\"10\"}") == 4);
    assert_true(value_of(e, "latency_seconds_bucket{route=\"/orders\",le=\"+Inf\"}") == 5);
    assert_true(value_of(e, "latency_seconds_count{route=\"/orders\"}") == 5);
    assert_true(fabs(value_of(e, "latency_seconds_sum{route=\"/orders\"}") - 56.05) < 1e-9);
    td_metrics_free(m);
}

/* ---- reading series without the text --------------------------------------------------- */

typedef struct seen {
    int series;
    double value;
    uint64_t count, buckets[4];
    char first_label[32];
} seen;

static int note_sample(const td_metric_sample *s, void *payload)
{
    seen *n = payload;
    if (n->series++ == 0 && s->label_count > 0)
        snprintf(n->first_label, sizeof n->first_label, "%s", s->labels[0]);
    n->value += s->value;
    n->count += s->count;
    for (size_t b = 0; b < s->bound_count && b < 4; b++)
        n->buckets[b] += s->buckets[b];
    return 0;
}

static int stop_at_once(const td_metric_sample *s, void *payload)
{
    (void)s;
    (*(int *)payload)++;
    return 1;
}

static void collect_sets(td_metrics *m, void *payload)
{
    (void)m;
    td_metric_set(payload, NULL, 42);
}

static void test_series_read_as_numbers(void **state)
{
    (void)state;
    td_metrics *m = NULL;
    td_metric *latency, *hits, *level;
    assert_td_ok(td_metrics_new(&m));
    double bounds[] = {0.1, 1, 10};
    assert_td_ok(td_metrics_histogram(&latency, m, "latency_seconds", "L.", "route", bounds, 3));
    assert_td_ok(td_metrics_counter(&hits, m, "hits_total", "H.", "route"));
    assert_td_ok(td_metrics_gauge(&level, m, "level", "G.", NULL));
    assert_td_ok(td_metrics_on_collect(m, collect_sets, level));
    const char *a[] = {"/a"}, *b[] = {"/b"};
    double observations[] = {0.05, 0.5, 0.5, 5, 50};
    for (int i = 0; i < 5; i++)
        assert_td_ok(td_metric_observe(latency, i < 3 ? a : b, observations[i]));
    assert_td_ok(td_metric_add(hits, a, 2));
    assert_td_ok(td_metric_add(hits, b, 3));

    seen n = {0};
    assert_td_ok(td_metrics_read(m, "latency_seconds", note_sample, &n));
    assert_int_equal(n.series, 2); /* in the order they were made */
    assert_string_equal(n.first_label, "/a");
    assert_int_equal(n.count, 5);
    assert_true(fabs(n.value - 56.05) < 1e-9);
    assert_int_equal(n.buckets[0], 1); /* per bucket, not cumulative */
    assert_int_equal(n.buckets[1], 2);
    assert_int_equal(n.buckets[2], 1); /* and 50 is above the last bound */
    memset(&n, 0, sizeof n);
    assert_td_ok(td_metrics_read(m, "hits_total", note_sample, &n));
    assert_true(n.series == 2 && n.value == 5 && n.count == 0);
    /* gauges are as fresh as the last collection */
    memset(&n, 0, sizeof n);
    assert_td_ok(td_metrics_read(m, "level", note_sample, &n));
    assert_true(n.series == 0);
    td_metrics_collect(m);
    assert_td_ok(td_metrics_read(m, "level", note_sample, &n));
    assert_true(n.series == 1 && n.value == 42);
    int calls = 0;
    assert_td_ok(td_metrics_read(m, "hits_total", stop_at_once, &calls));
    assert_int_equal(calls, 1);
    assert_td_code(td_metrics_read(m, "no_such_total", note_sample, &n), TD_ENOTFOUND);
    td_metrics_free(m);
}

/* ---- the built-in series ------------------------------------------------------------- */

static int fail_first_b(td_delivery *d, const td_event *ev, void *payload)
{
    (void)payload;
    if (strcmp(ev->type, "B") == 0 && td_delivery_attempt(d) == 1)
        return td_delivery_fail(d, TD_EIO, "first B fails");
    return 0;
}

static void test_builtin_series_agree_with_what_happened(void **state)
{
    (void)state;
    char *dir = tt_tmpdir(), *url = tt_store_url(dir, "metrics");
    td_store *store = tt_open(url);
    td_metrics *m = NULL;
    td_subscription *sub = NULL;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    assert_td_ok(td_metrics_new(&m));
    assert_td_ok(td_metrics_watch_store(m, store));
    opts.name = "audit";
    opts.lanes = 2;
    opts.immediate_retries = 1;
    opts.metrics = m;
    assert_td_ok(td_subscription_new(&sub, store, &opts, fail_first_b, NULL));
    assert_td_ok(td_subscription_start(sub));
    for (int i = 0; i < 3; i++)
        tt_append(store, "order-1", "A", i);
    for (int i = 0; i < 2; i++)
        tt_append(store, "user-1", "B", i);
    assert_td_ok(td_subscription_wait_until(sub, 5, 10000));

    exposition *e = render(m);
    assert_true(value_of(e, "domain_events_total{event_type=\"A\",source=\"order\"}") == 3);
    assert_true(value_of(e, "domain_events_total{event_type=\"B\",source=\"user\"}") == 2);
    assert_true(
        value_of(e, "event_handler_failures_total{subscription=\"audit\",event_type=\"B\"}") == 2);
    assert_true(value_of(e, "event_retries_total{subscription=\"audit\"}") == 2);
    assert_true(value_of(e, "event_processing_duration_seconds_count{subscription=\"audit\","
                            "event_type=\"A\"}") == 3);
    assert_true(value_of(e, "subscription_lag_events{subscription=\"audit\"}") == 0);
    assert_true(value_of(e, "dead_letters{subscription=\"audit\"}") == 0);
    /* the writer ran at least the five appends, in at most as many commits */
    double units = value_of(e, "store_units_total{result=\"ok\"}");
    double commits = value_of(e, "store_commits_total");
    assert_true(units >= 5 && commits >= 1 && commits <= units);
    assert_true(value_of(e, "store_units_total{result=\"failed\"}") == 0);
    assert_true(value_of(e, "store_writer_busy_seconds_total") >=
                value_of(e, "store_commit_seconds_total"));
    assert_true(value_of(e, "store_commit_seconds_total") > 0);
    tt_append(store, "order-2", "A", 9); /* counted at the next render */
    e = render(m);
    assert_true(value_of(e, "domain_events_total{event_type=\"A\",source=\"order\"}") == 4);

    td_subscription_free(sub);
    td_metrics_free(m);
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_renders_valid_text),
        cmocka_unit_test(test_series_read_as_numbers),
        cmocka_unit_test(test_builtin_series_agree_with_what_happened),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
