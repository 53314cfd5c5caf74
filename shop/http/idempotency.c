/*
 * idempotency.c (shop http): Idempotency-Key on POST requests.
 *
 *   first request with key K ──claim K (in_progress, fingerprint)──▶ handle ──▶
 *       answer < 500: keep it under K     answer >= 500: release K
 *   K again, same method, path and body ──▶ the kept answer, nothing done
 *   K again, another request             ──▶ 422 idempotency_key_reused
 *   K again while the first runs         ──▶ 409 request_in_progress
 *
 * The claim is a unit of work, so two racing requests with one key cannot
 * both act. The fingerprint is the SHA-256 (libsodium) of method, path and
 * body. Kept answers live in documents http_idempotency/<key>.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define KEY_MAX 200

typedef struct claim {
    const char *key;
    char fingerprint[crypto_hash_sha256_BYTES * 2 + 1];
    json_t *found; /* the kept document, if any */
} claim;

static void fingerprint(const http_request *req, char out[crypto_hash_sha256_BYTES * 2 + 1])
{
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)req->method, strlen(req->method) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)req->path, strlen(req->path) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)(req->body ? req->body : ""),
                              req->body_len);
    crypto_hash_sha256_final(&st, hash);
    sodium_bin2hex(out, crypto_hash_sha256_BYTES * 2 + 1, hash, sizeof hash);
}

static int claim_unit(td_txn *txn, void *payload)
{
    claim *c = payload;
    char *text = NULL, doc[256];
    size_t len = 0;
    json_error_t err;
    int error = td_txn_doc_get(txn, "http_idempotency", c->key, &text, &len);
    if (error == 0) {
        c->found = json_loadb(text, len, 0, &err);
        td_free(text);
        return c->found ? 0 : TD_ECORRUPT;
    }
    if (error != TD_ENOTFOUND)
        return error;
    snprintf(doc, sizeof doc, "{\"state\":\"in_progress\",\"fingerprint\":\"%s\"}", c->fingerprint);
    return td_txn_doc_put(txn, "http_idempotency", c->key, doc, 0);
}

typedef struct keep {
    const char *key;
    const char *text; /* NULL: release the claim */
} keep;

static int keep_unit(td_txn *txn, void *payload)
{
    keep *k = payload;
    if (k->text)
        return td_txn_doc_put(txn, "http_idempotency", k->key, k->text, 0);
    int error = td_txn_doc_delete(txn, "http_idempotency", k->key);
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

/* Answers from a kept document; 1 if it did, 0 to go on. */
static int answer_from(claim *c, http_response *res)
{
    const char *state = json_string_value(json_object_get(c->found, "state"));
    const char *print = json_string_value(json_object_get(c->found, "fingerprint"));
    if (!print || strcmp(print, c->fingerprint) != 0)
        return http_problem(res, 422, "idempotency_key_reused", NULL,
                            "Idempotency-Key was used for another request"),
               1;
    if (!state || strcmp(state, "done") != 0)
        return http_problem(res, 409, "request_in_progress", NULL,
                            "a request with this Idempotency-Key is still in progress"),
               1;
    json_t *body = json_object_get(c->found, "body");
    const char *type = json_string_value(json_object_get(c->found, "content_type"));
    const char *location = json_string_value(json_object_get(c->found, "location"));
    res->status = (unsigned)json_integer_value(json_object_get(c->found, "status"));
    res->json = json_incref(body);
    res->content_type =
        type && strcmp(type, "application/problem+json") == 0 ? "application/problem+json" : NULL;
    snprintf(res->location, sizeof res->location, "%s", location ? location : "");
    return 1;
}

int http_idempotent(http_request *req, http_response *res, http_handler handler)
{
    const char *key =
        MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, "Idempotency-Key");
    if (key == NULL || strcmp(req->method, "POST") != 0)
        return handler(req, res);
    if (!valid_key(key))
        return http_problem(res, 400, "validation_failed", NULL,
                            "Idempotency-Key must be 1..%d printable characters", KEY_MAX);
    claim c = {key, "", NULL};
    fingerprint(req, c.fingerprint);
    if (td_transact(req->store, claim_unit, &c) < 0)
        return http_problem(res, 503, "unavailable", NULL, "%s", td_error_last());
    if (c.found) {
        answer_from(&c, res);
        json_decref(c.found);
        return 0;
    }
    handler(req, res);
    json_t *kept = json_pack(
        "{s:s,s:s,s:i,s:O?,s:s,s:s}", "state", "done", "fingerprint", c.fingerprint, "status",
        (int)res->status, "body", res->json, "content_type",
        res->content_type ? res->content_type : "application/json", "location", res->location);
    char *text = kept && res->status < 500 ? json_dumps(kept, JSON_COMPACT) : NULL;
    keep k = {key, text};
    td_transact(req->store, keep_unit, &k); /* a lost record only means the next try runs again */
    free(text);
    json_decref(kept);
    return 0;
}
