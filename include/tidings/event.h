/*
 * event.h: the event envelope, its names and its JSON form.
 *
 * An event is an immutable fact: an envelope (id, stream, version, position,
 * type, schema version, kind, source, time, correlation, causation, trace
 * context, metadata) around a JSON object of data. See DESIGN.md.
 *
 * Ownership: a td_event is a view. Its pointer fields are borrowed from
 * whoever filled it in: the caller when appending, the store while a read
 * callback runs (valid until the callback returns). td_event_dup() and
 * td_event_from_json() return an owned copy in one allocation, released with
 * td_event_free(); the copy's pointers point into that same block.
 * Fixed-size fields (id, traceparent) are plain values.
 *
 * Names: a stream is "<category>-<id>": the category is 1..64 characters of
 * [A-Za-z0-9_] starting with a letter, the id 1..128 characters of
 * [A-Za-z0-9_.:-]. The category names the aggregate type ("order"); the
 * stream's events belong to it. Event types are 1..128 characters of
 * [A-Za-z0-9_.] starting with a letter; sources 1..64 of [A-Za-z0-9_.-].
 * Correlation and causation ids are 1..128 printable ASCII characters.
 */
#ifndef TIDINGS_EVENT_H
#define TIDINGS_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "timestamp.h"
#include "uuid.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum td_event_kind {
    TD_KIND_DOMAIN = 0,      /* internal fact of a bounded context */
    TD_KIND_INTEGRATION = 1, /* message for other services */
} td_event_kind;

#define TD_TRACEPARENT_LEN 55  /* "00-" trace-id(32) "-" parent-id(16) "-" flags(2) */
#define TD_STREAM_MAX      193 /* category(64) + '-' + id(128) */
#define TD_CATEGORY_MAX    64
#define TD_TYPE_MAX        128
#define TD_SOURCE_MAX      64
#define TD_REF_ID_MAX      128 /* correlation and causation ids */

typedef struct td_event {
    int64_t position;                         /* global position; set by the store */
    td_uuid id;                               /* nil when appending: the store makes a UUIDv7 */
    const char *stream;                       /* set by the store from the append's stream */
    int64_t version;                          /* 1-based position in the stream; set by the store */
    const char *type;                         /* e.g. "OrderCreated"; required */
    int32_t schema_version;                   /* >= 1; 0 when appending means 1 */
    td_event_kind kind;                       /* domain or integration */
    const char *source;                       /* bounded context; NULL: the stream's category */
    td_time occurred_at;                      /* 0 when appending: now */
    const char *correlation_id;               /* NULL: none */
    const char *causation_id;                 /* NULL: none */
    char traceparent[TD_TRACEPARENT_LEN + 1]; /* W3C; "" when appending: new trace */
    const char *metadata;                     /* JSON object text; NULL: {} */
    size_t metadata_len;                      /* 0: strlen(metadata) */
    const char *data;                         /* JSON object text; required */
    size_t data_len;                          /* 0: strlen(data) */
    uint8_t hash[32]; /* the audit chain's link (audit.h); set by the store */
} td_event;

/* Read and scan callbacks get each event borrowed for the call only. Return 0
 * to go on, a positive value to stop early (the read then returns 0), or a
 * negative TD_E… code to fail (the read returns it unchanged). */
typedef int (*td_event_fn)(const td_event *event, void *payload);

/* Zeroes an event: every field "unset". */
void td_event_init(td_event *event);

/* An owned deep copy. Caller owns *out; free with td_event_free. */
int td_event_dup(td_event **out, const td_event *event);

/* Frees an event made by td_event_dup or td_event_from_json. Accepts NULL. */
void td_event_free(td_event *event);

/* The JSON form of DESIGN.md. Caller owns *out (json_decref). TD_ECORRUPT if
 * the stored data or metadata are not JSON. */
int td_event_to_json(json_t **out, const td_event *event);

/* The JSON form as one compact line without a newline.
 * Caller owns *out; free with td_free. */
int td_event_to_text(char **out, size_t *len, const td_event *event);

/* Reads the JSON form, checking every field's type and shape. Fields the
 * store assigns (position, id, version, occurred_at, traceparent) may be
 * absent; so may schema_version (then 1). Caller owns *out; free with td_event_free. */
int td_event_from_json(td_event **out, const json_t *json);

/* Parses the event's data. Caller owns *out (json_decref). */
int td_event_data(json_t **out, const td_event *event);

/* Name and field checks; TD_EINVAL with a message naming the problem. */
int td_stream_check(const char *stream);
int td_category_check(const char *category); /* also the rule for document collections */
int td_type_check(const char *type);
int td_source_check(const char *source);
int td_ref_id_check(const char *id);
int td_traceparent_check(const char *traceparent);

/* Copies the category of a valid stream name ("order" of "order-42") into buf.
 * TD_EINVAL if the name is invalid. */
int td_stream_category(char buf[TD_CATEGORY_MAX + 1], const char *stream);

const char *td_event_kind_name(td_event_kind kind);
int td_event_kind_parse(td_event_kind *out, const char *name);

#ifdef __cplusplus
}
#endif
#endif
