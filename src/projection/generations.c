/*
 * generations.c: which copy of each projection is live (projection_int.h).
 * One small document per projection, readmodel_generations/<name>:
 * {"generation": N, "built_through": POS}; none means generation 0.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "tidings/memory.h"
#include "projection/projection_int.h"

static int parse(const char *text, size_t len, td_projection_gen *out)
{
    json_error_t err;
    json_int_t generation = 0, through = 0;
    unsigned long failures = td_alloc__thread_failures();
    json_t *doc = json_loadb(text, len, 0, &err);
    int ok = doc && json_unpack(doc, "{s:I,s:I}", "generation", &generation, "built_through",
                                &through) == 0;
    json_decref(doc);
    out->generation = generation;
    out->built_through = through;
    if (ok)
        return 0;
    /* jansson tells a failed allocation as bad JSON, or as a failed unpack */
    return td_alloc__thread_failures() != failures
               ? td_error__oom()
               : td_error__set(TD_ECORRUPT, "the generation document of a read model is malformed");
}

static int found(int error, char *text, size_t len, td_projection_gen *out)
{
    *out = (td_projection_gen){0, 0};
    if (error == 0)
        error = parse(text, len, out);
    td_free(text);
    return error == TD_ENOTFOUND ? 0 : error;
}

int td_projection__gen_txn(td_txn *txn, const char *name, td_projection_gen *out)
{
    char *text = NULL;
    size_t len = 0;
    int error = td_txn_doc_get(txn, TD_PROJECTION_GENERATIONS, name, &text, &len);
    return found(error, text, len, out);
}

int td_projection__gen_get(td_store *store, const char *name, td_projection_gen *out)
{
    char *text = NULL;
    size_t len = 0;
    int error = td_store_doc_get(store, TD_PROJECTION_GENERATIONS, name, &text, &len);
    return found(error, text, len, out);
}

int td_projection__gen_put(td_txn *txn, const char *name, const td_projection_gen *g)
{
    char text[96];
    snprintf(text, sizeof text, "{\"generation\":%lld,\"built_through\":%lld}",
             (long long)g->generation, (long long)g->built_through);
    return td_txn_doc_put(txn, TD_PROJECTION_GENERATIONS, name, text, 0);
}

void td_projection__collection(char out[TD_PROJECTION_COLLECTION_MAX], const char *name,
                               int64_t generation)
{
    if (generation == 0)
        snprintf(out, TD_PROJECTION_COLLECTION_MAX, "%s", name);
    else
        snprintf(out, TD_PROJECTION_COLLECTION_MAX, "%s_g%lld", name, (long long)generation);
}

int td_projection__check_name(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    bool ok = len >= 1 && len <= TD_PROJECTION_NAME_MAX && name[0] >= 'a' && name[0] <= 'z';
    for (size_t i = 0; ok && i < len; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
             name[i] == '_';
    return ok ? 0
              : td_error__set(TD_EINVAL,
                              "a projection name is 1..%d of [a-z0-9_], starting with "
                              "a letter",
                              TD_PROJECTION_NAME_MAX);
}

int td_projection_generation(td_store *store, const char *name, int64_t *generation,
                             int64_t *built_through)
{
    TD_REQUIRE(store && name && generation && built_through);
    td_projection_gen g;
    int error = td_projection__check_name(name);
    if (error == 0)
        error = td_projection__gen_get(store, name, &g);
    if (error == 0) {
        *generation = g.generation;
        *built_through = g.built_through;
    }
    return error;
}

int td_projection_live_collection(td_store *store, const char *name,
                                  char out[TD_PROJECTION_COLLECTION_MAX])
{
    TD_REQUIRE(store && name && out);
    td_projection_gen g;
    int error = td_projection__check_name(name);
    if (error == 0)
        error = td_projection__gen_get(store, name, &g);
    if (error == 0)
        td_projection__collection(out, name, g.generation);
    return error;
}
