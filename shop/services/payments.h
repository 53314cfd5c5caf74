/*
 * payments.h (shop): the payment provider interface, and the simulated
 * provider the shop uses by default.
 *
 * The simulated provider decides by card token: "tok_decline" declines,
 * "tok_timeout" never answers, "tok_flaky" fails with a transient error on
 * its first two attempts and then succeeds, "tok_slow" succeeds after
 * SHOP_PAYMENT_SLOW_MS, anything else succeeds at once. The outcome
 * follows from the token (and, for "tok_flaky", the attempts counted per
 * idempotency key), so asking again gives the same answer and never charges
 * twice.
 */
#ifndef SHOP_SERVICES_PAYMENTS_H
#define SHOP_SERVICES_PAYMENTS_H

#include "shop.h"

#define SHOP_PAYMENT_SLOW_MS 1000 /* how long "tok_slow" takes */

typedef enum shop_payment_outcome {
    SHOP_PAYMENT_APPROVED,
    SHOP_PAYMENT_DECLINED,
    SHOP_PAYMENT_NO_ANSWER,
} shop_payment_outcome;

typedef struct shop_payment_provider {
    /* 0 with *outcome (and a reason for a decline), or a negative code for a
     * transient failure worth retrying. */
    int (*charge)(void *self, const char *idempotency_key, int64_t amount, const char *currency,
                  const char *method, const char *token, shop_payment_outcome *outcome,
                  char *reason, size_t reason_size);
    int (*refund)(void *self, const char *idempotency_key, int64_t amount, const char *currency);
    void *self;
} shop_payment_provider;

/* The simulated provider. Free with shop_simulated_provider_free. */
int shop_simulated_provider_new(shop_payment_provider *out);
void shop_simulated_provider_free(shop_payment_provider *provider);

#endif
