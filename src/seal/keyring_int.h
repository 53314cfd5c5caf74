/*
 * keyring_int.h: the keyring's parts shared by keyring.c (keys) and
 * sealed.c (the sealed JSON form). Internal.
 */
#ifndef TD_SEAL_KEYRING_INT_H
#define TD_SEAL_KEYRING_INT_H

#include <pthread.h>
#include <sodium.h>

#include "tidings/seal.h"

#define TD_SUBJECT_KEY_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES

/* Unwrapped subject keys kept for a while, so that sealing and opening
 * the same customer's data again costs no document read (keyring.c). */
#define TD_KEY_CACHE_SLOTS 1024 /* a power of two */

typedef struct td_cached_key {
    char subject[TD_SUBJECT_MAX + 1]; /* "" when free */
    unsigned char key[TD_SUBJECT_KEY_BYTES];
    td_time loaded_at;
} td_cached_key;

struct td_keyring {
    td_store *store;                          /* borrowed */
    unsigned char wrap[TD_SUBJECT_KEY_BYTES]; /* wraps subject keys (from the master key) */
    unsigned char lookup[crypto_generichash_KEYBYTES]; /* keys td_keyring_lookup */
    pthread_mutex_t cache_lock;
    td_cached_key *cache; /* TD_KEY_CACHE_SLOTS, direct-mapped by the subject's hash */
};

typedef enum td_subject_state {
    TD_SUBJECT_NONE,      /* never had a key */
    TD_SUBJECT_KEY,       /* has one: in key */
    TD_SUBJECT_FORGOTTEN, /* had one; destroyed */
} td_subject_state;

/* The subject's key into key (wipe it after use) and its state; with
 * create (and txn), a subject without a key gets one in the unit. */
int td_keyring__subject_key(td_keyring *keyring, td_txn *txn, const char *subject, bool create,
                            unsigned char key[TD_SUBJECT_KEY_BYTES], td_subject_state *state);

/* Checks a subject's name: 1..TD_SUBJECT_MAX printable ASCII bytes. */
int td_keyring__check_subject(const char *subject);

#endif
