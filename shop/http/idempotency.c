/*
 * idempotency.c (shop http): Idempotency-Key on POST requests.
 *
 *   claim K: in_progress {fingerprint, token, claimed_at}  (a unit of its own)
 *   run the handler; each command it runs checks, in the command's own unit,
 *     that K is still claimed with this request's token, and marks K
 *     committed: the effect and the mark commit together or not at all
 *   keep the answer under K (done), unless it is >= 500 and nothing took
 *     effect: then release K
 *
 *   K again, same request, done      ──▶ the kept answer; nothing is done
 *   K again, another request         ──▶ 422 idempotency_key_reused
 *   K again while the first runs     ──▶ 409 request_in_progress
 *   K again, committed but no answer ──▶ 409 request_already_applied: the
 *     server stopped between the effect and keeping the answer
 *   K again, claimed more than CLAIM_LEASE_US ago and never committed: the
 *     server stopped before any effect, so the request is taken over and
 *     run. Its token replaces the old one: were the first request somehow
 *     still running, its command would fail rather than take effect twice.
 *
 * The fingerprint is the SHA-256 (libsodium) of method, path and body. The
 * records live in documents http_idempotency/<scope>, where the scope is a
 * hash of who is asking (a customer, a key, or an anonymous client's
 * address) and the key: one caller's keys never meet another's answers.
 * An answer that holds a customer's personal data is kept sealed under
 * their key (seal.h), so forgetting them erases it here too. POST /sessions
 * is never kept: its answer is a secret.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define KEY_MAX        200
#define COLLECTION     "http_idempotency"
#define CLAIM_LEASE_US (60 * 1000000LL) /* no request runs this long */
#define HEX(n)         ((n)*2 + 1)

typedef struct claim {
    char key[crypto_generichash_BYTES * 2 + 1]; /* the record's: caller and key, hashed */
    char fingerprint[HEX(crypto_hash_sha256_BYTES)];
    char token[HEX(16)];
    json_t *found; /* the record that answers instead of the handler, if any */
} claim;

static void fingerprint(const http_request *req, char out[HEX(crypto_hash_sha256_BYTES)])
{
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)req->method, strlen(req->method) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)req->path, strlen(req->path) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)(req->body ? req->body : ""),
                              req->body_len);
    crypto_hash_sha256_final(&st, hash);
    sodium_bin2hex(out, HEX(crypto_hash_sha256_BYTES), hash, sizeof hash);
}

/* The record under key, or NULL (none, or unreadable: TD_ECORRUPT). */
static int load(td_txn *txn, const char *key, json_t **out)
{
    char *text = NULL;
    size_t len = 0;
    json_error_t err;
    *out = NULL;
    int error = td_txn_doc_get(txn, COLLECTION, key, &text, &len);
    if (error == TD_ENOTFOUND)
        return 0;
    if (error == 0 && (*out = json_loadb(text, len, 0, &err)) == NULL)
        error = TD_ECORRUPT;
    td_free(text);
    return error;
}

static const char *field(json_t *record, const char *name)
{
    return json_string_value(json_object_get(record, name));
}

static bool is(json_t *record, const char *name, const char *value)
{
    const char *v = field(record, name);
    return v && strcmp(v, value) == 0;
}

/* A claim left by a server that stopped before its request took effect. */
static bool abandoned(json_t *record, const char *fingerprint)
{
    json_int_t at = json_integer_value(json_object_get(record, "claimed_at"));
    return is(record, "state", "in_progress") && is(record, "fingerprint", fingerprint) &&
           td_time_now() - (td_time)at > CLAIM_LEASE_US;
}

static int put_state(td_txn *txn, const claim *c, const char *state, const char *time_field)
{
    json_t *record = json_pack("{s:s,s:s,s:s,s:I}", "state", state, "fingerprint", c->fingerprint,
                               "token", c->token, time_field, (json_int_t)td_time_now());
    int error = record ? td_txn_doc_put_json(txn, COLLECTION, c->key, record) : TD_ENOMEM;
    json_decref(record);
    return error;
}

static int claim_unit(td_txn *txn, void *payload)
{
    claim *c = payload;
    int error = load(txn, c->key, &c->found);
    if (error == 0 && c->found && abandoned(c->found, c->fingerprint)) {
        json_decref(c->found); /* taken over */
        c->found = NULL;
    }
    return error < 0 || c->found ? error : put_state(txn, c, "in_progress", "claimed_at");
}

/* In each of the handler's commands' units (shop_set_unit_guard). */
static int guard(td_txn *txn, void *payload, const char **code, char *message, size_t size)
{
    claim *c = payload;
    json_t *record = NULL;
    int error = load(txn, c->key, &record);
    bool ours = record && is(record, "token", c->token);
    json_decref(record);
    if (error == 0 && !ours) {
        *code = "request_in_progress";
        snprintf(message, size, "another request took over this Idempotency-Key");
        return TD_ECONFLICT;
    }
    return error < 0 ? error : put_state(txn, c, "committed", "committed_at");
}

typedef struct keep {
    const claim *c;
    const char *text; /* the answer to keep; NULL: it was >= 500 */
} keep;

static int keep_unit(td_txn *txn, void *payload)
{
    keep *k = payload;
    json_t *record = NULL;
    int error = load(txn, k->c->key, &record);
    bool ours = record && is(record, "token", k->c->token);
    bool committed = ours && is(record, "state", "committed");
    json_decref(record);
    if (error < 0 || !ours) /* taken over meanwhile: the record is not ours */
        return error;
    if (k->text)
        return td_txn_doc_put(txn, COLLECTION, k->c->key, k->text, 0);
    if (committed) /* it took effect: a retry must learn so */
        return 0;
    error = td_txn_doc_delete(txn, COLLECTION, k->c->key); /* nothing happened: free the key */
    return error == TD_ENOTFOUND ? 0 : error;
}

/* The record's key: the caller's identity and their Idempotency-Key. */
static void scoped_key(const http_request *req, const char *key, char out[HEX(32)])
{
    unsigned char hash[32];
    char who[128];
    const shop_principal *p = &req->who;
    if (p->role == SHOP_ROLE_CUSTOMER)
        snprintf(who, sizeof who, "customer %s", p->user_id);
    else if (p->role == SHOP_ROLE_ANONYMOUS)
        snprintf(who, sizeof who, "anonymous %s", req->client);
    else
        snprintf(who, sizeof who, "key %s", p->name);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof hash);
    crypto_generichash_update(&st, (const unsigned char *)who, strlen(who) + 1);
    crypto_generichash_update(&st, (const unsigned char *)key, strlen(key));
    crypto_generichash_final(&st, hash, sizeof hash);
    sodium_bin2hex(out, HEX(32), hash, sizeof hash);
}

static bool valid_key(const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return n > 0 && n <= KEY_MAX;
}

/* Answers from a record found under the key. */
static void answer_from(shop *req_shop, const claim *c, http_response *res)
{
    json_t *r = c->found;
    if (!is(r, "fingerprint", c->fingerprint)) {
        http_problem(res, 422, "idempotency_key_reused", NULL,
                     "Idempotency-Key was used for another request");
        return;
    }
    if (is(r, "state", "committed")) {
        http_problem(res, 409, "request_already_applied", NULL,
                     "a request with this Idempotency-Key took effect, but the server stopped "
                     "before it kept the answer; read the resource to see the result");
        return;
    }
    if (!is(r, "state", "done")) {
        http_problem(res, 409, "request_in_progress", NULL,
                     "a request with this Idempotency-Key is still in progress");
        return;
    }
    const char *type = field(r, "content_type"), *location = field(r, "location");
    if (shop_open_personal(req_shop, r) < 0) {
        http_shop_problem(res, false);
        return;
    }
    res->status = (unsigned)json_integer_value(json_object_get(r, "status"));
    res->json = json_incref(json_object_get(r, "body"));
    res->content_type =
        type && strcmp(type, "application/problem+json") == 0 ? "application/problem+json" : NULL;
    snprintf(res->location, sizeof res->location, "%s", location ? location : "");
}

int http_idempotent(http_request *req, http_response *res, http_handler handler)
{
    const char *key =
        MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, "Idempotency-Key");
    if (key == NULL || strcmp(req->method, "POST") != 0 || strcmp(req->path, "/sessions") == 0)
        return handler(req, res);
    if (!valid_key(key))
        return http_problem(res, 400, "validation_failed", NULL,
                            "Idempotency-Key must be 1..%d printable characters", KEY_MAX);
    claim c = {.found = NULL};
    scoped_key(req, key, c.key);
    unsigned char token[16];
    fingerprint(req, c.fingerprint);
    randombytes_buf(token, sizeof token);
    sodium_bin2hex(c.token, sizeof c.token, token, sizeof token);
    if (td_transact(req->store, claim_unit, &c) < 0)
        return http_problem(res, 503, "unavailable", NULL, "%s", td_error_last());
    if (c.found) {
        answer_from(req->shop, &c, res);
        json_decref(c.found);
        return 0;
    }
    shop_set_unit_guard(guard, &c);
    handler(req, res);
    shop_set_unit_guard(NULL, NULL);
    json_t *kept = json_pack(
        "{s:s,s:s,s:i,s:O?,s:s,s:s}", "state", "done", "fingerprint", c.fingerprint, "status",
        (int)res->status, "body", res->json, "content_type",
        res->content_type ? res->content_type : "application/json", "location", res->location);
    static const char *const body_field[] = {"body", NULL};
    if (kept && res->subject[0] && res->json &&
        shop_seal_personal(req->shop, res->subject, kept, body_field) < 0) {
        json_decref(kept); /* not kept: a retry learns that the effect happened */
        kept = NULL;
    }
    char *text = kept && res->status < 500 ? json_dumps(kept, JSON_COMPACT) : NULL;
    keep k = {&c, text};
    td_transact(req->store, keep_unit, &k); /* if lost, a retry learns the effect happened */
    free(text);
    json_decref(kept);
    return 0;
}
