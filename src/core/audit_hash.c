/*
 * audit_hash.c: an event's link in the audit chain (see tidings/audit.h):
 * SHA-256 (libsodium) over the previous link and the event's canonical
 * bytes, netstrings of its fields in a fixed order.
 */
#include <sodium.h>
#include <string.h>

#include "core/internal.h"
#include "tidings/audit.h"

/* The canonical bytes are gathered in a buffer and hashed in few updates:
 * an event's small fields cost one update instead of three each. */
typedef struct canon {
    crypto_hash_sha256_state st;
    size_t len;
    unsigned char buf[512];
} canon;

static void put(canon *c, const void *bytes, size_t n)
{
    if (c->len + n > sizeof c->buf) {
        crypto_hash_sha256_update(&c->st, c->buf, c->len);
        c->len = 0;
    }
    if (n > sizeof c->buf) {
        crypto_hash_sha256_update(&c->st, bytes, n);
        return;
    }
    memcpy(c->buf + c->len, bytes, n);
    c->len += n;
}

/* v in decimal, as printf's %lld writes it. Returns the length. */
static size_t decimal(char out[24], long long v)
{
    char digits[24];
    size_t n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        digits[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        out[len++] = '-';
    while (n > 0)
        out[len++] = digits[--n];
    return len;
}

static void netstring(canon *c, const char *bytes, size_t len)
{
    char prefix[24];
    size_t n = decimal(prefix, (long long)len);
    prefix[n++] = ':';
    put(c, prefix, n);
    put(c, bytes ? bytes : "", len);
    put(c, ",", 1);
}

static void text(canon *c, const char *s)
{
    netstring(c, s, s ? strlen(s) : 0);
}

static void number(canon *c, long long v)
{
    char digits[24];
    netstring(c, digits, decimal(digits, v));
}

void td_event_hash(uint8_t out[TD_HASH_LEN], const uint8_t prev[TD_HASH_LEN], const td_event *ev)
{
    char id[TD_UUID_STR_LEN + 1];
    canon c;
    td_uuid_format(id, &ev->id);
    crypto_hash_sha256_init(&c.st);
    c.len = 0;
    put(&c, prev, TD_HASH_LEN);
    number(&c, ev->position);
    text(&c, id);
    text(&c, ev->stream);
    number(&c, ev->version);
    text(&c, ev->type);
    number(&c, ev->schema_version);
    text(&c, td_event_kind_name(ev->kind));
    text(&c, ev->source);
    number(&c, ev->occurred_at);
    text(&c, ev->correlation_id);
    text(&c, ev->causation_id);
    text(&c, ev->traceparent);
    netstring(&c, ev->metadata, td_json__length(ev->metadata, ev->metadata_len));
    netstring(&c, ev->data, td_json__length(ev->data, ev->data_len));
    crypto_hash_sha256_update(&c.st, c.buf, c.len);
    crypto_hash_sha256_final(&c.st, out);
}
