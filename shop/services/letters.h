/*
 * letters.h (shop): what the shop's e-mails say to a customer (letters.c):
 * the subject and the body, as plain text and as HTML, written as a person
 * would write them: the order named by its reference, amounts with their
 * currency, why an order was cancelled in words, never an internal code.
 */
#ifndef SHOP_SERVICES_LETTERS_H
#define SHOP_SERVICES_LETTERS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* "5C2E-9A1F": the last 8 hex digits of the order's id, upper case. They
 * are the random part of a UUIDv7, so orders placed in the same minute
 * (or millisecond) have different references; the first digits of a
 * UUIDv7 are its time, the same for such orders. */
#define SHOP_ORDER_REF_LEN 9
void shop_order_reference(char out[SHOP_ORDER_REF_LEN + 1], const char *order_id);

/* "USD 1,234.56" for 123456 minor units (currency exponents as ISO 4217:
 * "JPY 1,234" for 1234). */
void shop_money(char *out, size_t size, int64_t amount, const char *currency);

typedef struct shop_letter {
    char subject[256];
    char *text; /* owned */
    char *html; /* owned */
} shop_letter;

/* The letter of kind (order_received, order_confirmed, order_cancelled)
 * to user (full_name) about the order (its state: items, total_amount,
 * currency, cancel_reason). Free with shop_letter_free. */
int shop_letter_write(shop_letter *out, const char *kind, const char *order_id, json_t *user,
                      json_t *order_state);
void shop_letter_free(shop_letter *letter);

#endif
