/*
 * json_cache.c: parsed JSON documents kept by the text they stand for
 * (json_cache.h).
 *
 * A direct-mapped table: a key's slot is its FNV-1a hash modulo the slot
 * count. A slot holds the key, a copy of the text and the object. take
 * empties the slot when it answers (the object moves to the caller), so an
 * object is never in two hands; keep and give_back fill a slot again,
 * replacing whatever was there.
 */
#include <pthread.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/json_cache.h"

typedef struct slot {
    char *key;
    char *text;
    size_t len;
    json_t *obj;
} slot;

struct td_json_cache {
    pthread_mutex_t lock;
    slot *slots;
    size_t count;
    unsigned long long hits, takes;
};

int td_json_cache_new(td_json_cache **out, size_t slots)
{
    TD_REQUIRE(out);
    td_json_cache *c = td_calloc(1, sizeof *c);
    if (c)
        c->count = slots ? slots : 256;
    if (c && (c->slots = td_calloc(c->count, sizeof *c->slots)) == NULL) {
        td_free(c);
        c = NULL;
    }
    if (c == NULL)
        return td_error__oom();
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return 0;
}

static void empty(slot *s)
{
    td_free(s->key);
    td_free(s->text);
    json_decref(s->obj);
    memset(s, 0, sizeof *s);
}

void td_json_cache_free(td_json_cache *cache)
{
    if (cache == NULL)
        return;
    for (size_t i = 0; i < cache->count; i++)
        empty(&cache->slots[i]);
    td_free(cache->slots);
    pthread_mutex_destroy(&cache->lock);
    td_free(cache);
}

static slot *slot_of(const td_json_cache *cache, const char *key)
{
    return &cache->slots[td_hash__fnv1a(key) % cache->count];
}

static bool holds(const slot *s, const char *key, const char *text, size_t len)
{
    return s->key && s->len == len && strcmp(s->key, key) == 0 && memcmp(s->text, text, len) == 0;
}

json_t *td_json_cache_take(td_json_cache *cache, const char *key, const char *text, size_t len,
                           size_t flags, json_error_t *error)
{
    json_t *obj = NULL;
    pthread_mutex_lock(&cache->lock);
    slot *s = slot_of(cache, key);
    cache->takes++;
    if (s->obj && holds(s, key, text, len)) {
        obj = s->obj; /* the slot's reference moves to the caller */
        s->obj = NULL;
        cache->hits++;
    }
    pthread_mutex_unlock(&cache->lock);
    return obj ? obj : json_loadb(text, len, flags, error);
}

void td_json_cache_keep(td_json_cache *cache, const char *key, const char *text, size_t len,
                        json_t *obj)
{
    char *key_copy = td_strdup(key);
    char *text_copy = td_malloc(len ? len : 1);
    if (obj == NULL || key_copy == NULL || text_copy == NULL) {
        td_free(key_copy);
        td_free(text_copy);
        json_decref(obj);
        return;
    }
    memcpy(text_copy, text, len);
    pthread_mutex_lock(&cache->lock);
    slot *s = slot_of(cache, key);
    slot old = *s;
    *s = (slot){key_copy, text_copy, len, obj};
    pthread_mutex_unlock(&cache->lock);
    empty(&old); /* frees outside the lock */
}

void td_json_cache_give_back(td_json_cache *cache, const char *key, const char *text, size_t len,
                             json_t *obj)
{
    pthread_mutex_lock(&cache->lock);
    slot *s = slot_of(cache, key);
    if (obj && s->obj == NULL && holds(s, key, text, len)) {
        s->obj = obj; /* back where take found it, for the same text */
        obj = NULL;
    }
    pthread_mutex_unlock(&cache->lock);
    if (obj) /* the slot moved on: keep it as new */
        td_json_cache_keep(cache, key, text, len, obj);
}

void td_json_cache_stats(const td_json_cache *cache, unsigned long long *hits,
                         unsigned long long *takes)
{
    pthread_mutex_lock((pthread_mutex_t *)&cache->lock);
    *hits = cache->hits;
    *takes = cache->takes;
    pthread_mutex_unlock((pthread_mutex_t *)&cache->lock);
}
