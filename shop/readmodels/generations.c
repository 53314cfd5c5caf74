/*
 * generations.c: which copy of each read model is live (see shop_int.h).
 * One small document per read model, readmodel_generations/<base>:
 * {"generation": N, "built_through": POS}; none means generation 0.
 */
#include <stdio.h>
#include <string.h>

#include "shop_int.h"

#define GENERATIONS "readmodel_generations"

static int parse(const char *text, size_t len, shop_rm_generation *out)
{
    json_error_t err;
    json_int_t generation = 0, through = 0;
    json_t *doc = json_loadb(text, len, 0, &err);
    int ok = doc && json_unpack(doc, "{s:I,s:I}", "generation", &generation, "built_through",
                                &through) == 0;
    json_decref(doc);
    out->generation = generation;
    out->built_through = through;
    return ok ? 0
              : shop_fail(TD_ECORRUPT, "internal_error", NULL,
                          "the generation document of a read model is malformed");
}

static int found(int error, char *text, size_t len, shop_rm_generation *out)
{
    *out = (shop_rm_generation){0, 0};
    if (error == 0)
        error = parse(text, len, out);
    td_free(text);
    return error == TD_ENOTFOUND ? 0 : error;
}

int shop_rm_generation_txn(td_txn *txn, const char *base, shop_rm_generation *out)
{
    char *text = NULL;
    size_t len = 0;
    int error = td_txn_doc_get(txn, GENERATIONS, base, &text, &len);
    return found(error, text, len, out);
}

int shop_rm_generation_get(td_store *store, const char *base, shop_rm_generation *out)
{
    char *text = NULL;
    size_t len = 0;
    int error = td_store_doc_get(store, GENERATIONS, base, &text, &len);
    return found(error, text, len, out);
}

int shop_rm_generation_put(td_txn *txn, const char *base, const shop_rm_generation *g)
{
    char text[96];
    snprintf(text, sizeof text, "{\"generation\":%lld,\"built_through\":%lld}",
             (long long)g->generation, (long long)g->built_through);
    return td_txn_doc_put(txn, GENERATIONS, base, text, 0);
}

void shop_rm_collection(char out[SHOP_RM_COLLECTION_MAX], const char *base, int64_t generation)
{
    if (generation == 0)
        snprintf(out, SHOP_RM_COLLECTION_MAX, "%s", base);
    else
        snprintf(out, SHOP_RM_COLLECTION_MAX, "%s_g%lld", base, (long long)generation);
}

int shop_rm_live_collection(td_store *store, const char *base, char out[SHOP_RM_COLLECTION_MAX])
{
    shop_rm_generation g;
    int error = shop_rm_generation_get(store, base, &g);
    if (error == 0)
        shop_rm_collection(out, base, g.generation);
    return error;
}
