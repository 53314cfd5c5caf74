/*
 * intake.c: received messages into the consumer's store, once.
 *
 * A batch of messages is appended in one unit of work, each under a
 * savepoint of its own (td_txn_try), in delivery order:
 *
 *   readable, a bound type, a schema this queue reads
 *       -> appended as the event it carries: same id, type, schema,
 *          source, stream name, time, correlation, causation, trace,
 *          metadata; data = the body
 *   its id stored already (a redelivery, a republished run)
 *       -> nothing: the unique event id refuses it, the savepoint undoes it
 *       (the consumer's decode, when given, may change the data first, in
 *       the message's savepoint, or refuse the message)
 *   anything else (no or bad message id, headers missing or of the wrong
 *   kind, a body that is not a JSON object, a type not bound, a schema
 *   too new: above the type's max_schema_version, or when that is 0,
 *   above the schema the store's upcasters declare for it)
 *       -> a tidings.Rejected event in stream rejected-<queue> saying why,
 *          with the message's id when it has a usable one (so a
 *          redelivered bad message is parked once); the consumer's
 *          "<queue>.intake" subscription parks it in the dead-letter queue
 *
 * The store's own failures (I/O, a full disk, out of memory) fail the whole
 * unit: nothing is acknowledged and the broker delivers the batch again.
 */
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "core/alloc.h"
#include "core/error.h"

#define BODY_KEPT_MAX (64 * 1024) /* of a rejected message's body, in its event */

typedef struct intake_ctx {
    const td_intake_rules *rules;
    amqp_envelope_t *env;
    td_event ev;
    char id_text[TD_UUID_STR_LEN + 1];
    bool id_ok;
    char type[TD_TYPE_MAX + 1], source[TD_SOURCE_MAX + 1], stream[TD_STREAM_MAX + 1];
    char correlation[TD_REF_ID_MAX + 1], causation[TD_REF_ID_MAX + 1];
    char *metadata, *data;
    char why[256];
} intake_ctx;

static const amqp_field_value_t *header(const amqp_table_t *t, const char *key)
{
    size_t len = strlen(key);
    for (int i = 0; i < t->num_entries; i++)
        if (t->entries[i].key.len == len && memcmp(t->entries[i].key.bytes, key, len) == 0)
            return &t->entries[i].value;
    return NULL;
}

/* A text header into buf: 0, 1 when absent or empty, TD_EINVAL otherwise. */
static int text_header(char *buf, size_t size, const amqp_table_t *t, const char *key)
{
    const amqp_field_value_t *v = header(t, key);
    buf[0] = '\0';
    if (v == NULL)
        return 1;
    if (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES)
        return td_error__set(TD_EINVAL, "header '%s' is not text", key);
    if (v->value.bytes.len == 0)
        return 1;
    if (v->value.bytes.len >= size || memchr(v->value.bytes.bytes, 0, v->value.bytes.len))
        return td_error__set(TD_EINVAL, "header '%s' is too long or holds a NUL", key);
    memcpy(buf, v->value.bytes.bytes, v->value.bytes.len);
    buf[v->value.bytes.len] = '\0';
    return buf[0] ? 0 : 1;
}

static int int_header(int64_t *out, const amqp_table_t *t, const char *key)
{
    const amqp_field_value_t *v = header(t, key);
    if (v == NULL)
        return 1;
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        *out = v->value.i8;
        return 0;
    case AMQP_FIELD_KIND_U8:
        *out = v->value.u8;
        return 0;
    case AMQP_FIELD_KIND_I16:
        *out = v->value.i16;
        return 0;
    case AMQP_FIELD_KIND_U16:
        *out = v->value.u16;
        return 0;
    case AMQP_FIELD_KIND_I32:
        *out = v->value.i32;
        return 0;
    case AMQP_FIELD_KIND_U32:
        *out = v->value.u32;
        return 0;
    case AMQP_FIELD_KIND_I64:
        *out = v->value.i64;
        return 0;
    default:
        return td_error__set(TD_EINVAL, "header '%s' is not an integer", key);
    }
}

static char *copy_bytes(const void *bytes, size_t len)
{
    char *s = td_malloc(len + 1);
    if (s) {
        if (len)
            memcpy(s, bytes, len);
        s[len] = '\0';
    }
    return s;
}

static int read_id(intake_ctx *c)
{
    const amqp_basic_properties_t *p = &c->env->message.properties;
    if (!(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) || p->message_id.len != TD_UUID_STR_LEN)
        return td_error__set(TD_EINVAL, "the message has no event id as its message id");
    memcpy(c->id_text, p->message_id.bytes, TD_UUID_STR_LEN);
    c->id_text[TD_UUID_STR_LEN] = '\0';
    if (td_uuid_parse(&c->ev.id, c->id_text) < 0 || td_uuid_is_nil(&c->ev.id))
        return td_error__set(TD_EINVAL, "the message id '%s' is not an event id", c->id_text);
    c->id_ok = true;
    return 0;
}

static int check_type(intake_ctx *c, int64_t schema)
{
    for (size_t i = 0; i < c->rules->type_count; i++) {
        const td_consumer_type *t = &c->rules->types[i];
        if (strcmp(t->type, c->type) != 0)
            continue;
        int32_t limit = t->max_schema_version;
        if (limit == 0 && c->rules->upcasters) /* what the store's reader declares */
            limit = td_upcasters_current(c->rules->upcasters, c->type);
        if (limit > 0 && schema > limit)
            return td_error__set(TD_EINVAL, "%s at schema %lld is newer than the %d queue %s reads",
                                 c->type, (long long)schema, limit, c->rules->queue);
        return 0;
    }
    return td_error__set(TD_EINVAL, "queue %s does not take events of type %s", c->rules->queue,
                         c->type);
}

/* The event the message carries, into c->ev; TD_EINVAL with why if none. */
static int read_event(intake_ctx *c)
{
    const amqp_basic_properties_t *p = &c->env->message.properties;
    const amqp_table_t *h = &p->headers;
    int64_t schema = 1, occurred = 0;
    char traceparent[TD_TRACEPARENT_LEN + 2];
    int error = read_id(c);
    if (error == 0 && !(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        error = td_error__set(TD_EINVAL, "the message has no headers");
    if (error == 0 && (error = text_header(c->type, sizeof c->type, h, TD_HDR_TYPE)) == 1)
        error = td_error__set(TD_EINVAL, "the message has no '%s' header", TD_HDR_TYPE);
    if (error == 0 && (error = text_header(c->stream, sizeof c->stream, h, TD_HDR_STREAM)) == 1)
        error = td_error__set(TD_EINVAL, "the message has no '%s' header", TD_HDR_STREAM);
    if (error == 0 && int_header(&schema, h, TD_HDR_SCHEMA_VERSION) < 0)
        error = TD_EINVAL;
    if (error == 0 && (schema < 1 || schema > INT32_MAX))
        error = td_error__set(TD_EINVAL, "schema version %lld is out of range", (long long)schema);
    if (error == 0)
        error = check_type(c, schema);
    if (error == 0 && int_header(&occurred, h, TD_HDR_OCCURRED_AT) < 0)
        error = TD_EINVAL;
    if (error == 0 && text_header(c->source, sizeof c->source, h, TD_HDR_SOURCE) < 0)
        error = TD_EINVAL;
    if (error == 0 &&
        text_header(c->correlation, sizeof c->correlation, h, TD_HDR_CORRELATION_ID) < 0)
        error = TD_EINVAL;
    if (error == 0 && text_header(c->causation, sizeof c->causation, h, TD_HDR_CAUSATION_ID) < 0)
        error = TD_EINVAL;
    if (error == 0 && text_header(traceparent, sizeof traceparent, h, TD_HDR_TRACEPARENT) < 0)
        error = TD_EINVAL;
    if (error == 0 && strlen(traceparent) > TD_TRACEPARENT_LEN)
        error = td_error__set(TD_EINVAL, "header 'traceparent' is too long");
    if (error < 0)
        return error;
    const amqp_field_value_t *meta = header(h, TD_HDR_METADATA);
    if (meta && meta->kind != AMQP_FIELD_KIND_UTF8 && meta->kind != AMQP_FIELD_KIND_BYTES)
        return td_error__set(TD_EINVAL, "header 'metadata' is not text");
    if (meta && (c->metadata = copy_bytes(meta->value.bytes.bytes, meta->value.bytes.len)) == NULL)
        return td_error__oom();
    amqp_bytes_t body = c->env->message.body;
    if ((c->data = copy_bytes(body.bytes, body.len)) == NULL)
        return td_error__oom();
    if (memchr(c->data, 0, body.len))
        return td_error__set(TD_EINVAL, "the body holds a NUL byte");
    c->ev.type = c->type;
    c->ev.stream = c->stream;
    c->ev.schema_version = (int32_t)schema;
    c->ev.kind = TD_KIND_INTEGRATION;
    c->ev.source = c->source[0] ? c->source : NULL;
    c->ev.occurred_at = occurred > 0 ? occurred : 0;
    c->ev.correlation_id = c->correlation[0] ? c->correlation : NULL;
    c->ev.causation_id = c->causation[0] ? c->causation : NULL;
    memcpy(c->ev.traceparent, traceparent, sizeof c->ev.traceparent);
    c->ev.metadata = c->metadata;
    c->ev.data = c->data;
    c->ev.data_len = body.len ? body.len : 0;
    if (body.len == 0)
        return td_error__set(TD_EINVAL, "the body is empty");
    return 0;
}

/* The decode's failure, said as the decode's: with the reason a call it
 * made left (td_error_last), or that it gave none, never a stale one. */
static int decode_failed(const intake_ctx *c, int code)
{
    char why[200];
    snprintf(why, sizeof why, "%s", td_error_last());
    return td_error__set(code, "the consumer's decode %s event %s: %s",
                         code == TD_EINVAL ? "refused" : "failed on", c->id_text,
                         why[0] ? why : "it gave no reason");
}

static int append_event(td_txn *txn, void *payload)
{
    intake_ctx *c = payload;
    char *decoded = NULL;
    int error = 0;
    if (c->rules->decode) {
        td_error_clear(); /* what the decode leaves is its own */
        error = c->rules->decode(txn, &c->ev, &decoded, c->rules->decode_payload);
        if (error < 0)
            error = decode_failed(c, error);
    }
    if (error == 1 && decoded == NULL)
        error = td_error__set(TD_EINVAL, "the consumer's decode gave no data");
    if (error == 1) { /* what the store keeps instead of the body */
        td_event ev = c->ev;
        ev.data = decoded;
        ev.data_len = strlen(decoded);
        error = td_txn_append(txn, c->stream, TD_EXPECT_ANY, &ev, 1);
    } else if (error == 0) {
        error = td_txn_append(txn, c->stream, TD_EXPECT_ANY, &c->ev, 1);
    }
    free(decoded); /* malloc'd by decode */
    return error;
}

static json_t *rejected_data(const intake_ctx *c)
{
    const amqp_envelope_t *env = c->env;
    size_t kept = env->message.body.len < BODY_KEPT_MAX ? env->message.body.len : BODY_KEPT_MAX;
    json_t *body = kept ? json_stringn(env->message.body.bytes, kept) : json_string("");
    const char *key = env->routing_key.bytes ? (const char *)env->routing_key.bytes : "";
    return json_pack("{s:s, s:s, s:s%, s:s, s:b, s:o, s:I}", "reason", c->why, "queue",
                     c->rules->queue, "routing_key", key, (size_t)env->routing_key.len,
                     "message_id", c->id_ok ? c->id_text : "", "redelivered", (int)env->redelivered,
                     "body", body ? body : json_string("(not UTF-8 text)"), "body_bytes",
                     (json_int_t)env->message.body.len);
}

static int append_rejected(td_txn *txn, void *payload)
{
    intake_ctx *c = payload;
    char stream[TD_STREAM_MAX + 1];
    json_t *data = rejected_data(c);
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (text == NULL)
        return td_error__oom();
    td_event ev;
    td_event_init(&ev);
    if (c->id_ok)
        ev.id = c->ev.id;
    ev.type = TD_REJECTED_TYPE;
    ev.source = "broker";
    ev.data = text;
    snprintf(stream, sizeof stream, "%s-%s", TD_REJECTED_CATEGORY, c->rules->queue);
    int error = td_txn_append(txn, stream, TD_EXPECT_ANY, &ev, 1);
    free(text); /* jansson's */
    return error;
}

static bool store_failure(int code)
{
    return code != TD_EINVAL && code != TD_ETOOBIG && code != TD_EEXISTS;
}

/* One message; a negative return fails the unit (the store failed). */
static int take(td_txn *txn, const td_intake_rules *rules, amqp_envelope_t *env,
                td_intake_tally *tally)
{
    intake_ctx c;
    memset(&c, 0, sizeof c);
    td_event_init(&c.ev);
    c.rules = rules;
    c.env = env;
    tally->redelivered += env->redelivered ? 1 : 0;
    int error = read_event(&c);
    if (error == 0)
        error = td_txn_try(txn, append_event, &c);
    bool rejecting = error == TD_EINVAL || error == TD_ETOOBIG;
    if (rejecting) {
        snprintf(c.why, sizeof c.why, "%s", td_error_last());
        error = td_txn_try(txn, append_rejected, &c);
        tally->rejected += error == 0;
    } else if (error == 0) {
        tally->consumed++;
    }
    if (error == TD_EEXISTS) {
        tally->duplicates++;
        error = 0;
    }
    td_free(c.metadata);
    td_free(c.data);
    /* nothing is acknowledged that is not stored: a message that could be
     * neither appended nor parked fails the unit, whatever the code */
    return error < 0 && (rejecting || store_failure(error)) ? error : 0;
}

typedef struct batch_ctx {
    const td_intake_rules *rules;
    amqp_envelope_t *batch;
    size_t count;
    td_intake_tally tally;
} batch_ctx;

static int intake_unit(td_txn *txn, void *payload)
{
    batch_ctx *b = payload;
    int error = 0;
    memset(&b->tally, 0, sizeof b->tally);
    for (size_t i = 0; i < b->count && error == 0; i++)
        error = take(txn, b->rules, &b->batch[i], &b->tally);
    return error;
}

int td_broker__intake(td_store *store, const td_intake_rules *rules, amqp_envelope_t *batch,
                      size_t count, td_intake_tally *tally)
{
    batch_ctx b = {rules, batch, count, {0, 0, 0, 0}};
    int error = td_transact(store, intake_unit, &b);
    *tally = error == 0 ? b.tally : (td_intake_tally){0, 0, 0, 0};
    return error;
}

int td_broker__park_rejected(td_delivery *delivery, const td_event *event, void *payload)
{
    json_t *data = NULL;
    (void)payload;
    const char *reason = "unreadable";
    if (td_event_data(&data, event) == 0 && json_is_string(json_object_get(data, "reason")))
        reason = json_string_value(json_object_get(data, "reason"));
    int error = td_delivery_fail(delivery, TD_EPERMANENT, "%s", reason);
    json_decref(data);
    return error;
}
