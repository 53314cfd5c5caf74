/*
 * audit_hash.c: an event's link in the audit chain (see tidings/audit.h):
 * SHA-256 (libsodium) over the previous link and the event's canonical
 * bytes, netstrings of its fields in a fixed order.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "tidings/audit.h"

static void netstring(crypto_hash_sha256_state *st, const char *bytes, size_t len)
{
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "%zu:", len);
    crypto_hash_sha256_update(st, (const unsigned char *)prefix, (unsigned long long)n);
    crypto_hash_sha256_update(st, (const unsigned char *)(bytes ? bytes : ""), len);
    crypto_hash_sha256_update(st, (const unsigned char *)",", 1);
}

static void text(crypto_hash_sha256_state *st, const char *s)
{
    netstring(st, s, s ? strlen(s) : 0);
}

static void number(crypto_hash_sha256_state *st, long long v)
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%lld", v);
    netstring(st, digits, (size_t)n);
}

void td_event_hash(uint8_t out[TD_HASH_LEN], const uint8_t prev[TD_HASH_LEN], const td_event *ev)
{
    char id[TD_UUID_STR_LEN + 1];
    crypto_hash_sha256_state st;
    td_uuid_format(id, &ev->id);
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, prev, TD_HASH_LEN);
    number(&st, ev->position);
    text(&st, id);
    text(&st, ev->stream);
    number(&st, ev->version);
    text(&st, ev->type);
    number(&st, ev->schema_version);
    text(&st, td_event_kind_name(ev->kind));
    text(&st, ev->source);
    number(&st, ev->occurred_at);
    text(&st, ev->correlation_id);
    text(&st, ev->causation_id);
    text(&st, ev->traceparent);
    netstring(&st, ev->metadata, td_json__length(ev->metadata, ev->metadata_len));
    netstring(&st, ev->data, td_json__length(ev->data, ev->data_len));
    crypto_hash_sha256_final(&st, out);
}
