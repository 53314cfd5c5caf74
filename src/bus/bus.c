/*
 * bus.c: inline handlers and the publishing calls (see tidings/bus.h).
 *
 * The bus installs itself as the store's append hook. For each appended
 * event it calls the matching handlers in registration order, with the event
 * as the unit's cause so that what they publish continues its correlation,
 * causation and trace. The store runs the hook inside the append's savepoint,
 * so a failing handler undoes the append and everything done for it.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "bus/bus_int.h"

typedef struct handler {
    char *type;
    char *category;
    td_inline_fn fn;
    void *payload;
    struct handler *next;
} handler;

struct td_bus {
    td_store *store;
    handler *first, *last;
};

bool td_match_event(const td_match *match, const td_event *event)
{
    if (match == NULL)
        return true;
    if (match->type && strcmp(match->type, event->type) != 0)
        return false;
    if (match->category) {
        size_t n = strlen(match->category);
        if (strncmp(event->stream, match->category, n) != 0 || event->stream[n] != '-')
            return false;
    }
    return true;
}

static int dispatch(td_txn *txn, const td_event *events, size_t count, void *payload)
{
    td_bus *bus = payload;
    int error = 0;
    for (size_t i = 0; i < count && error == 0; i++) {
        td_match m = {0};
        for (handler *h = bus->first; h && error == 0; h = h->next) {
            m.type = h->type;
            m.category = h->category;
            if (!td_match_event(&m, &events[i]))
                continue;
            td_txn_set_cause(txn, &events[i]);
            error = h->fn(txn, &events[i], h->payload);
            td_txn_set_cause(txn, NULL);
        }
    }
    return error;
}

int td_bus_new(td_bus **out, td_store *store)
{
    TD_REQUIRE(out && store);
    td_bus *bus = td_calloc(1, sizeof *bus);
    if (bus == NULL)
        return td_error__oom();
    bus->store = store;
    td_store_set_append_hook(store, dispatch, bus);
    *out = bus;
    return 0;
}

void td_bus_free(td_bus *bus)
{
    if (bus == NULL)
        return;
    td_store_set_append_hook(bus->store, NULL, NULL);
    for (handler *h = bus->first, *next; h; h = next) {
        next = h->next;
        td_free(h->type);
        td_free(h->category);
        td_free(h);
    }
    td_free(bus);
}

int td_match__check(const td_match *match)
{
    if (match && match->type && td_type_check(match->type) < 0)
        return TD_EINVAL;
    if (match && match->category && td_category_check(match->category) < 0)
        return TD_EINVAL;
    return 0;
}

int td_bus_on(td_bus *bus, const td_match *match, td_inline_fn fn, void *payload)
{
    TD_REQUIRE(bus && fn);
    int error = td_match__check(match);
    if (error == 0 && fn == NULL)
        error = td_error__set(TD_EINVAL, "td_bus_on: fn is NULL");
    if (error < 0)
        return error;
    handler *h = td_calloc(1, sizeof *h);
    if (h == NULL)
        return td_error__oom();
    h->fn = fn;
    h->payload = payload;
    if (match && match->type && (h->type = td_strdup(match->type)) == NULL)
        error = td_error__oom();
    if (match && match->category && (h->category = td_strdup(match->category)) == NULL)
        error = td_error__oom();
    if (error < 0) {
        td_free(h->type);
        td_free(h);
        return error;
    }
    if (bus->last)
        bus->last->next = h;
    else
        bus->first = h;
    bus->last = h;
    return 0;
}

int td_publish_domain(td_txn *txn, const char *stream, int64_t expected_version, td_event *event)
{
    TD_REQUIRE(txn);
    event->kind = TD_KIND_DOMAIN;
    return td_txn_append(txn, stream, expected_version, event, 1);
}

int td_publish_integration(td_txn *txn, const char *stream, int64_t expected_version,
                           td_event *event)
{
    TD_REQUIRE(txn && event);
    event->kind = TD_KIND_INTEGRATION;
    return td_txn_append(txn, stream, expected_version, event, 1);
}

int td_publish_batch(td_txn *txn, const char *stream, int64_t expected_version, td_event *events,
                     size_t count)
{
    TD_REQUIRE(txn);
    return td_txn_append(txn, stream, expected_version, events, count);
}
