/*
 * list.c: browsing a saga's instances for operators: by state, a page at a
 * time (td_saga_list), and how many are in each state (td_saga_states).
 *
 * Instances are documents keyed "<saga>|<correlation id>", so one saga's
 * keys are contiguous; they are read in pages of SCAN_PAGE documents from
 * after the `after` cursor until a key of another saga comes. A saga name
 * is [a-z0-9_] and '|' sorts after all of those, so no other saga's keys
 * fall between.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "saga/saga_int.h"

#define SCAN_PAGE 256

typedef struct scan scan;
/* One instance; returns as td_saga_instance_fn does. */
typedef int (*scan_fn)(scan *s, const char *correlation_id, const char *state, const char *json,
                       size_t len);

struct scan {
    char prefix[TD_SAGA_NAME_MAX + 2]; /* "<saga>|" */
    size_t prefix_len;
    char last_key[TD_SAGA_KEY_MAX + 1]; /* where the next page starts */
    size_t seen;                        /* documents in this page */
    bool past;                          /* a key of another saga came: the end */
    bool stopped;                       /* the callback said stop */
    scan_fn each;
    /* td_saga_list */
    const td_saga_query *query;
    size_t handed;
    td_saga_instance_fn fn;
    void *payload;
    /* td_saga_states */
    json_t *counts; /* state → count */
};

static int page_doc(const char *key, const char *json, size_t len, void *payload)
{
    scan *s = payload;
    json_error_t err;
    s->seen++;
    snprintf(s->last_key, sizeof s->last_key, "%s", key);
    if (strncmp(key, s->prefix, s->prefix_len) != 0) {
        s->past = true;
        return 1;
    }
    bool oom;
    json_t *doc = td_json__loadb(json, len, 0, &err, &oom);
    if (oom)
        return td_error__oom();
    if (doc == NULL)
        return td_error__set(TD_ECORRUPT, "saga instance %s is not JSON: %s", key, err.text);
    int rc = s->each(s, key + s->prefix_len, json_string_value(json_object_get(doc, "state")), json,
                     len);
    json_decref(doc);
    if (rc > 0)
        s->stopped = true;
    return rc;
}

/* Hands every instance of saga after `after` to s->each, a page at a time. */
static int scan_saga(td_store *store, const char *saga, const char *after, scan *s)
{
    int error = td_saga__check_name(saga);
    if (error < 0)
        return error;
    if (after && (after[0] == '\0' || td_ref_id_check(after) < 0))
        return td_error__set(TD_EINVAL, "invalid correlation id to start after");
    s->prefix_len = (size_t)snprintf(s->prefix, sizeof s->prefix, "%s|", saga);
    if (after && (error = td_saga__key(s->last_key, saga, after)) < 0)
        return error;
    if (after == NULL)
        snprintf(s->last_key, sizeof s->last_key, "%s", s->prefix);
    do {
        s->seen = 0;
        error = td_store_doc_list(store, TD_COLL_SAGAS, s->last_key, SCAN_PAGE, page_doc, s);
    } while (error == 0 && !s->past && !s->stopped && s->seen == SCAN_PAGE);
    return error;
}

static int list_one(scan *s, const char *correlation_id, const char *state, const char *json,
                    size_t len)
{
    const char *want = s->query->state;
    if (want && (state == NULL || strcmp(want, state) != 0))
        return 0;
    int rc = s->fn(correlation_id, state, json, len, s->payload);
    s->handed++;
    return rc != 0 ? rc : s->query->limit && s->handed >= s->query->limit ? 1 : 0;
}

int td_saga_list(td_store *store, const td_saga_query *query, td_saga_instance_fn fn, void *payload)
{
    if (query == NULL || fn == NULL)
        return td_error__set(TD_EINVAL, "td_saga_list needs a query and a function");
    scan *s = td_calloc(1, sizeof *s);
    if (s == NULL)
        return td_error__oom();
    s->each = list_one;
    s->query = query;
    s->fn = fn;
    s->payload = payload;
    int error = scan_saga(store, query->saga, query->after, s);
    td_free(s);
    return error < 0 ? error : 0;
}

static int count_one(scan *s, const char *correlation_id, const char *state, const char *json,
                     size_t len)
{
    (void)correlation_id;
    (void)json;
    (void)len;
    const char *name = state ? state : "";
    json_int_t n = json_integer_value(json_object_get(s->counts, name));
    return json_object_set_new(s->counts, name, json_integer(n + 1)) < 0 ? td_error__oom() : 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Hands the counts over in byte order of the states. */
static int hand_counts(json_t *counts, td_saga_state_fn fn, void *payload)
{
    size_t n = json_object_size(counts), i = 0;
    const char **names = td_calloc(n + 1, sizeof *names);
    if (names == NULL)
        return td_error__oom();
    const char *name;
    json_t *value;
    json_object_foreach(counts, name, value)
    {
        names[i++] = name;
    }
    qsort(names, n, sizeof *names, by_name);
    int rc = 0;
    for (i = 0; i < n && rc == 0; i++)
        rc = fn(names[i], (int64_t)json_integer_value(json_object_get(counts, names[i])), payload);
    td_free(names);
    return rc < 0 ? rc : 0;
}

int td_saga_states(td_store *store, const char *saga, td_saga_state_fn fn, void *payload)
{
    if (fn == NULL)
        return td_error__set(TD_EINVAL, "td_saga_states needs a function");
    scan *s = td_calloc(1, sizeof *s);
    if (s == NULL)
        return td_error__oom();
    s->each = count_one;
    s->counts = json_object();
    int error = s->counts ? scan_saga(store, saga, NULL, s) : td_error__oom();
    if (error == 0)
        error = hand_counts(s->counts, fn, payload);
    json_decref(s->counts);
    td_free(s);
    return error;
}
