/*
 * live.c: keeping a projection live (projection.h): the subscription's
 * handler folds each event into the live copy in the handler's unit of
 * work, unless a rebuild swapped in a copy built past it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/error.h"
#include "projection/projection_int.h"

int td_projection__check(const td_projection *p)
{
    if (p == NULL)
        return td_error__set(TD_EINVAL, "missing projection");
    if (p->version != TD_PROJECTION_VERSION)
        return td_error__set(TD_EINVAL, "projection: unknown version %u", p->version);
    if (p->fold == NULL)
        return td_error__set(TD_EINVAL, "projection %s: missing fold", p->name ? p->name : "");
    return td_projection__check_name(p->name);
}

bool td_projection__wants(const td_projection *p, const char *type)
{
    if (p->types == NULL)
        return true;
    for (size_t i = 0; p->types[i]; i++)
        if (strcmp(p->types[i], type) == 0)
            return true;
    return false;
}

/* Applies an event to the live copy of the projection, unless that copy was
 * rebuilt past it (rebuild.c): in the handler's unit, so the check and the
 * write are one with the rebuild's swap. A replayed event is left alone:
 * each event counted once already (the handler is transactional), and a
 * replay cannot tell what it counted; a rebuild is the way to recompute. */
int td_projection_handle(td_delivery *delivery, const td_event *event, void *projection)
{
    TD_REQUIRE(delivery);
    const td_projection *p = projection;
    td_txn *txn = td_delivery_txn(delivery);
    if (p == NULL || event == NULL || txn == NULL)
        return td_delivery_fail(delivery, TD_EPERMANENT,
                                "projection handler: needs a projection and a transactional "
                                "subscription");
    if (td_delivery_is_replay(delivery) || !td_projection__wants(p, event->type))
        return 0;
    json_t *data = NULL;
    int error = td_event_data(&data, event);
    if (error == TD_ENOMEM)
        return error;
    if (error < 0)
        return td_delivery_fail(delivery, TD_EPERMANENT, "%s: data is not JSON", event->type);
    td_projection_gen g;
    error = td_projection__gen_txn(txn, p->name, &g);
    if (error == 0 && event->position > g.built_through) {
        char collection[TD_PROJECTION_COLLECTION_MAX];
        td_projection__collection(collection, p->name, g.generation);
        td_projection_docs docs = {.txn = txn, .collection = collection};
        error = p->fold(&docs, event, data, p->payload);
    }
    json_decref(data);
    return error;
}

int td_projection_subscription_new(td_subscription **out, td_store *store,
                                   const td_subscription_options *opts,
                                   const td_projection *projection)
{
    TD_REQUIRE(out && store && opts);
    int error = td_projection__check(projection);
    if (error < 0)
        return error;
    /* opts may be an older, shorter struct (errors.h): read only as far as
     * its version went; td_subscription_new checks the version itself */
    td_subscription_options o = TD_SUBSCRIPTION_OPTIONS_INIT;
    memcpy(&o, opts, opts->version == 1 ? offsetof(td_subscription_options, eager) : sizeof o);
    o.match.category = projection->category;
    o.match.type = projection->types && projection->types[0] && !projection->types[1]
                       ? projection->types[0]
                       : NULL;
    o.transactional = true;
    return td_subscription_new(out, store, &o, td_projection_handle, (void *)projection);
}
