/*
 * json_cache.h: parsed JSON documents kept by the text they stand for
 * (internal).
 *
 * Code that loads a document, changes it and writes it back (a saga
 * instance) parses the same text it serialised a moment before, or that an
 * earlier load parsed. The cache hands the parsed object back instead, but
 * only when the text now stored is byte for byte the text the object was
 * kept with. So it never needs invalidating: a write rolled back, another
 * process, an operator's edit all leave other text in the store, and that
 * text is parsed as if there were no cache.
 *
 * Objects move, they are never shared: take hands the object to the caller
 * (it leaves its slot), keep hands one in with the text it now stands for,
 * and give_back returns an object taken and not changed. Copying instead
 * (json_deep_copy) cost nearly as much as the parse it saved.
 *
 * A fixed number of slots, direct-mapped by key: a busy key may push
 * another out, which costs that key one parse. Thread-safe; the lock is
 * never held while parsing.
 */
#ifndef TD_CORE_JSON_CACHE_H
#define TD_CORE_JSON_CACHE_H

#include <jansson.h>
#include <stddef.h>

typedef struct td_json_cache td_json_cache;

/* A cache of `slots` entries (0: 256). Caller owns *out; free with
 * td_json_cache_free. TD_ENOMEM. */
int td_json_cache_new(td_json_cache **out, size_t slots);

/* Frees the cache and the objects it holds. Accepts NULL. */
void td_json_cache_free(td_json_cache *cache);

/* key's document as stored now, text[0..len): the object kept for key if
 * it was kept with this very text (it leaves the cache), else the text
 * parsed (flags as for json_loadb). Caller owns the result (json_decref);
 * NULL if the text is not JSON (*error says why) or memory ran out. */
json_t *td_json_cache_take(td_json_cache *cache, const char *key, const char *text, size_t len,
                           size_t flags, json_error_t *error);

/* Keeps obj as what key's stored text, text[0..len), stands for; steals the
 * caller's reference (the text is copied). Nobody may change obj any more.
 * Out of memory, the object is just not kept. */
void td_json_cache_keep(td_json_cache *cache, const char *key, const char *text, size_t len,
                        json_t *obj);

/* Returns an object taken for key and not changed since, with the text it
 * was taken for; steals the caller's reference. Cheaper than keep when the
 * slot still holds that text (no copies); kept as new otherwise. */
void td_json_cache_give_back(td_json_cache *cache, const char *key, const char *text, size_t len,
                             json_t *obj);

/* Takes answered without a parse, and takes in all. */
void td_json_cache_stats(const td_json_cache *cache, unsigned long long *hits,
                         unsigned long long *takes);

#endif
