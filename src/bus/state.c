/*
 * state.c: reading and writing the subscriptions' durable state documents
 * (layout in state.h). JSON is built and read with jansson's pack/unpack.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/state.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "store/txn_internal.h"

int td_state__check_name(const char *name)
{
    size_t n = 0;
    if (name == NULL || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
        return td_error__set(TD_EINVAL,
                             "invalid subscription or consumer name '%.64s': "
                             "expected 1..64 of [A-Za-z0-9_.-] starting with a letter",
                             name ? name : "");
    for (; name[n]; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-') ||
            n >= TD_SUBSCRIPTION_NAME_MAX)
            return td_error__set(TD_EINVAL,
                                 "invalid subscription or consumer name '%.64s': "
                                 "expected 1..64 of [A-Za-z0-9_.-]",
                                 name);
    }
    return 0;
}

int td_state__key(char buf[TD_STATE_KEY_MAX + 1], const char *name, const char *rest)
{
    int n = snprintf(buf, TD_STATE_KEY_MAX + 1, "%s|%s", name, rest);
    if (n < 0 || n > TD_STATE_KEY_MAX)
        return td_error__set(TD_ETOOBIG, "state key too long");
    return 0;
}

int td_state__position_key(char buf[TD_STATE_KEY_MAX + 1], const char *name, int64_t position)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%020lld", (long long)position);
    return td_state__key(buf, name, digits);
}

typedef struct prefix_ctx {
    const char *prefix;
    size_t len;
    td_doc_fn fn;
    void *payload;
} prefix_ctx;

static int within_prefix(const char *key, const char *json, size_t len, void *payload)
{
    prefix_ctx *ctx = payload;
    if (strncmp(key, ctx->prefix, ctx->len) != 0)
        return 1; /* past the prefix: stop */
    return ctx->fn(key, json, len, ctx->payload);
}

int td_state__list_prefix(td_store *store, const char *collection, const char *name, td_doc_fn fn,
                          void *payload)
{
    char prefix[TD_STATE_KEY_MAX + 1];
    int error = td_state__key(prefix, name, "");
    if (error < 0)
        return error;
    prefix_ctx ctx = {prefix, strlen(prefix), fn, payload};
    return td_store_doc_list(store, collection, prefix, 0, within_prefix, &ctx);
}

/* Serialises json (stealing the reference) and puts it under key. */
static int put_json(td_txn *txn, const char *collection, const char *key, json_t *json)
{
    if (json == NULL)
        return td_error__oom();
    int error = td_txn_doc_put_json(txn, collection, key, json);
    json_decref(json);
    return error;
}

static int parse_doc(json_t **out, const char *text, size_t len)
{
    json_error_t err;
    bool oom;
    *out = td_json__loadb(text, len, 0, &err, &oom);
    if (oom)
        return td_error__oom();
    if (*out == NULL)
        return td_error__set(TD_ECORRUPT, "state document is not JSON: %s", err.text);
    return 0;
}

/* ---- checkpoints ---------------------------------------------------------- */

int td_state__load_checkpoint(td_store *store, const char *name, td_checkpoint *out, bool *found)
{
    char *text = NULL;
    size_t len = 0;
    json_t *json = NULL;
    json_int_t position = 0, inflight = 0, suspect = 0, attempts = 0, recovering = 0;
    memset(out, 0, sizeof *out);
    int error = td_store_doc_get(store, TD_COLL_CHECKPOINTS, name, &text, &len);
    *found = error == 0;
    if (error == TD_ENOTFOUND)
        return 0;
    if (error == 0 && (error = parse_doc(&json, text, len)) == 0 &&
        json_unpack(json, "{s:I,s:I,s:I,s:I,s?I}", "position", &position, "inflight_to", &inflight,
                    "suspect_position", &suspect, "suspect_attempts", &attempts, "recovering_to",
                    &recovering) < 0)
        error = td_error__set(TD_ECORRUPT, "checkpoint of '%s' is malformed", name);
    out->position = position;
    out->inflight_to = inflight;
    out->suspect_position = suspect;
    out->suspect_attempts = (unsigned)attempts;
    out->recovering_to = recovering;
    json_decref(json);
    td_free(text);
    return error;
}

int td_state__put_checkpoint(td_txn *txn, const char *name, const td_checkpoint *cp)
{
    return put_json(
        txn, TD_COLL_CHECKPOINTS, name,
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "position", (json_int_t)cp->position, "inflight_to",
                  (json_int_t)cp->inflight_to, "suspect_position", (json_int_t)cp->suspect_position,
                  "suspect_attempts", (json_int_t)cp->suspect_attempts, "recovering_to",
                  (json_int_t)cp->recovering_to, "updated_at", (json_int_t)td_time_now()));
}

typedef struct checkpoint_args {
    const char *name;
    const td_checkpoint *cp;
} checkpoint_args;

static int checkpoint_unit(td_txn *txn, void *payload)
{
    checkpoint_args *a = payload;
    return td_state__put_checkpoint(txn, a->name, a->cp);
}

int td_state__save_checkpoint(td_store *store, const char *name, const td_checkpoint *cp)
{
    checkpoint_args a = {name, cp};
    return td_transact(store, checkpoint_unit, &a);
}

/* ---- retries ----------------------------------------------------------------- */

typedef struct retry_args {
    const char *key;
    json_t *json;
} retry_args;

static int retry_put_unit(td_txn *txn, void *payload)
{
    retry_args *a = payload;
    json_incref(a->json);
    return put_json(txn, TD_COLL_RETRIES, a->key, a->json);
}

int td_state__save_retry(td_store *store, const char *name, int64_t position, unsigned attempts,
                         td_time next_at, const char *error_text)
{
    char key[TD_STATE_KEY_MAX + 1];
    int error = td_state__position_key(key, name, position);
    if (error < 0)
        return error;
    retry_args a = {key, json_pack("{s:I,s:I,s:s}", "attempts", (json_int_t)attempts, "next_at",
                                   (json_int_t)next_at, "last_error", error_text)};
    if (a.json == NULL)
        return td_error__oom();
    error = td_transact(store, retry_put_unit, &a);
    json_decref(a.json);
    return error;
}

static int retry_delete_unit(td_txn *txn, void *payload)
{
    int error = td_txn_doc_delete(txn, TD_COLL_RETRIES, payload);
    return error == TD_ENOTFOUND ? 0 : error;
}

int td_state__delete_retry(td_store *store, const char *name, int64_t position)
{
    char key[TD_STATE_KEY_MAX + 1];
    int error = td_state__position_key(key, name, position);
    return error < 0 ? error : td_transact(store, retry_delete_unit, key);
}

/* ---- progress (transactional mode) --------------------------------------------- */

#define PROGRESS_PREFIX "{\"version\":"

/* A progress document's version; a missing document is version 0. The
 * store writes them as {"version":N}, which is read without a parser (one
 * is written and read per handled event); anything else goes through one. */
static int progress_version(int error, const char *key, char *text, size_t len, int64_t *version)
{
    json_t *json = NULL;
    json_int_t v = 0;
    *version = 0;
    if (error == TD_ENOTFOUND)
        return 0;
    size_t prefix = sizeof PROGRESS_PREFIX - 1;
    if (error == 0 && len > prefix + 1 && len < prefix + 21 &&
        memcmp(text, PROGRESS_PREFIX, prefix) == 0 && text[len - 1] == '}') {
        char *end = NULL;
        long long n = strtoll(text + prefix, &end, 10);
        if (end == text + len - 1 && n >= 0 && text[prefix] != '+' && text[prefix] != ' ') {
            *version = n;
            td_free(text);
            return 0;
        }
    }
    if (error == 0 && (error = parse_doc(&json, text, len)) == 0 &&
        json_unpack(json, "{s:I}", "version", &v) < 0)
        error = td_error__set(TD_ECORRUPT, "progress of '%s' is malformed", key);
    *version = v;
    json_decref(json);
    td_free(text);
    return error;
}

int td_state__progress_get(td_txn *txn, const char *name, const char *stream, int64_t *version)
{
    char key[TD_STATE_KEY_MAX + 1];
    char *text = NULL;
    size_t len = 0;
    int error = td_state__key(key, name, stream);
    if (error == 0)
        error = td_txn_doc_get(txn, TD_COLL_PROGRESS, key, &text, &len);
    return progress_version(error, key, text, len, version);
}

int td_state__progress_read(td_store *store, const char *name, const char *stream, int64_t *version)
{
    char key[TD_STATE_KEY_MAX + 1];
    char *text = NULL;
    size_t len = 0;
    int error = td_state__key(key, name, stream);
    if (error == 0)
        error = td_store__doc_get_committed(store, TD_COLL_PROGRESS, key, &text, &len);
    return progress_version(error, key, text, len, version);
}

int td_state__progress_put(td_txn *txn, const char *name, const char *stream, int64_t version)
{
    char key[TD_STATE_KEY_MAX + 1], body[48];
    int error = td_state__key(key, name, stream);
    int n = snprintf(body, sizeof body, PROGRESS_PREFIX "%lld}", (long long)version);
    return error < 0 ? error : td_txn__doc_put_trusted(txn, TD_COLL_PROGRESS, key, body, (size_t)n);
}

/* ---- dead letters ----------------------------------------------------------------- */

static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

int td_state__dead_letter_to_json(char **out, const td_dead_letter *e)
{
    char event_id[TD_UUID_STR_LEN + 1];
    td_uuid_format(event_id, &e->event_id);
    return td_json__dump_steal(
        out, NULL,
        json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:I,s:s,s:I,s:I,s:s,s:o,s:o}", "id", e->id,
                  "subscription", e->subscription, "position", (json_int_t)e->position, "event_id",
                  event_id, "stream", e->stream, "type", e->type, "attempts",
                  (json_int_t)e->attempts, "last_error", e->last_error ? e->last_error : "",
                  "first_failure", (json_int_t)e->first_failure, "last_failure",
                  (json_int_t)e->last_failure, "status", e->status, "behind",
                  string_or_null(e->behind), "request", string_or_null(e->request)));
}

int td_state__dead_letter_from_json(td_dead_letter *e, json_t **holder, const char *id,
                                    const char *text, size_t len)
{
    json_int_t position = 0, attempts = 0, first = 0, last = 0;
    const char *event_id = NULL;
    json_t *behind = NULL, *request = NULL;
    memset(e, 0, sizeof *e);
    int error = parse_doc(holder, text, len);
    if (error < 0)
        return error;
    if (json_unpack(*holder, "{s:s,s:I,s:s,s:s,s:s,s:I,s:s,s:I,s:I,s:s,s:o,s:o}", "subscription",
                    &e->subscription, "position", &position, "event_id", &event_id, "stream",
                    &e->stream, "type", &e->type, "attempts", &attempts, "last_error",
                    &e->last_error, "first_failure", &first, "last_failure", &last, "status",
                    &e->status, "behind", &behind, "request", &request) < 0 ||
        td_uuid_parse(&e->event_id, event_id) < 0)
        return td_error__set(TD_ECORRUPT, "dead letter %.40s is malformed", id);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->position = position;
    e->attempts = (unsigned)attempts;
    e->first_failure = first;
    e->last_failure = last;
    e->behind = json_is_string(behind) ? json_string_value(behind) : NULL;
    e->request = json_is_string(request) ? json_string_value(request) : NULL;
    return 0;
}

int td_state__put_dead_letter(td_txn *txn, const td_dead_letter *entry)
{
    char *text = NULL;
    int error = td_state__dead_letter_to_json(&text, entry);
    if (error == 0)
        error = td_txn_doc_put(txn, TD_COLL_DEAD_LETTERS, entry->id, text, 0);
    td_free(text);
    return error;
}

typedef struct dead_count {
    const char *name;
    int64_t count;
} dead_count;

static int count_dead(const td_dead_letter *e, void *payload)
{
    dead_count *c = payload;
    c->count += strcmp(e->subscription, c->name) == 0;
    return 0;
}

int td_state__count_dead_letters(td_store *store, const char *name, int64_t *out)
{
    dead_count c = {name, 0};
    int error = td_dlq_list(store, NULL, count_dead, &c);
    *out = c.count;
    return error;
}
