/*
 * idempotency.c (shop http): Idempotency-Key on POST requests.
 *
 *   claim K: in_progress {fingerprint, token, claimed_at}  (a unit of its own)
 *   run the handler; each command it runs checks, in the command's own unit,
 *     that K is still claimed with this request's token, and marks K
 *     committed (with the Location of what it created): the effect and the
 *     mark commit together or not at all
 *   took effect (committed) ──▶ keep the answer under K (done), unless it
 *     is >= 500: then the committed mark stays
 *   took no effect (refused: bad input, not found, a conflict) ──▶ release K:
 *     it leaves no record, and the same key may be used again
 *
 *   K again, same request, done        ──▶ the kept answer; nothing is done
 *   K again, another request           ──▶ 422 idempotency_key_reused
 *   K again while the first still runs ──▶ waits up to WAIT_US for its
 *     answer and gives it; else 409 request_in_progress, Retry-After
 *   K again, committed long ago, no answer ──▶ 409 request_already_applied
 *     with the Location of what it created: the server stopped between the
 *     effect and keeping the answer
 *   K again, claimed more than REQUEST_TIMEOUT_US ago and never committed:
 *     that request died before any effect, so this one takes over and runs.
 *     Its token replaces the old one: were the first request somehow still
 *     running, its command would fail rather than take effect twice.
 *
 * Records expire (common/expiry.h; 24 h unless http_options says otherwise)
 * and the keeper deletes them. The fingerprint is the SHA-256 (libsodium) of
 * method, path and body. A record's key is a hash of who is asking (a
 * customer, a key, or an anonymous client's address) and the key: one
 * caller's keys never meet another's answers. An answer that holds a
 * customer's personal data is kept sealed under their key (seal.h), so
 * forgetting them erases it here too. POST /sessions is never kept: its
 * answer is a secret.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/expiry.h"
#include "http/http.h"

#define KEY_MAX            200
#define REQUEST_TIMEOUT_US (30 * 1000000LL) /* no request runs this long */
#define WAIT_US            (2 * 1000000LL)  /* for a concurrent request's answer */
#define WAIT_STEP_US       20000
#define HEX(n)             ((n)*2 + 1)

typedef struct claim {
    char key[HEX(32)]; /* the record's: caller and key, hashed */
    char fingerprint[HEX(crypto_hash_sha256_BYTES)];
    char token[HEX(16)];
    char path[160];     /* the request's: the base of a Location */
    td_time expires_at; /* the record's */
    json_t *found;      /* the record that answers instead of the handler, if any */
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

/* The record under key, or NULL (none, expired, or unreadable: TD_ECORRUPT). */
static int load_with(td_txn *txn, td_store *store, const char *key, json_t **out)
{
    char *text = NULL;
    size_t len = 0;
    json_error_t err;
    *out = NULL;
    int error = txn ? td_txn_doc_get(txn, HTTP_IDEMPOTENCY, key, &text, &len)
                    : td_store_doc_get(store, HTTP_IDEMPOTENCY, key, &text, &len);
    if (error == TD_ENOTFOUND)
        return 0;
    if (error == 0 && (*out = json_loadb(text, len, 0, &err)) == NULL)
        error = TD_ECORRUPT;
    td_free(text);
    if (*out && shop_expired(*out, td_time_now())) {
        json_decref(*out); /* the sweep has not come by yet */
        *out = NULL;
    }
    return error;
}

static int load(td_txn *txn, const char *key, json_t **out)
{
    return load_with(txn, NULL, key, out);
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

static bool fresh(json_t *record)
{
    json_int_t at = json_integer_value(json_object_get(record, "claimed_at"));
    return td_time_now() - (td_time)at <= REQUEST_TIMEOUT_US;
}

/* A claim left by a request that died before it took effect. */
static bool abandoned(json_t *record, const char *fingerprint)
{
    return is(record, "state", "in_progress") && is(record, "fingerprint", fingerprint) &&
           !fresh(record);
}

/* Writes the record anew (its old expiry entry goes first). */
static int put_record(td_txn *txn, const claim *c, json_t *record)
{
    int error = shop_expiring_delete(txn, HTTP_IDEMPOTENCY, c->key);
    if (error == 0 || error == TD_ENOTFOUND)
        error = shop_expiring_put(txn, HTTP_IDEMPOTENCY, c->key, record, c->expires_at);
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
    if (error < 0 || c->found)
        return error;
    json_t *record =
        json_pack("{s:s,s:s,s:s,s:I}", "state", "in_progress", "fingerprint", c->fingerprint,
                  "token", c->token, "claimed_at", (json_int_t)td_time_now());
    error = record ? put_record(txn, c, record) : TD_ENOMEM;
    json_decref(record);
    return error;
}

/* Where what the request touched lives: POST /orders creating an order is
 * /orders/<id>; POST /orders/<id>/cancel is /orders/<id>. */
static void location_of(const claim *c, const char *created, char *out, size_t size)
{
    const char *last = strrchr(c->path, '/');
    if (created)
        snprintf(out, size, "%s/%s", c->path, created);
    else if (last && last != c->path)
        snprintf(out, size, "%.*s", (int)(last - c->path), c->path);
    else
        snprintf(out, size, "%s", c->path);
}

/* In each of the handler's commands' units (shop_set_unit_guard). */
static int guard(td_txn *txn, void *payload, const char *created, const char **code, char *message,
                 size_t size)
{
    claim *c = payload;
    json_t *record = NULL;
    char location[256];
    int error = load(txn, c->key, &record);
    bool ours = record && is(record, "token", c->token);
    if (error == 0 && !ours) {
        json_decref(record);
        *code = "request_in_progress";
        snprintf(message, size, "another request took over this Idempotency-Key");
        return TD_ECONFLICT;
    }
    location_of(c, created, location, sizeof location);
    if (error == 0 && (json_object_set_new(record, "state", json_string("committed")) < 0 ||
                       json_object_set_new(record, "location", json_string(location)) < 0))
        error = TD_ENOMEM;
    if (error == 0)
        error = put_record(txn, c, record);
    json_decref(record);
    return error;
}

typedef struct keep {
    const claim *c;
    json_t *answer; /* to keep, or NULL: only a committed mark may stay */
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
    if (committed && k->answer)
        return put_record(txn, k->c, k->answer);
    if (committed) /* it took effect: a retry must learn so */
        return 0;
    error = shop_expiring_delete(txn, HTTP_IDEMPOTENCY, k->c->key); /* nothing happened */
    return error == TD_ENOTFOUND ? 0 : error;
}

static bool valid_key(const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return n > 0 && n <= KEY_MAX;
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

/* A concurrent request with the key: its answer once kept, waiting a
 * little; the record as it then is in *found. */
static void await_answer(http_request *req, claim *c)
{
    for (td_time until = td_time_now() + WAIT_US;
         c->found && !is(c->found, "state", "done") && fresh(c->found) && td_time_now() < until;) {
        usleep(WAIT_STEP_US);
        json_t *again = NULL;
        if (load_with(NULL, req->store, c->key, &again) < 0 || again == NULL)
            break; /* released: keep what we saw */
        json_decref(c->found);
        c->found = again;
    }
}

/* Answers from a record found under the key. */
static void answer_from(http_request *req, const claim *c, http_response *res)
{
    json_t *r = c->found;
    const char *location = field(r, "location");
    snprintf(res->location, sizeof res->location, "%s", location ? location : "");
    if (!is(r, "fingerprint", c->fingerprint)) {
        res->location[0] = '\0';
        http_problem(res, 422, "idempotency_key_reused", NULL,
                     "Idempotency-Key was used for another request");
        return;
    }
    if (!is(r, "state", "done") && fresh(r)) {
        res->retry_after = 1;
        http_problem(res, 409, "request_in_progress", NULL,
                     "a request with this Idempotency-Key is still in progress");
        return;
    }
    if (!is(r, "state", "done")) {
        http_problem(res, 409, "request_already_applied", NULL,
                     "a request with this Idempotency-Key took effect, but the server stopped "
                     "before it kept the answer; read the resource (Location) to see the result");
        return;
    }
    if (shop_open_personal(req->shop, r) < 0) {
        http_shop_problem(res, false);
        return;
    }
    const char *type = field(r, "content_type");
    res->status = (unsigned)json_integer_value(json_object_get(r, "status"));
    res->json = json_incref(json_object_get(r, "body"));
    res->content_type =
        type && strcmp(type, "application/problem+json") == 0 ? "application/problem+json" : NULL;
}

/* The answer to keep: the body sealed when it holds a customer's data. */
static json_t *answer_record(http_request *req, const claim *c, const http_response *res)
{
    static const char *const body_field[] = {"body", NULL};
    json_t *kept = json_pack(
        "{s:s,s:s,s:s,s:i,s:O?,s:s,s:s}", "state", "done", "fingerprint", c->fingerprint, "token",
        c->token, "status", (int)res->status, "body", res->json, "content_type",
        res->content_type ? res->content_type : "application/json", "location", res->location);
    if (kept && res->subject[0] && res->json &&
        shop_seal_personal(req->shop, res->subject, kept, body_field) < 0) {
        json_decref(kept); /* not kept: a retry learns that the effect happened */
        kept = NULL;
    }
    return kept;
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
    claim c = {.found = NULL,
               .expires_at = td_time_now() + http_server_idempotency_ttl(req->server)};
    unsigned char token[16];
    scoped_key(req, key, c.key);
    fingerprint(req, c.fingerprint);
    snprintf(c.path, sizeof c.path, "%s", req->path);
    randombytes_buf(token, sizeof token);
    sodium_bin2hex(c.token, sizeof c.token, token, sizeof token);
    if (td_transact(req->store, claim_unit, &c) < 0) {
        res->retry_after = 1;
        return http_problem(res, 503, "unavailable", NULL, "%s", td_error_last());
    }
    if (c.found) {
        if (is(c.found, "fingerprint", c.fingerprint))
            await_answer(req, &c);
        answer_from(req, &c, res);
        json_decref(c.found);
        return 0;
    }
    shop_set_unit_guard(guard, &c);
    handler(req, res);
    shop_set_unit_guard(NULL, NULL);
    keep k = {&c, res->status < 500 ? answer_record(req, &c, res) : NULL};
    td_transact(req->store, keep_unit, &k); /* if lost, a retry learns the effect happened */
    json_decref(k.answer);
    return 0;
}
