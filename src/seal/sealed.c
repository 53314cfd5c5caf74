/*
 * sealed.c: the sealed JSON form (see tidings/seal.h).
 *
 *   {"a":1,"email":"x","name":"y"}  ──seal──▶  {"a":1,"_sealed":{"subject":S,
 *                                                 "fields":["email","name"],"box":B}}
 *   ──open──▶ {"a":1,"email":"x","name":"y"}          (the subject's key exists)
 *   ──open──▶ {"a":1,"email":null,"name":null,"_erased":true}   (forgotten)
 *
 * B is base64url of a fresh 24-byte nonce and the XChaCha20-Poly1305
 * encryption of the fields as one compact JSON object. The subject and the
 * list of fields are its associated data: a box moved to another subject
 * or relabelled does not open. Plaintext copies are wiped once used.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "seal/keyring_int.h"

#define SEALED_MEMBER "_sealed"
#define ERASED_MEMBER "_erased"
#define NONCE_BYTES   crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES     crypto_aead_xchacha20poly1305_ietf_ABYTES
#define B64_VARIANT   sodium_base64_VARIANT_URLSAFE_NO_PADDING

const char *td_sealed_subject(const json_t *data)
{
    return json_string_value(json_object_get(json_object_get(data, SEALED_MEMBER), "subject"));
}

/* The associated data: the subject and the field list, as text (td_free). */
static char *associated(const char *subject, const json_t *names)
{
    char *list = json_dumps(names, JSON_COMPACT);
    size_t size = list ? strlen(subject) + strlen(list) + 2 : 0;
    char *ad = list ? td_malloc(size) : NULL;
    if (ad)
        snprintf(ad, size, "%s\n%s", subject, list);
    td_json__free(list);
    return ad;
}

/* The fields named in names become null, and data says it was erased. */
static int erase(json_t *data, const json_t *names)
{
    size_t i;
    json_t *name;
    json_array_foreach(names, i, name)
    {
        if (json_is_string(name) &&
            json_object_set_new(data, json_string_value(name), json_null()) < 0)
            return td_error__oom();
    }
    json_object_del(data, SEALED_MEMBER);
    return json_object_set_new(data, ERASED_MEMBER, json_true()) < 0 ? td_error__oom() : 1;
}

int td_keyring_erase(json_t *data, const char *const *fields)
{
    TD_REQUIRE(data && fields);
    if (!json_is_object(data))
        return td_error__set(TD_EINVAL, "td_keyring_erase: data is not a JSON object");
    json_t *names = json_array();
    int error = names ? 0 : td_error__oom();
    for (size_t i = 0; error == 0 && fields[i]; i++)
        if (json_object_get(data, fields[i]) &&
            json_array_append_new(names, json_string(fields[i])) < 0)
            error = td_error__oom();
    if (error == 0 && json_array_size(names) > 0)
        error = erase(data, names);
    json_decref(names);
    return error;
}

static void wipe_json_text(char *text)
{
    if (text) {
        sodium_memzero(text, strlen(text));
        td_json__free(text);
    }
}

/* Encrypts plain under key: *out is base64url text (td_free). */
static int box(char **out, const unsigned char *key, const char *ad, const json_t *plain)
{
    char *text = json_dumps(plain, JSON_COMPACT);
    size_t len = text ? strlen(text) : 0, sealed_len = NONCE_BYTES + len + TAG_BYTES;
    size_t b64_len = sodium_base64_ENCODED_LEN(sealed_len, B64_VARIANT);
    unsigned char *sealed = text ? td_malloc(sealed_len) : NULL;
    *out = sealed ? td_malloc(b64_len) : NULL;
    if (*out == NULL) {
        td_free(sealed);
        wipe_json_text(text);
        return td_error__oom();
    }
    randombytes_buf(sealed, NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        sealed + NONCE_BYTES, NULL, (const unsigned char *)text, len, (const unsigned char *)ad,
        strlen(ad), NULL, sealed, key);
    sodium_bin2base64(*out, b64_len, sealed, sealed_len, B64_VARIANT);
    td_free(sealed);
    wipe_json_text(text);
    return 0;
}

/* Decrypts a box into a JSON object (*out, owned). */
static int unbox(json_t **out, const unsigned char *key, const char *ad, const char *b64)
{
    size_t b64_len = strlen(b64), len = 0;
    unsigned char *sealed = td_malloc(b64_len * 3 / 4 + 4);
    unsigned char *plain = sealed ? td_malloc(b64_len * 3 / 4 + 4) : NULL;
    unsigned long long plain_len = 0;
    json_error_t err;
    int error = plain ? 0 : td_error__oom();
    *out = NULL;
    if (error == 0 && (sodium_base642bin(sealed, b64_len * 3 / 4 + 4, b64, b64_len, NULL, &len,
                                         NULL, B64_VARIANT) != 0 ||
                       len < NONCE_BYTES + TAG_BYTES ||
                       crypto_aead_xchacha20poly1305_ietf_decrypt(
                           plain, &plain_len, NULL, sealed + NONCE_BYTES, len - NONCE_BYTES,
                           (const unsigned char *)ad, strlen(ad), sealed, key) != 0))
        error = td_error__set(TD_ECORRUPT, "a sealed box does not open: changed or damaged");
    bool oom = false;
    if (error == 0 &&
        ((*out = td_json__loadb((const char *)plain, (size_t)plain_len, 0, &err, &oom)) == NULL ||
         !json_is_object(*out)))
        error =
            oom ? td_error__oom() : td_error__set(TD_ECORRUPT, "a sealed box holds no JSON object");
    if (error < 0) {
        json_decref(*out);
        *out = NULL;
    }
    if (plain)
        sodium_memzero(plain, (size_t)plain_len);
    td_free(plain);
    td_free(sealed);
    return error;
}

/* The fields of data that names lists, moved into plain. */
static int pick(json_t *data, const char *const *fields, json_t *plain, json_t *names)
{
    for (size_t i = 0; fields[i]; i++) {
        json_t *value = json_object_get(data, fields[i]);
        if (value && (json_object_set(plain, fields[i], value) < 0 ||
                      json_array_append_new(names, json_string(fields[i])) < 0))
            return td_error__oom();
    }
    return 0;
}

static int attach(json_t *data, const char *subject, json_t *names, const char *b64)
{
    size_t i;
    json_t *name;
    json_array_foreach(names, i, name) json_object_del(data, json_string_value(name));
    json_t *member = json_pack("{s:s,s:O,s:s}", "subject", subject, "fields", names, "box", b64);
    return member && json_object_set_new(data, SEALED_MEMBER, member) == 0 ? 0 : td_error__oom();
}

int td_keyring_seal(td_keyring *k, td_txn *txn, const char *subject, json_t *data,
                    const char *const *fields, unsigned flags)
{
    TD_REQUIRE(k && subject && data);
    unsigned char key[TD_SUBJECT_KEY_BYTES];
    td_subject_state state = TD_SUBJECT_NONE;
    char *ad = NULL, *b64 = NULL;
    if (k == NULL || !json_is_object(data) || fields == NULL)
        return td_error__set(TD_EINVAL, "td_keyring_seal: keyring, data or fields missing");
    if (json_object_get(data, SEALED_MEMBER))
        return td_error__set(TD_EEXISTS, "the data is sealed already");
    json_t *plain = json_object(), *names = json_array();
    int error = plain && names ? pick(data, fields, plain, names) : td_error__oom();
    if (error == 0 && json_array_size(names) > 0)
        error = td_keyring__subject_key(k, txn, subject, (flags & TD_SEAL_CREATE_KEY) != 0, key,
                                        &state);
    if (error < 0 || json_array_size(names) == 0)
        goto done;
    if (state == TD_SUBJECT_FORGOTTEN) {
        error = erase(data, names);
        goto done;
    }
    if (state == TD_SUBJECT_NONE) {
        error = td_error__set(TD_ENOTFOUND, "data subject '%.80s' has no key", subject);
        goto done;
    }
    error = (ad = associated(subject, names)) ? box(&b64, key, ad, plain) : td_error__oom();
    if (error == 0)
        error = attach(data, subject, names, b64);
done:
    sodium_memzero(key, sizeof key);
    td_free(b64);
    td_free(ad);
    json_decref(names);
    json_decref(plain);
    return error;
}

static int restore(json_t *data, const json_t *names, json_t *plain)
{
    size_t i;
    json_t *name;
    json_array_foreach(names, i, name)
    {
        json_t *value = json_object_get(plain, json_string_value(name));
        if (json_object_set(data, json_string_value(name), value ? value : json_null()) < 0)
            return td_error__oom();
    }
    json_object_del(data, SEALED_MEMBER);
    return 0;
}

static bool well_formed(const json_t *names)
{
    size_t i;
    json_t *name;
    json_array_foreach(names, i, name) if (!json_is_string(name)) return false;
    return json_array_size(names) > 0;
}

int td_keyring_open(td_keyring *k, td_txn *txn, json_t *data)
{
    TD_REQUIRE(k && data);
    unsigned char key[TD_SUBJECT_KEY_BYTES];
    td_subject_state state = TD_SUBJECT_NONE;
    json_t *sealed = json_object_get(data, SEALED_MEMBER), *plain = NULL;
    if (k == NULL || !json_is_object(data))
        return td_error__set(TD_EINVAL, "td_keyring_open: keyring or data missing");
    if (sealed == NULL || json_is_null(sealed))
        return 0;
    const char *subject = json_string_value(json_object_get(sealed, "subject"));
    const char *b64 = json_string_value(json_object_get(sealed, "box"));
    json_t *names = json_incref(json_object_get(sealed, "fields"));
    char *ad = NULL;
    int error =
        subject && b64 && json_is_array(names) && well_formed(names)
            ? td_keyring__subject_key(k, txn, subject, false, key, &state)
            : td_error__set(TD_ECORRUPT, "a sealed member lacks its subject, fields or box");
    if (error == 0 && state != TD_SUBJECT_KEY) /* forgotten, or its key is gone */
        error = erase(data, names);
    else if (error == 0 && (error = (ad = associated(subject, names)) ? unbox(&plain, key, ad, b64)
                                                                      : td_error__oom()) == 0)
        error = restore(data, names, plain);
    sodium_memzero(key, sizeof key);
    td_free(ad);
    json_decref(plain);
    json_decref(names);
    return error;
}
