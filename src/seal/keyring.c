/*
 * keyring.c: subject keys, wrapped by the master key (see tidings/seal.h).
 *
 * From the master key three subkeys are derived (crypto_kdf): one wraps
 * subject keys, one keys the lookup hash, one makes the check value that
 * ties a store to its master key. A subject's key is 32 random bytes kept
 * wrapped (XChaCha20-Poly1305 with the subject's name as associated data,
 * so a wrapped key copied onto another subject does not open) in the
 * document tidings_subject_keys/<subject>:
 *
 *   none ──add / seal with TD_SEAL_CREATE_KEY──▶ {"box": wrapped key}
 *     │                                              │
 *     └──────────────── forget ──────────────────────┴──▶ {"forgotten_at": …}
 *
 * The tombstone is final: a forgotten subject never gets a key again, so
 * a late event about them is written erased rather than sealed afresh.
 * Unwrapped keys are cached, direct-mapped by the subject's hash, for
 * TD_KEYRING_CACHE_TTL_S: a busy customer's data costs one document read
 * every ten seconds rather than one per seal or open. Forgetting drops the
 * key from this keyring's cache at once; another process's forget is seen
 * when the entry runs out.
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "seal/keyring_int.h"

#define KEYS_COLLECTION    "tidings_subject_keys"
#define KEYRING_COLLECTION "tidings_keyring"
#define MASTER_DOC         "master"
#define KDF_CONTEXT        "tdkeyrng" /* crypto_kdf contexts are 8 bytes */
#define SUBKEY_WRAP        1
#define SUBKEY_LOOKUP      2
#define SUBKEY_CHECK       3
#define CHECK_BYTES        16
#define NONCE_BYTES        crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES          crypto_aead_xchacha20poly1305_ietf_ABYTES
#define WRAPPED_BYTES      (NONCE_BYTES + TD_SUBJECT_KEY_BYTES + TAG_BYTES)
#define WRAPPED_B64                                                                                \
    sodium_base64_ENCODED_LEN(WRAPPED_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)

int td_keyring__check_subject(const char *subject)
{
    size_t n = subject ? strlen(subject) : 0;
    if (n == 0 || n > TD_SUBJECT_MAX)
        return td_error__set(TD_EINVAL, "a data subject is 1..%d bytes", TD_SUBJECT_MAX);
    for (size_t i = 0; i < n; i++)
        if (subject[i] < 0x21 || subject[i] > 0x7e)
            return td_error__set(TD_EINVAL, "a data subject is printable ASCII without spaces");
    return 0;
}

/* ---- documents --------------------------------------------------------------- */

/* The document as JSON (NULL when there is none), through txn or the store. */
static int doc_get(td_keyring *k, td_txn *txn, const char *collection, const char *key,
                   json_t **out)
{
    char *text = NULL;
    size_t len = 0;
    json_error_t err;
    *out = NULL;
    int error = txn ? td_txn_doc_get(txn, collection, key, &text, &len)
                    : td_store_doc_get(k->store, collection, key, &text, &len);
    if (error == TD_ENOTFOUND)
        return 0;
    bool oom = false;
    if (error == 0 && (*out = td_json__loadb(text, len, 0, &err, &oom)) == NULL)
        error = oom ? td_error__oom()
                    : td_error__set(TD_ECORRUPT, "document %s/%s is not JSON", collection, key);
    td_free(text);
    return error;
}

static int doc_put(td_txn *txn, const char *collection, const char *key, json_t *doc)
{
    int error = doc ? td_txn_doc_put_json(txn, collection, key, doc) : td_error__oom();
    json_decref(doc);
    return error;
}

/* ---- the master key ----------------------------------------------------------- */

static void check_value(const unsigned char master[TD_MASTER_KEY_BYTES],
                        char out[CHECK_BYTES * 2 + 1])
{
    static const char message[] = "tidings master key check";
    unsigned char key[crypto_generichash_KEYBYTES], check[CHECK_BYTES];
    crypto_kdf_derive_from_key(key, sizeof key, SUBKEY_CHECK, KDF_CONTEXT, master);
    crypto_generichash(check, sizeof check, (const unsigned char *)message, sizeof message - 1, key,
                       sizeof key);
    sodium_bin2hex(out, CHECK_BYTES * 2 + 1, check, sizeof check);
    sodium_memzero(key, sizeof key);
}

static bool same_check(const char *stored, const char *value)
{
    return stored && strlen(stored) == strlen(value) &&
           sodium_memcmp(stored, value, strlen(value)) == 0;
}

typedef struct check_args {
    const char *value;
    bool matches;
} check_args;

/* The stored check value, or none: the first keyring records it. */
static int check_unit(td_txn *txn, void *payload)
{
    check_args *c = payload;
    json_t *doc = NULL;
    int error = doc_get(NULL, txn, KEYRING_COLLECTION, MASTER_DOC, &doc);
    const char *stored = json_string_value(json_object_get(doc, "check"));
    c->matches = same_check(stored, c->value);
    if (error == 0 && doc == NULL) {
        c->matches = true;
        error = doc_put(txn, KEYRING_COLLECTION, MASTER_DOC, json_pack("{s:s}", "check", c->value));
    }
    json_decref(doc);
    return error;
}

static int check_master(td_keyring *k, const unsigned char master[TD_MASTER_KEY_BYTES])
{
    char value[CHECK_BYTES * 2 + 1];
    check_args c = {value, false};
    json_t *doc = NULL;
    check_value(master, value);
    int error = doc_get(k, NULL, KEYRING_COLLECTION, MASTER_DOC, &doc);
    const char *stored = json_string_value(json_object_get(doc, "check"));
    if (error == 0 && doc)
        c.matches = same_check(stored, value);
    else if (error == 0 && !td_store_read_only(k->store))
        error = td_transact(k->store, check_unit, &c); /* the first: record it */
    else if (error == 0)
        c.matches = true; /* read-only and never keyed: nothing is sealed yet */
    json_decref(doc);
    if (error == 0 && !c.matches)
        error = td_error__set(TD_EINVAL,
                              "the master key does not match the one this store's personal data "
                              "is sealed with");
    return error;
}

int td_keyring_in_use(td_store *store, bool *out)
{
    TD_REQUIRE(store && out);
    char *text = NULL;
    if (store == NULL || out == NULL)
        return td_error__set(TD_EINVAL, "td_keyring_in_use: store or out is NULL");
    int error = td_store_doc_get(store, KEYRING_COLLECTION, MASTER_DOC, &text, NULL);
    td_free(text);
    *out = error == 0;
    return error == TD_ENOTFOUND ? 0 : error;
}

int td_keyring_new(td_keyring **out, td_store *store,
                   const unsigned char master[TD_MASTER_KEY_BYTES])
{
    TD_REQUIRE(out && store && master);
    if (out == NULL || store == NULL || master == NULL)
        return td_error__set(TD_EINVAL, "td_keyring_new: out, store or master is NULL");
    if (sodium_init() < 0)
        return td_error__set(TD_ERROR, "libsodium cannot start");
    td_keyring *k = td_calloc(1, sizeof *k);
    td_cached_key *cache = k ? td_calloc(TD_KEY_CACHE_SLOTS, sizeof *cache) : NULL;
    if (cache == NULL) {
        td_free(k);
        return td_error__oom();
    }
    k->store = store;
    k->cache = cache;
    pthread_mutex_init(&k->cache_lock, NULL);
    sodium_mlock(k, sizeof *k); /* best effort: kept out of swap where allowed */
    sodium_mlock(cache, TD_KEY_CACHE_SLOTS * sizeof *cache);
    crypto_kdf_derive_from_key(k->wrap, sizeof k->wrap, SUBKEY_WRAP, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(k->lookup, sizeof k->lookup, SUBKEY_LOOKUP, KDF_CONTEXT, master);
    int error = check_master(k, master);
    if (error < 0) {
        td_keyring_free(k);
        return error;
    }
    *out = k;
    return 0;
}

void td_keyring_free(td_keyring *k)
{
    if (k == NULL)
        return;
    sodium_munlock(k->cache, TD_KEY_CACHE_SLOTS * sizeof *k->cache); /* wipes it too */
    td_free(k->cache);
    pthread_mutex_destroy(&k->cache_lock);
    sodium_munlock(k, sizeof *k);
    td_free(k);
}

/* ---- the cache of unwrapped keys ---------------------------------------------------------- */

static td_cached_key *slot_of(td_keyring *k, const char *subject)
{
    unsigned char hash[8];
    uint64_t h;
    crypto_generichash(hash, sizeof hash, (const unsigned char *)subject, strlen(subject),
                       k->lookup, sizeof k->lookup);
    memcpy(&h, hash, sizeof h);
    return &k->cache[h & (TD_KEY_CACHE_SLOTS - 1)];
}

static bool cached(td_keyring *k, const char *subject, unsigned char key[TD_SUBJECT_KEY_BYTES])
{
    td_cached_key *c = slot_of(k, subject);
    pthread_mutex_lock(&k->cache_lock);
    bool hit = strcmp(c->subject, subject) == 0 &&
               td_time_now() - c->loaded_at < (td_time)TD_KEYRING_CACHE_TTL_S * 1000000;
    if (hit)
        memcpy(key, c->key, TD_SUBJECT_KEY_BYTES);
    pthread_mutex_unlock(&k->cache_lock);
    return hit;
}

static void remember(td_keyring *k, const char *subject,
                     const unsigned char key[TD_SUBJECT_KEY_BYTES])
{
    td_cached_key *c = slot_of(k, subject);
    pthread_mutex_lock(&k->cache_lock);
    snprintf(c->subject, sizeof c->subject, "%s", subject);
    memcpy(c->key, key, TD_SUBJECT_KEY_BYTES);
    c->loaded_at = td_time_now();
    pthread_mutex_unlock(&k->cache_lock);
}

static void drop(td_keyring *k, const char *subject)
{
    td_cached_key *c = slot_of(k, subject);
    pthread_mutex_lock(&k->cache_lock);
    if (strcmp(c->subject, subject) == 0)
        sodium_memzero(c, sizeof *c);
    pthread_mutex_unlock(&k->cache_lock);
}

void td_keyring_lookup(const td_keyring *k, const char *text, char out[TD_LOOKUP_HEX_LEN + 1])
{
    unsigned char hash[TD_LOOKUP_HEX_LEN / 2];
    crypto_generichash(hash, sizeof hash, (const unsigned char *)text, strlen(text), k->lookup,
                       sizeof k->lookup);
    sodium_bin2hex(out, TD_LOOKUP_HEX_LEN + 1, hash, sizeof hash);
}

/* ---- subject keys --------------------------------------------------------------- */

static void wrap_ad(char *ad, size_t size, const char *subject)
{
    snprintf(ad, size, "tidings subject key\n%s", subject);
}

static int wrap(td_keyring *k, const char *subject, const unsigned char key[TD_SUBJECT_KEY_BYTES],
                char out[WRAPPED_B64])
{
    unsigned char box[WRAPPED_BYTES];
    char ad[TD_SUBJECT_MAX + 32];
    wrap_ad(ad, sizeof ad, subject);
    randombytes_buf(box, NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(box + NONCE_BYTES, NULL, key, TD_SUBJECT_KEY_BYTES,
                                               (const unsigned char *)ad, strlen(ad), NULL, box,
                                               k->wrap);
    sodium_bin2base64(out, WRAPPED_B64, box, sizeof box, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

static int unwrap(td_keyring *k, const char *subject, const char *text,
                  unsigned char key[TD_SUBJECT_KEY_BYTES])
{
    unsigned char box[WRAPPED_BYTES];
    size_t len = 0;
    char ad[TD_SUBJECT_MAX + 32];
    wrap_ad(ad, sizeof ad, subject);
    if (text == NULL ||
        sodium_base642bin(box, sizeof box, text, strlen(text), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        len != sizeof box ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(key, NULL, NULL, box + NONCE_BYTES,
                                                   len - NONCE_BYTES, (const unsigned char *)ad,
                                                   strlen(ad), box, k->wrap) != 0)
        return td_error__set(TD_ECORRUPT, "the key of data subject '%.80s' does not open", subject);
    return 0;
}

static int create_key(td_keyring *k, td_txn *txn, const char *subject,
                      unsigned char key[TD_SUBJECT_KEY_BYTES])
{
    char wrapped[WRAPPED_B64];
    if (txn == NULL)
        return td_error__set(TD_EINVAL, "a subject key is created inside a unit of work");
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    wrap(k, subject, key, wrapped);
    return doc_put(txn, KEYS_COLLECTION, subject, json_pack("{s:i,s:s}", "v", 1, "box", wrapped));
}

int td_keyring__subject_key(td_keyring *k, td_txn *txn, const char *subject, bool create,
                            unsigned char key[TD_SUBJECT_KEY_BYTES], td_subject_state *state)
{
    json_t *doc = NULL;
    int error = td_keyring__check_subject(subject);
    *state = TD_SUBJECT_NONE;
    if (error == 0 && cached(k, subject, key)) {
        *state = TD_SUBJECT_KEY;
        return 0;
    }
    if (error == 0)
        error = doc_get(k, txn, KEYS_COLLECTION, subject, &doc);
    if (error == 0 && doc && json_object_get(doc, "forgotten_at"))
        *state = TD_SUBJECT_FORGOTTEN;
    else if (error == 0 && doc) {
        error = unwrap(k, subject, json_string_value(json_object_get(doc, "box")), key);
        *state = error == 0 ? TD_SUBJECT_KEY : TD_SUBJECT_NONE;
    } else if (error == 0 && create) { /* remembered only once the unit commits: not here */
        error = create_key(k, txn, subject, key);
        *state = error == 0 ? TD_SUBJECT_KEY : TD_SUBJECT_NONE;
        json_decref(doc);
        return error;
    }
    if (error == 0 && *state == TD_SUBJECT_KEY)
        remember(k, subject, key);
    json_decref(doc);
    return error;
}

int td_keyring_add_subject(td_keyring *k, td_txn *txn, const char *subject)
{
    TD_REQUIRE(k && txn && subject);
    unsigned char key[TD_SUBJECT_KEY_BYTES];
    td_subject_state state = TD_SUBJECT_NONE;
    if (k == NULL || txn == NULL)
        return td_error__set(TD_EINVAL, "td_keyring_add_subject: keyring or txn is NULL");
    int error = td_keyring__subject_key(k, txn, subject, false, key, &state);
    if (error == 0 && state == TD_SUBJECT_KEY)
        error = td_error__set(TD_EEXISTS, "data subject '%.80s' has a key already", subject);
    else if (error == 0 && state == TD_SUBJECT_FORGOTTEN)
        error = td_error__set(TD_ECONFLICT, "data subject '%.80s' was forgotten", subject);
    else if (error == 0)
        error = create_key(k, txn, subject, key);
    sodium_memzero(key, sizeof key);
    return error;
}

int td_keyring_forget(td_keyring *k, td_txn *txn, const char *subject)
{
    TD_REQUIRE(k && txn && subject);
    char when[TD_TIME_STR_LEN + 1];
    if (k == NULL || txn == NULL)
        return td_error__set(TD_EINVAL, "td_keyring_forget: keyring or txn is NULL");
    int error = td_keyring__check_subject(subject);
    if (error == 0)
        error = td_time_format(when, td_time_now());
    if (error == 0) /* the wrapped key's bytes are overwritten in place */
        error = doc_put(txn, KEYS_COLLECTION, subject, json_pack("{s:s}", "forgotten_at", when));
    if (error == 0)
        drop(k, subject); /* also if the unit then rolls back: it is read again */
    return error;
}

int td_keyring_forgotten(td_keyring *k, td_txn *txn, const char *subject, bool *out)
{
    TD_REQUIRE(k && subject && out);
    json_t *doc = NULL;
    if (k == NULL || out == NULL)
        return td_error__set(TD_EINVAL, "td_keyring_forgotten: keyring or out is NULL");
    int error = td_keyring__check_subject(subject);
    if (error == 0)
        error = doc_get(k, txn, KEYS_COLLECTION, subject, &doc);
    *out = doc && json_object_get(doc, "forgotten_at") != NULL;
    json_decref(doc);
    return error;
}
