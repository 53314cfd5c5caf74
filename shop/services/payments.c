/*
 * payments.c (shop): the simulated payment provider (see payments.h). An
 * outcome follows from the token alone, so asking again with a key gives the
 * same answer; only "tok_flaky" needs memory: it counts attempts per
 * idempotency key, behind a lock, as the payment service calls from several
 * lanes. (It used to count every key, in a list searched from the start on
 * each charge: linear in all the payments since start.)
 */
#include "services/payments.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct key_state {
    char key[64];
    int attempts;
    struct key_state *next;
} key_state;

typedef struct simulated {
    pthread_mutex_t lock;
    key_state *keys;
} simulated;

/* How many times key has been tried, counting this one. */
static int attempt(simulated *sim, const char *key)
{
    pthread_mutex_lock(&sim->lock);
    key_state *k = sim->keys;
    while (k && strcmp(k->key, key) != 0)
        k = k->next;
    if (k == NULL && (k = calloc(1, sizeof *k)) != NULL) {
        snprintf(k->key, sizeof k->key, "%s", key);
        k->next = sim->keys;
        sim->keys = k;
    }
    int n = k ? ++k->attempts : 1;
    pthread_mutex_unlock(&sim->lock);
    return n;
}

static int charge(void *self, const char *key, int64_t amount, const char *currency,
                  const char *method, const char *token, shop_payment_outcome *outcome,
                  char *reason, size_t reason_size)
{
    (void)currency;
    (void)method;
    *outcome = SHOP_PAYMENT_APPROVED;
    reason[0] = '\0';
    if (amount <= 0) {
        *outcome = SHOP_PAYMENT_DECLINED;
        snprintf(reason, reason_size, "invalid_amount");
    } else if (strcmp(token, "tok_decline") == 0) {
        *outcome = SHOP_PAYMENT_DECLINED;
        snprintf(reason, reason_size, "card_declined");
    } else if (strcmp(token, "tok_timeout") == 0) {
        *outcome = SHOP_PAYMENT_NO_ANSWER;
    } else if (strcmp(token, "tok_flaky") == 0 && attempt(self, key) <= 2) {
        return TD_EIO; /* the provider's gateway is having a moment */
    } else if (strcmp(token, "tok_slow") == 0) {
        struct timespec late = {SHOP_PAYMENT_SLOW_MS / 1000,
                                (SHOP_PAYMENT_SLOW_MS % 1000) * 1000000L};
        nanosleep(&late, NULL); /* approves, but only after a while */
    }
    return 0;
}

static int refund(void *self, const char *key, int64_t amount, const char *currency)
{
    (void)self;
    (void)key;
    (void)currency;
    (void)amount;
    return 0;
}

int shop_simulated_provider_new(shop_payment_provider *out)
{
    simulated *sim = calloc(1, sizeof *sim);
    if (sim == NULL)
        return TD_ENOMEM;
    pthread_mutex_init(&sim->lock, NULL);
    *out = (shop_payment_provider){charge, refund, sim};
    return 0;
}

void shop_simulated_provider_free(shop_payment_provider *provider)
{
    simulated *sim = provider->self;
    if (sim == NULL)
        return;
    for (key_state *k = sim->keys, *next; k; k = next) {
        next = k->next;
        free(k);
    }
    pthread_mutex_destroy(&sim->lock);
    free(sim);
    provider->self = NULL;
}
