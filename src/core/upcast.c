/*
 * upcast.c: the registry of event schema versions and their upcasters
 * (upcast.h), and the upcast of one event.
 *
 * A registry holds few types (one per event type that ever changed), so a
 * sorted array searched by bisection is all it needs; it is read-only once
 * in use, so reads take no lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "tidings/upcast.h"

#define SCHEMA_MAX 1000 /* a sanity bound on declared versions */

typedef struct step {
    td_upcast_fn fn; /* NULL: no step from this version */
    void *payload;
} step;

typedef struct entry {
    char type[TD_TYPE_MAX + 1];
    int32_t current;
    step *steps; /* steps[v - 1] goes from v to v + 1; current - 1 of them */
} entry;

struct td_upcasters {
    entry *entries; /* sorted by type */
    size_t count, cap;
};

int td_upcasters_new(td_upcasters **out)
{
    TD_REQUIRE(out);
    *out = td_calloc(1, sizeof **out);
    return *out ? 0 : td_error__oom();
}

void td_upcasters_free(td_upcasters *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->count; i++)
        td_free(u->entries[i].steps);
    td_free(u->entries);
    td_free(u);
}

/* The index of type, or where it would go (with *found false). */
static size_t find(const td_upcasters *u, const char *type, bool *found)
{
    size_t lo = 0, hi = u->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(u->entries[mid].type, type);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

int td_upcasters_declare(td_upcasters *u, const char *type, int32_t current)
{
    TD_REQUIRE(u);
    bool found;
    int error = td_type_check(type);
    if (error < 0)
        return error;
    if (current < 1 || current > SCHEMA_MAX)
        return td_error__set(TD_EINVAL, "schema versions run from 1 to %d", SCHEMA_MAX);
    size_t at = find(u, type, &found);
    if (found)
        return td_error__set(TD_EEXISTS, "event type %s is declared already", type);
    step *steps = current > 1 ? td_calloc((size_t)current - 1, sizeof *steps) : NULL;
    if (current > 1 && steps == NULL)
        return td_error__oom();
    if (u->count == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 8;
        entry *grown = td_realloc(u->entries, cap * sizeof *grown);
        if (grown == NULL) {
            td_free(steps);
            return td_error__oom();
        }
        u->entries = grown;
        u->cap = cap;
    }
    memmove(&u->entries[at + 1], &u->entries[at], (u->count - at) * sizeof *u->entries);
    entry *e = &u->entries[at];
    snprintf(e->type, sizeof e->type, "%s", type);
    e->current = current;
    e->steps = steps;
    u->count++;
    return 0;
}

int td_upcasters_add(td_upcasters *u, const char *type, int32_t from, td_upcast_fn fn,
                     void *payload)
{
    TD_REQUIRE(u);
    bool found;
    size_t at = find(u, type ? type : "", &found);
    if (!found)
        return td_error__set(TD_ENOTFOUND, "event type %s is not declared", type ? type : "(null)");
    entry *e = &u->entries[at];
    if (fn == NULL || from < 1 || from >= e->current)
        return td_error__set(TD_EINVAL, "a step of %s goes from a schema in 1..%d, with a function",
                             type, e->current - 1);
    if (e->steps[from - 1].fn)
        return td_error__set(TD_EEXISTS, "%s has a step from schema %d already", type, from);
    e->steps[from - 1] = (step){fn, payload};
    return 0;
}

int32_t td_upcasters_current(const td_upcasters *u, const char *type)
{
    bool found;
    size_t at = u && type ? find(u, type, &found) : 0;
    return u && type && found ? u->entries[at].current : 0;
}

/* Runs the steps from the event's schema to the current one on data. */
static int run_steps(const entry *e, const td_event *ev, json_t *data)
{
    for (int32_t v = ev->schema_version; v < e->current; v++) {
        const step *s = &e->steps[v - 1];
        if (s->fn == NULL)
            return td_error__set(TD_EVERSION,
                                 "event %lld: %s schema %d cannot be read (no upcaster from "
                                 "schema %d to %d)",
                                 (long long)ev->position, ev->type, ev->schema_version, v, v + 1);
        int rc = s->fn(ev, data, s->payload);
        if (rc < 0)
            return td_error__set(rc, "event %lld: upcasting %s from schema %d to %d failed",
                                 (long long)ev->position, ev->type, v, v + 1);
        if (!json_is_object(data))
            return td_error__set(TD_EINVAL,
                                 "event %lld: the upcaster of %s schema %d left no object",
                                 (long long)ev->position, ev->type, v);
    }
    return 0;
}

bool td_upcast__needed(const td_upcasters *u, const td_event *ev)
{
    bool found;
    size_t at = u && ev->type ? find(u, ev->type, &found) : 0;
    return u && ev->type && found && ev->schema_version != u->entries[at].current;
}

int td_upcast(const td_upcasters *u, const td_event *ev, td_event **out)
{
    TD_REQUIRE(ev && out);
    bool found;
    *out = NULL;
    size_t at = u && ev->type ? find(u, ev->type, &found) : 0;
    if (u == NULL || ev->type == NULL || !found)
        return 0;
    const entry *e = &u->entries[at];
    if (ev->schema_version == e->current)
        return 0;
    if (ev->schema_version > e->current || ev->schema_version < 1)
        return td_error__set(TD_EVERSION,
                             "event %lld: %s schema %d cannot be read (this program reads "
                             "schema %d)",
                             (long long)ev->position, ev->type, ev->schema_version, e->current);
    json_t *data;
    char *text = NULL;
    size_t len = 0;
    int error = td_event_data(&data, ev);
    if (error < 0)
        return error;
    if (!json_is_object(data))
        error = td_error__set(TD_ECORRUPT, "event %lld: data is not an object",
                              (long long)ev->position);
    if (error == 0)
        error = run_steps(e, ev, data);
    if (error < 0) {
        json_decref(data);
        return error;
    }
    if ((error = td_json__dump_steal(&text, &len, data)) < 0) /* takes data */
        return error;
    td_event view = *ev;
    view.data = text;
    view.data_len = len;
    view.schema_version = e->current;
    error = td_event_dup(out, &view);
    td_free(text);
    return error;
}
