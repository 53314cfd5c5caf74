/*
 * message.c: an event as an AMQP message (the relay's side; the consumer
 * reads it back in intake.c).
 *
 * message id = event id, persistent, application/json, timestamp = the
 * event's time in seconds, and one header per envelope field (broker.h).
 * The body is the event's data as stored. Properties and headers point into
 * the event and the caller's buffers: nothing is allocated.
 */
#include <string.h>

#include "broker/broker_int.h"

static void text_entry(amqp_table_entry_t *e, const char *key, const char *value, size_t len)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes.bytes = (void *)(uintptr_t)value;
    e->value.value.bytes.len = value ? (len ? len : strlen(value)) : 0;
}

static void int_entry(amqp_table_entry_t *e, const char *key, int64_t value)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_I64;
    e->value.value.i64 = value;
}

void td_broker__message_props(amqp_basic_properties_t *props,
                              amqp_table_entry_t entries[TD_HDR_COUNT], const td_event *event,
                              char id_text[TD_UUID_STR_LEN + 1])
{
    size_t n = 0;
    td_uuid_format(id_text, &event->id);
    text_entry(&entries[n++], TD_HDR_TYPE, event->type, 0);
    int_entry(&entries[n++], TD_HDR_SCHEMA_VERSION, event->schema_version);
    text_entry(&entries[n++], TD_HDR_SOURCE, event->source, 0);
    text_entry(&entries[n++], TD_HDR_STREAM, event->stream, 0);
    int_entry(&entries[n++], TD_HDR_POSITION, event->position);
    int_entry(&entries[n++], TD_HDR_VERSION, event->version);
    text_entry(&entries[n++], TD_HDR_CORRELATION_ID, event->correlation_id, 0);
    text_entry(&entries[n++], TD_HDR_CAUSATION_ID, event->causation_id, 0);
    text_entry(&entries[n++], TD_HDR_TRACEPARENT, event->traceparent, 0);
    int_entry(&entries[n++], TD_HDR_OCCURRED_AT, event->occurred_at);
    text_entry(&entries[n++], TD_HDR_METADATA, event->metadata ? event->metadata : "{}",
               event->metadata ? event->metadata_len : 0);
    memset(props, 0, sizeof *props);
    props->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                    AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                    AMQP_BASIC_HEADERS_FLAG;
    if (event->correlation_id)
        props->_flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    props->content_type = amqp_cstring_bytes("application/json");
    props->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props->message_id = amqp_cstring_bytes(id_text);
    props->timestamp = (uint64_t)(event->occurred_at / 1000000);
    if (event->correlation_id)
        props->correlation_id = amqp_cstring_bytes(event->correlation_id);
    props->headers.num_entries = (int)n;
    props->headers.entries = entries;
}
