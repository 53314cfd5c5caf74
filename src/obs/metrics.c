/*
 * metrics.c: the metrics registry and its Prometheus text rendering.
 *
 * Families keep their series in a list, found by comparing label values:
 * families here have few series (subscriptions × event types), so a list is
 * both fast enough and simple. One mutex guards the registry; updates hold
 * it for a lookup and an addition. Histogram buckets are stored
 * non-cumulative and summed while rendering.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/lock.h"
#include "obs/obs_int.h"

typedef enum { COUNTER, GAUGE, HISTOGRAM } kind;

typedef struct series {
    char **values;
    double value; /* counter, gauge; histogram sum */
    uint64_t count;
    uint64_t *buckets; /* histogram: observations per bucket (not cumulative) */
    struct series *next;
} series;

struct td_metric {
    td_metrics *registry;
    char *name, *help;
    kind type;
    char *labels[TD_METRIC_LABELS_MAX];
    size_t label_count;
    double *bounds;
    size_t bound_count;
    series *first, *last;
    struct td_metric *next;
};

typedef struct collector {
    td_metrics_collect_fn fn;
    void *payload;
    void (*release)(void *payload); /* called when the registry is freed, if set */
    struct collector *next;
} collector;

struct td_metrics {
    pthread_mutex_t lock;
    td_metric *first, *last;
    collector *collectors;
};

static const double default_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

int td_metrics_new(td_metrics **out)
{
    TD_REQUIRE(out);
    td_metrics *m = td_calloc(1, sizeof *m);
    if (m == NULL)
        return td_error__oom();
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return 0;
}

static void free_series(series *s, size_t label_count)
{
    for (size_t i = 0; i < label_count; i++)
        td_free(s->values[i]);
    td_free(s->values);
    td_free(s->buckets);
    td_free(s);
}

static void free_family(td_metric *f)
{
    for (series *s = f->first, *next; s; s = next) {
        next = s->next;
        free_series(s, f->label_count);
    }
    for (size_t i = 0; i < f->label_count; i++)
        td_free(f->labels[i]);
    td_free(f->name);
    td_free(f->help);
    td_free(f->bounds);
    td_free(f);
}

void td_metrics_free(td_metrics *m)
{
    if (m == NULL)
        return;
    for (collector *c = m->collectors; c; c = c->next)
        if (c->release)
            c->release(c->payload);
    for (td_metric *f = m->first, *next; f; f = next) {
        next = f->next;
        free_family(f);
    }
    for (collector *c = m->collectors, *next; c; c = next) {
        next = c->next;
        td_free(c);
    }
    pthread_mutex_destroy(&m->lock);
    td_free(m);
}

/* ---- registration ---------------------------------------------------------- */

static bool valid_name(const char *s, bool colons)
{
    if (s == NULL || !s[0] || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || (colons && *s == ':')))
            return false;
    return true;
}

static int split_labels(td_metric *f, const char *labels)
{
    const char *p = labels;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (f->label_count == TD_METRIC_LABELS_MAX)
            return td_error__set(TD_EINVAL, "more than %d labels", TD_METRIC_LABELS_MAX);
        char *label = td_strndup(p, n);
        if (label == NULL)
            return td_error__oom();
        f->labels[f->label_count++] = label;
        if (!valid_name(label, false) || strncmp(label, "__", 2) == 0 || strcmp(label, "le") == 0)
            return td_error__set(TD_EINVAL, "invalid label name '%.40s'", label);
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

static bool same_shape(const td_metric *a, const td_metric *b)
{
    if (a->type != b->type || a->label_count != b->label_count)
        return false;
    for (size_t i = 0; i < a->label_count; i++)
        if (strcmp(a->labels[i], b->labels[i]) != 0)
            return false;
    return true;
}

/* Adds f to the registry, or hands back the existing family of its name. */
static int add_family(td_metrics *m, td_metric *f, td_metric **out)
{
    int error = 0;
    pthread_mutex_lock(&m->lock);
    td_metric *existing = m->first;
    while (existing && strcmp(existing->name, f->name) != 0)
        existing = existing->next;
    if (existing && same_shape(existing, f)) {
        *out = existing;
    } else if (existing) {
        error =
            td_error__set(TD_EEXISTS, "metric '%s' exists with another type or labels", f->name);
    } else {
        if (m->last)
            m->last->next = f;
        else
            m->first = f;
        m->last = f;
        *out = f;
    }
    pthread_mutex_unlock(&m->lock);
    if (error < 0 || *out != f)
        free_family(f);
    return error;
}

static int family(td_metric **out, td_metrics *m, kind type, const char *name, const char *help,
                  const char *labels, const double *bounds, size_t bound_count)
{
    if (!valid_name(name, true))
        return td_error__set(TD_EINVAL, "invalid metric name '%.60s'", name ? name : "");
    td_metric *f = td_calloc(1, sizeof *f);
    if (f == NULL)
        return td_error__oom();
    f->registry = m;
    f->type = type;
    f->name = td_strdup(name);
    f->help = td_strdup(help ? help : "");
    int error = f->name && f->help ? split_labels(f, labels) : td_error__oom();
    if (error == 0 && type == HISTOGRAM) {
        f->bound_count = bound_count;
        f->bounds = td_calloc(bound_count, sizeof *f->bounds);
        error = f->bounds ? 0 : td_error__oom();
        for (size_t i = 0; error == 0 && i < bound_count; i++) {
            f->bounds[i] = bounds[i];
            if (i > 0 && !(bounds[i] > bounds[i - 1]))
                error = td_error__set(TD_EINVAL, "histogram buckets must increase");
        }
    }
    if (error < 0) {
        free_family(f);
        return error;
    }
    return add_family(m, f, out);
}

int td_metrics_counter(td_metric **out, td_metrics *m, const char *name, const char *help,
                       const char *labels)
{
    TD_REQUIRE(out && m);
    return family(out, m, COUNTER, name, help, labels, NULL, 0);
}

int td_metrics_gauge(td_metric **out, td_metrics *m, const char *name, const char *help,
                     const char *labels)
{
    TD_REQUIRE(out && m);
    return family(out, m, GAUGE, name, help, labels, NULL, 0);
}

int td_metrics_histogram(td_metric **out, td_metrics *m, const char *name, const char *help,
                         const char *labels, const double *buckets, size_t bucket_count)
{
    if (buckets == NULL) {
        buckets = default_bounds;
        bucket_count = sizeof default_bounds / sizeof default_bounds[0];
    }
    return family(out, m, HISTOGRAM, name, help, labels, buckets, bucket_count);
}

/* ---- updates ----------------------------------------------------------------- */

/* The series for values, made if missing; lock held. NULL when out of memory. */
static series *find(td_metric *f, const char *const *values, bool make)
{
    TD_ASSERT_HELD(&f->registry->lock);
    for (series *s = f->first; s; s = s->next) {
        size_t i = 0;
        while (i < f->label_count && strcmp(s->values[i], values[i] ? values[i] : "") == 0)
            i++;
        if (i == f->label_count)
            return s;
    }
    if (!make)
        return NULL;
    series *s = td_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->values = td_calloc(f->label_count + 1, sizeof *s->values);
    s->buckets = f->bound_count ? td_calloc(f->bound_count, sizeof *s->buckets) : NULL;
    bool ok = s->values && (f->bound_count == 0 || s->buckets);
    for (size_t i = 0; ok && i < f->label_count; i++)
        ok = (s->values[i] = td_strdup(values[i] ? values[i] : "")) != NULL;
    if (!ok) {
        free_series(s, f->label_count);
        return NULL;
    }
    if (f->last)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    return s;
}

static int update(td_metric *f, const char *const *values, double v, kind expected, bool set)
{
    if (f == NULL || f->type != expected)
        return td_error__set(TD_EINVAL, "metric update does not fit the metric's type");
    if (f->label_count > 0 && values == NULL)
        return td_error__set(TD_EINVAL, "metric '%s' needs label values", f->name);
    pthread_mutex_lock(&f->registry->lock);
    series *s = find(f, values, true);
    if (s && expected == HISTOGRAM) {
        size_t b = 0;
        while (b < f->bound_count && v > f->bounds[b])
            b++;
        if (b < f->bound_count)
            s->buckets[b]++;
        s->count++;
        s->value += v;
    } else if (s) {
        s->value = set ? v : s->value + v;
    }
    pthread_mutex_unlock(&f->registry->lock);
    return s ? 0 : td_error__oom();
}

int td_metric_add(td_metric *f, const char *const *values, double amount)
{
    TD_REQUIRE(f);
    if (f && f->type == COUNTER && amount < 0)
        return td_error__set(TD_EINVAL, "a counter only goes up");
    return update(f, values, amount, f && f->type == GAUGE ? GAUGE : COUNTER, false);
}

int td_metric_set(td_metric *f, const char *const *values, double value)
{
    TD_REQUIRE(f);
    return update(f, values, value, GAUGE, true);
}

int td_metric_observe(td_metric *f, const char *const *values, double value)
{
    TD_REQUIRE(f);
    return update(f, values, value, HISTOGRAM, false);
}

double td_metric_value(td_metric *f, const char *const *values)
{
    pthread_mutex_lock(&f->registry->lock);
    series *s = find(f, values, false);
    double v = s == NULL ? 0 : f->type == HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&f->registry->lock);
    return v;
}

/* ---- collectors and rendering --------------------------------------------------- */

int td_metrics__add_collector(td_metrics *m, td_metrics_collect_fn fn, void *payload,
                              void (*release)(void *))
{
    collector *c = td_calloc(1, sizeof *c);
    if (c == NULL)
        return td_error__oom();
    c->fn = fn;
    c->payload = payload;
    c->release = release;
    pthread_mutex_lock(&m->lock);
    c->next = m->collectors;
    m->collectors = c;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

int td_metrics_on_collect(td_metrics *m, td_metrics_collect_fn fn, void *payload)
{
    TD_REQUIRE(m && fn);
    return td_metrics__add_collector(m, fn, payload, NULL);
}

void td_metrics_remove_collector(td_metrics *m, td_metrics_collect_fn fn, void *payload)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    for (collector **link = &m->collectors; *link; link = &(*link)->next)
        if ((*link)->fn == fn && (*link)->payload == payload) {
            collector *gone = *link;
            *link = gone->next;
            td_free(gone);
            break;
        }
    pthread_mutex_unlock(&m->lock);
}

static void run_collectors(td_metrics *m)
{
    /* Collectors update metrics (taking the lock), so call them unlocked,
     * from a snapshot of the list. */
    collector *snapshot[32];
    size_t n = 0;
    pthread_mutex_lock(&m->lock);
    for (collector *c = m->collectors; c && n < 32; c = c->next)
        snapshot[n++] = c;
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < n; i++)
        snapshot[i]->fn(m, snapshot[i]->payload);
}

void td_metrics_collect(td_metrics *m)
{
    if (m == NULL)
        return;
    run_collectors(m);
}

int td_metrics_read(td_metrics *m, const char *name, td_metric_sample_fn fn, void *payload)
{
    TD_REQUIRE(m && name && fn);
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    const td_metric *f = m->first;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    for (const series *s = f ? f->first : NULL; s && rc == 0; s = s->next) {
        td_metric_sample sample = {
            (const char *const *)s->values,           f->label_count, s->value,
            f->type == HISTOGRAM ? s->count : 0,      f->bounds,      s->buckets,
            f->type == HISTOGRAM ? f->bound_count : 0};
        rc = fn(&sample, payload);
    }
    pthread_mutex_unlock(&m->lock);
    if (f == NULL)
        return td_error__set(TD_ENOTFOUND, "no metric named '%s'", name);
    return rc < 0 ? rc : 0;
}

static void write_escaped(FILE *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (*s == '"' && quote)
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

static void write_number(FILE *out, double v)
{
    if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", out);
    else if (isnan(v))
        fputs("NaN", out);
    else if (v == floor(v) && fabs(v) < 1e15)
        fprintf(out, "%.0f", v);
    else
        fprintf(out, "%.9g", v);
}

/* name{labels[,le="…"]} */
static void write_sample_name(FILE *out, const td_metric *f, const series *s, const char *suffix,
                              const char *le)
{
    fprintf(out, "%s%s", f->name, suffix);
    if (f->label_count == 0 && le == NULL)
        return;
    fputc('{', out);
    for (size_t i = 0; i < f->label_count; i++) {
        fprintf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        write_escaped(out, s->values[i], true);
        fputc('"', out);
    }
    if (le)
        fprintf(out, "%sle=\"%s\"", f->label_count ? "," : "", le);
    fputc('}', out);
}

static void write_histogram(FILE *out, const td_metric *f, const series *s)
{
    uint64_t cumulative = 0;
    char le[32];
    for (size_t b = 0; b < f->bound_count; b++) {
        cumulative += s->buckets[b];
        snprintf(le, sizeof le, "%g", f->bounds[b]);
        write_sample_name(out, f, s, "_bucket", le);
        fprintf(out, " %llu\n", (unsigned long long)cumulative);
    }
    write_sample_name(out, f, s, "_bucket", "+Inf");
    fprintf(out, " %llu\n", (unsigned long long)s->count);
    write_sample_name(out, f, s, "_sum", NULL);
    fputc(' ', out);
    write_number(out, s->value);
    fputc('\n', out);
    write_sample_name(out, f, s, "_count", NULL);
    fprintf(out, " %llu\n", (unsigned long long)s->count);
}

static void write_family(FILE *out, const td_metric *f)
{
    static const char *type_names[] = {"counter", "gauge", "histogram"};
    fprintf(out, "# HELP %s ", f->name);
    write_escaped(out, f->help, false);
    fprintf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    for (const series *s = f->first; s; s = s->next) {
        if (f->type == HISTOGRAM) {
            write_histogram(out, f, s);
            continue;
        }
        write_sample_name(out, f, s, "", NULL);
        fputc(' ', out);
        write_number(out, s->value);
        fputc('\n', out);
    }
}

int td_metrics_render(td_metrics *m, char **out, size_t *len)
{
    TD_REQUIRE(m && out);
    char *text = NULL;
    size_t size = 0;
    run_collectors(m);
    FILE *f = open_memstream(&text, &size);
    if (f == NULL)
        return td_error__oom();
    pthread_mutex_lock(&m->lock);
    for (const td_metric *family = m->first; family; family = family->next)
        write_family(f, family);
    pthread_mutex_unlock(&m->lock);
    /* open_memstream's buffer is the C library's: the text is copied into
     * one from the allocation seam, so the caller's td_free and the tests
     * that fail allocations see it like any other. */
    char *copy = fclose(f) == 0 ? td_strndup(text, size) : NULL;
    free(text);
    if (copy == NULL)
        return td_error__oom();
    *out = copy;
    if (len)
        *len = size;
    return 0;
}
