/*
 * inventory_service.c: the inventory context's command handler. A
 * transactional subscription on reservation-<order id> streams:
 * ReserveInventory reserves every item or none, ReleaseInventory gives back
 * what the order holds. Being transactional, each command takes effect once.
 */
#include <string.h>

#include "shop_int.h"

static int handle(td_delivery *d, const td_event *ev, void *payload)
{
    json_t *data = NULL;
    bool reserved = false;
    (void)payload;
    int error = td_event_data(&data, ev);
    if (error < 0)
        return td_delivery_fail(d, TD_EPERMANENT, "%s: data is not JSON", ev->type);
    const char *order = json_string_value(json_object_get(data, "order_id"));
    json_t *items = json_object_get(data, "items");
    if (order == NULL || !json_is_array(items))
        error = td_delivery_fail(d, TD_EPERMANENT, "%s without order_id and items", ev->type);
    else if (strcmp(ev->type, "ReserveInventory") == 0)
        error = inventory_reserve(td_delivery_txn(d), order, items, &reserved);
    else if (strcmp(ev->type, "ReleaseInventory") == 0)
        error = inventory_release(td_delivery_txn(d), order, items);
    json_decref(data);
    return error;
}

int inventory_service_new(shop *s, unsigned part, td_subscription **out)
{
    td_subscription_options opts = shop_handler_options(s, "inventory");
    opts.partition = shop_partition(s, part);
    opts.lanes = shop_partition_lanes(s, opts.lanes);
    opts.match.category = "reservation";
    return td_subscription_new(out, s->store, &opts, handle, s);
}
