/*
 * read_fields.c: projected reads (td_store_read_fields, store.h).
 *
 * The backend picks the fields out of each event's data as it reads (for
 * SQLite, json_extract: one parse in C, no allocations per value) and hands
 * them over as a small JSON array, which becomes the values object. An event
 * older than its type's schema is upcast whole first, and its fields are
 * picked from the upcast data instead, so values always follow the current
 * schema.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "store/store_int.h"

typedef struct picking {
    const td_upcasters *upcasters;
    const char *const *fields;
    td_fields_fn fn;
    void *payload;
    const td_store *store; /* stop before events not durable yet (pipelined commits) */
} picking;

static int check_fields(const char *const *fields)
{
    size_t n = 0;
    for (; fields && fields[n]; n++) {
        if (n == TD_READ_FIELDS_MAX)
            return td_error__set(TD_EINVAL, "a projected read picks at most %d fields",
                                 TD_READ_FIELDS_MAX);
        if (td_field__check(fields[n]) < 0)
            return TD_EINVAL;
        for (size_t i = 0; i < n; i++)
            if (strcmp(fields[i], fields[n]) == 0)
                return td_error__set(TD_EINVAL, "data field '%s' is picked twice", fields[n]);
    }
    return n == 0 ? td_error__set(TD_EINVAL, "a projected read picks at least one field") : 0;
}

/* values: the fields of `from` (an array in field order, or the whole data
 * object) that are there and not null. */
static json_t *pick(const char *const *fields, json_t *from)
{
    json_t *values = json_object();
    for (size_t i = 0; values && fields[i]; i++) {
        json_t *v =
            json_is_array(from) ? json_array_get(from, i) : json_object_get(from, fields[i]);
        if (v && !json_is_null(v) && json_object_set(values, fields[i], v) < 0) {
            json_decref(values);
            values = NULL;
        }
    }
    return values;
}

static int picked_row(const td_event *ev, const char *text, size_t len, void *payload)
{
    picking *p = payload;
    td_event *up = NULL;
    json_error_t err;
    if (ev->position > td_store__visible_through(p->store))
        return 1; /* in position order: the rest is newer still */
    int error = td_upcast__needed(p->upcasters, ev) ? td_upcast(p->upcasters, ev, &up) : 0;
    if (error < 0)
        return error;
    const td_event *now = up ? up : ev;
    bool oom;
    json_t *from =
        up ? td_json__loadb(up->data, td_json__length(up->data, up->data_len), 0, &err, &oom)
           : td_json__loadb(text, len, 0, &err, &oom);
    json_t *values = from ? pick(p->fields, from) : NULL;
    if (oom)
        error = td_error__oom();
    else if (from == NULL)
        error = td_error__set(TD_ECORRUPT, "event %lld: data is not JSON: %s",
                              (long long)ev->position, err.text);
    else if (values == NULL)
        error = td_error__oom();
    else
        error = p->fn(now, values, p->payload);
    json_decref(values);
    json_decref(from);
    td_event_free(up);
    return error;
}

int td_store_read_fields(td_store *store, const td_read_query *query, const char *const *fields,
                         td_fields_fn fn, void *payload)
{
    TD_REQUIRE(store && query && fields && fn);
    td_conn *conn;
    picking p = {store->upcasters, fields, fn, payload, store};
    int error = td_store__check_query(query);
    if (error == 0)
        error = check_fields(fields);
    if (error < 0 || (error = td_readers__acquire(store->readers, &conn)) < 0)
        return error;
    error = store->backend->read_fields(conn, query, fields, picked_row, &p);
    td_readers__release(store->readers, conn);
    return error;
}
