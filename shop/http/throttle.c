/*
 * throttle.c (shop http): token buckets keyed by text (a client address,
 * an account), in a table of fixed size.
 *
 * Each key has a bucket of `burst` tokens refilled at per_minute / 60 a
 * second; a request takes one, or learns how long until one is there. The
 * table holds TABLE_SLOTS buckets in open addressing, at most PROBE slots
 * from a key's hash, under one of STRIPES locks (the slot's group). When
 * a key finds no slot of its own, it takes the slot of the fullest bucket
 * among them: a full bucket is what a forgotten key would start with
 * anyway, so evicting it never lets anyone through early, and a client
 * that spreads over many keys pushes out only idle ones. Memory stays
 * bounded however many keys come, and keys are hashed with SipHash under a
 * random key, so nobody can aim many keys at one group of slots.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define TABLE_SLOTS 8192 /* a power of two */
#define STRIPES     64
#define PROBE       8

typedef struct bucket {
    uint64_t hash; /* 0: free */
    double tokens;
    int64_t at_us; /* when tokens was last brought up to date */
} bucket;

struct http_throttle {
    double rate_per_us, burst;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    pthread_mutex_t locks[STRIPES];
    bucket slots[TABLE_SLOTS];
};

int http_throttle_new(http_throttle **out, double per_minute, double burst)
{
    http_throttle *t = calloc(1, sizeof *t);
    if (t == NULL)
        return TD_ENOMEM;
    t->rate_per_us = per_minute / 60e6;
    t->burst = burst < 1 ? 1 : burst;
    crypto_shorthash_keygen(t->hash_key);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&t->locks[i], NULL);
    *out = t;
    return 0;
}

void http_throttle_free(http_throttle *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&t->locks[i]);
    free(t);
}

static double refilled(const http_throttle *t, const bucket *b, int64_t now)
{
    double tokens = b->tokens + (double)(now - b->at_us) * t->rate_per_us;
    return tokens > t->burst ? t->burst : tokens;
}

/* The key's bucket in the group of PROBE slots at group (lock held): its
 * own, else a free one, else the fullest one's, started afresh. */
static bucket *find(http_throttle *t, uint64_t hash, bucket *group, int64_t now)
{
    bucket *victim = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        bucket *b = &group[i];
        if (b->hash == hash)
            return b;
        if (victim && victim->hash == 0)
            continue; /* a free slot is taken first */
        if (victim == NULL || b->hash == 0 || refilled(t, b, now) > refilled(t, victim, now))
            victim = b;
    }
    victim->hash = hash;
    victim->tokens = t->burst;
    victim->at_us = now;
    return victim;
}

double http_throttle_take(http_throttle *t, const char *key)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t hash;
    crypto_shorthash(out, (const unsigned char *)key, strlen(key), t->hash_key);
    memcpy(&hash, out, sizeof hash);
    hash |= 1; /* never 0: that marks a free slot */
    size_t group = (size_t)(hash >> 20) % (TABLE_SLOTS / PROBE);
    pthread_mutex_t *lock = &t->locks[group % STRIPES];
    int64_t now = td_time_now();
    double wait = 0;
    pthread_mutex_lock(lock);
    bucket *b = find(t, hash, &t->slots[group * PROBE], now);
    b->tokens = refilled(t, b, now);
    b->at_us = now;
    if (b->tokens >= 1)
        b->tokens -= 1;
    else
        wait = (1 - b->tokens) / (t->rate_per_us * 1e6);
    pthread_mutex_unlock(lock);
    return wait;
}
