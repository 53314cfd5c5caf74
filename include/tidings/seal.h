/*
 * seal.h: personal data sealed per data subject, so that it can be erased
 * from an append-only log (crypto-shredding).
 *
 * A log that is never rewritten cannot forget a person, but it can make
 * their data unreadable. Each data subject (a customer, say) gets a key of
 * its own, and the personal fields of events and documents about them are
 * sealed with it (XChaCha20-Poly1305, libsodium). Forgetting the subject
 * destroys that key: from then on every copy of those fields, in every
 * event, snapshot, backup and export made since, reads as erased, while the
 * events themselves, their bytes, hashes and the audit chain stay exactly as
 * they were.
 *
 * Subject keys live in the store, each wrapped (encrypted) with a master key
 * that the application keeps outside it (a file of its own, mode 0600), so
 * the database alone reveals no personal data. The store remembers a check
 * value of the master key the first time a keyring is opened on it, and
 * refuses a different one afterwards.
 *
 * Sealed form. td_keyring_seal moves the named top-level fields of a JSON
 * object into one member the library owns:
 *
 *   {"user_id":"…", "_sealed":{"subject":"user-…","fields":["email","full_name"],
 *                              "box":"<base64url: nonce, ciphertext, tag>"}}
 *
 * td_keyring_open puts them back. When the subject has been forgotten, each
 * named field reads as null and the object gains "_erased": true. Field
 * names and the subject stay readable: they say what was sealed, not what
 * it said. Applications copy "_sealed" members as they are (into snapshots,
 * say) and open them where the data is shown or used.
 *
 * Keys are read from the store and unwrapped on first use, then kept in
 * memory (locked out of swap where allowed) for TD_KEYRING_CACHE_TTL_S, so
 * the data of a customer who is busy costs no document read per seal or
 * open. Forgetting a subject drops its key from this keyring's cache at
 * once; a subject forgotten through another process (or another keyring)
 * reads as erased here within TD_KEYRING_CACHE_TTL_S.
 *
 * Threads: a td_keyring may be shared by any threads once made; every
 * function is safe to call from any thread (see docs/threading.md). Calls
 * taking a td_txn run inside that unit of work, on the writer thread; with
 * txn NULL they read through the store's read connections.
 */
#ifndef TIDINGS_SEAL_H
#define TIDINGS_SEAL_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TD_MASTER_KEY_BYTES    32
#define TD_SUBJECT_MAX         200 /* a subject is 1..200 bytes of printable ASCII */
#define TD_LOOKUP_HEX_LEN      64  /* td_keyring_lookup's text, without its NUL */
#define TD_KEYRING_CACHE_TTL_S 10  /* an unwrapped key is kept this long */

typedef struct td_keyring td_keyring;

/* Reads a master key file: the key as 64 hexadecimal digits (a newline
 * may follow). Refused (TD_EINVAL) when the file may be read or written by
 * anyone but its owner; TD_ENOTFOUND when there is no file. */
int td_master_key_read(unsigned char out[TD_MASTER_KEY_BYTES], const char *path);

/* Makes a new random master key and writes it to a new file at path, mode
 * 0600, durably (the file and its folder synced). TD_EEXISTS if the file
 * exists: a key is never overwritten. */
int td_master_key_create(unsigned char out[TD_MASTER_KEY_BYTES], const char *path);

/* Whether the store holds the check value of a master key: true once a
 * keyring has been opened on it, so its personal data may be sealed. */
int td_keyring_in_use(td_store *store, bool *out);

/* A keyring for store under master (copied; the caller may wipe its copy).
 * The first keyring on a writable store records the master key's check
 * value; later ones must match it (TD_EINVAL: "the master key does not
 * match…"). Caller owns *out; free with td_keyring_free before the store. */
int td_keyring_new(td_keyring **out, td_store *store,
                   const unsigned char master[TD_MASTER_KEY_BYTES]);
/* Wipes the key material and frees. Accepts NULL. */
void td_keyring_free(td_keyring *keyring);

/* td_keyring_seal flags */
#define TD_SEAL_CREATE_KEY 1u /* give the subject a key if it has none (needs txn) */

/* Seals the named fields of data (an object, edited in place; fields it
 * lacks are passed over, and nothing changes when it has none of them)
 * under subject's key. fields: NULL-terminated. Returns 0 when sealed; 1
 * when the subject has been forgotten: the fields are then erased instead
 * (null, and "_erased": true), so their values never reach the store.
 * TD_ENOTFOUND when the subject has no key and TD_SEAL_CREATE_KEY was not
 * given; TD_EEXISTS when data is sealed already. */
int td_keyring_seal(td_keyring *keyring, td_txn *txn, const char *subject, json_t *data,
                    const char *const *fields, unsigned flags);

/* Opens data's "_sealed" member in place, if it has one: its fields come
 * back and the member goes. Returns 0 (opened, or nothing sealed), or 1
 * when the subject has been forgotten (fields null, "_erased": true).
 * TD_ECORRUPT when the box does not authenticate (changed or damaged). */
int td_keyring_open(td_keyring *keyring, td_txn *txn, json_t *data);

/* Erases the named fields of data in place as a forgotten subject's read
 * (null, and "_erased": true): for data written before it was sealed,
 * whose subject has since been forgotten. Fields data lacks are passed
 * over; returns 1 when it erased any, else 0. */
int td_keyring_erase(json_t *data, const char *const *fields);

/* The subject named in data's "_sealed" member, or NULL. Borrowed from data. */
const char *td_sealed_subject(const json_t *data);

/* Gives subject a key now, in the unit (TD_EEXISTS if it has one;
 * TD_ECONFLICT if it was forgotten: a forgotten subject gets no new key). */
int td_keyring_add_subject(td_keyring *keyring, td_txn *txn, const char *subject);

/* Forgets subject, in the unit: its key is destroyed and a tombstone kept,
 * so nothing is sealed for it again (td_keyring_seal erases instead).
 * Forgetting twice, or a subject that never had a key, is not an error. */
int td_keyring_forget(td_keyring *keyring, td_txn *txn, const char *subject);

/* Whether subject has been forgotten (txn NULL: read through the store). */
int td_keyring_forgotten(td_keyring *keyring, td_txn *txn, const char *subject, bool *out);

/* A keyed hash of text for lookups that must not store the text itself
 * (an index of e-mail addresses, say): 64 lowercase hex digits. The same
 * master key gives the same hash; normalise text first (case, spaces). */
void td_keyring_lookup(const td_keyring *keyring, const char *text,
                       char out[TD_LOOKUP_HEX_LEN + 1]);

#ifdef __cplusplus
}
#endif
#endif
