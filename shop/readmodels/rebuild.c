/*
 * rebuild.c: `shop projections rebuild` behind shop_rebuild_read_model: the
 * read model by name, rebuilt by libtidings (td_projection_rebuild) reading
 * events as the shop reads them (its upcasters), with the shop's errors.
 */
#include <string.h>

#include "shop_int.h"

int shop_rebuild_read_model(td_store *store, const char *name, const shop_rebuild_options *opts,
                            shop_rebuild_report *out)
{
    const shop_read_model *m = NULL;
    td_upcasters *versions = NULL;
    for (int i = 0; i < SHOP_READ_MODELS; i++)
        if (strcmp(name, shop_read_models[i].projection.name) == 0)
            m = &shop_read_models[i];
    if (m == NULL)
        return shop_fail(TD_ENOTFOUND, "not_found", NULL,
                         "no read model %s (user_orders, product_sales, stock_levels)", name);
    shop_error_clear();
    int error = 0;
    if (td_store_upcasters(store) == NULL) { /* read as the shop reads */
        if ((error = shop_event_versions_new(&versions)) < 0)
            return shop_fail_td(error);
        td_store_set_upcasters(store, versions);
    }
    td_projection_rebuild_options o = TD_PROJECTION_REBUILD_OPTIONS_INIT;
    o.cache = opts ? opts->cache : 0;
    error = td_projection_rebuild(store, &m->projection, &o, out);
    if (error == TD_ECONFLICT)
        shop_fail(error, "request_in_progress", NULL, "%s", td_error_last());
    else if (error < 0)
        shop_fail_td(error);
    if (versions) {
        td_store_set_upcasters(store, NULL);
        td_upcasters_free(versions);
    }
    return error;
}
