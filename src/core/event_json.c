/*
 * event_json.c: the envelope's JSON form (DESIGN.md), both ways.
 *
 * Encoding embeds data and metadata as JSON values, not strings. Decoding is
 * strict: every known field has one type, unknown fields are refused, so a
 * typo in an import file is an error instead of a silently dropped field.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "tidings/event.h"
#include "tidings/memory.h"

static int set_new(json_t *obj, const char *key, json_t *value)
{
    if (value == NULL || json_object_set_new(obj, key, value) < 0)
        return td_error__oom();
    return 0;
}

static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static int parse_payload(json_t **out, const char *what, const char *text, size_t len)
{
    json_error_t err;
    if (text == NULL) {
        *out = json_object();
        return *out ? 0 : td_error__oom();
    }
    bool oom;
    *out = td_json__loadb(text, td_json__length(text, len), 0, &err, &oom);
    if (oom)
        return td_error__oom();
    if (*out == NULL)
        return td_error__set(TD_ECORRUPT, "event %s is not JSON: %s", what, err.text);
    return 0;
}

static int add_ids(json_t *obj, const td_event *ev)
{
    char id[TD_UUID_STR_LEN + 1];
    td_uuid_format(id, &ev->id);
    int error = set_new(obj, "position", json_integer(ev->position));
    if (error == 0)
        error = set_new(obj, "id", json_string(id));
    if (error == 0)
        error = set_new(obj, "stream", string_or_null(ev->stream));
    if (error == 0)
        error = set_new(obj, "version", json_integer(ev->version));
    if (error == 0)
        error = set_new(obj, "type", string_or_null(ev->type));
    if (error == 0)
        error = set_new(obj, "schema_version", json_integer(ev->schema_version));
    return error;
}

static int add_context(json_t *obj, const td_event *ev)
{
    char when[TD_TIME_STR_LEN + 1];
    int error = td_time_format(when, ev->occurred_at);
    if (error == 0)
        error = set_new(obj, "kind", json_string(td_event_kind_name(ev->kind)));
    if (error == 0)
        error = set_new(obj, "source", string_or_null(ev->source));
    if (error == 0)
        error = set_new(obj, "occurred_at", json_string(when));
    if (error == 0)
        error = set_new(obj, "correlation_id", string_or_null(ev->correlation_id));
    if (error == 0)
        error = set_new(obj, "causation_id", string_or_null(ev->causation_id));
    if (error == 0)
        error = set_new(obj, "traceparent",
                        string_or_null(ev->traceparent[0] ? ev->traceparent : NULL));
    return error;
}

int td_event_to_json(json_t **out, const td_event *event)
{
    TD_REQUIRE(out && event);
    json_t *metadata = NULL, *data = NULL;
    json_t *obj = json_object();
    int error = obj ? 0 : td_error__oom();
    if (error == 0)
        error = add_ids(obj, event);
    if (error == 0)
        error = add_context(obj, event);
    if (error == 0 &&
        (error = parse_payload(&metadata, "metadata", event->metadata, event->metadata_len)) == 0)
        error = set_new(obj, "metadata", metadata);
    if (error == 0 && (error = parse_payload(&data, "data", event->data, event->data_len)) == 0)
        error = set_new(obj, "data", data);
    if (error < 0) {
        json_decref(obj);
        return error;
    }
    *out = obj;
    return 0;
}

int td_event_to_text(char **out, size_t *len, const td_event *event)
{
    TD_REQUIRE(out && event);
    json_t *json = NULL;
    int error = td_event_to_json(&json, event);
    return error < 0 ? error : td_json__dump_steal(out, len, json);
}

/* ---- decoding ------------------------------------------------------------ */

typedef struct decoded {
    td_event ev;
    char *metadata; /* from json_dumps: free with td_json__free */
    char *data;
} decoded;

static int field_error(const char *key, const char *expected)
{
    return td_error__set(TD_EINVAL, "event field '%s' must be %s", key, expected);
}

static int get_int(const json_t *v, const char *key, int64_t min, int64_t max, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return field_error(key, "an integer in range");
    *out = json_integer_value(v);
    return 0;
}

static int get_str(const json_t *v, const char *key, bool nullable, const char **out)
{
    if (nullable && json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return field_error(key, nullable ? "a string or null" : "a string");
    *out = json_string_value(v);
    return 0;
}

static int dump_object(const json_t *v, const char *key, char **out)
{
    if (!json_is_object(v))
        return field_error(key, "a JSON object");
    *out = json_dumps(v, JSON_COMPACT);
    return *out ? 0 : td_error__oom();
}

static int decode_envelope(decoded *d, const char *key, const json_t *v)
{
    td_event *ev = &d->ev;
    int64_t n = 0;
    const char *s = NULL;
    int error;

    if (strcmp(key, "position") == 0) {
        error = get_int(v, key, 0, INT64_MAX, &ev->position);
    } else if (strcmp(key, "version") == 0) {
        error = get_int(v, key, 0, INT64_MAX, &ev->version);
    } else if (strcmp(key, "schema_version") == 0) {
        if ((error = get_int(v, key, 1, INT32_MAX, &n)) == 0)
            ev->schema_version = (int32_t)n;
    } else if (strcmp(key, "id") == 0) {
        if ((error = get_str(v, key, false, &s)) == 0)
            error = td_uuid_parse(&ev->id, s);
    } else if (strcmp(key, "occurred_at") == 0) {
        if ((error = get_str(v, key, false, &s)) == 0)
            error = td_time_parse(&ev->occurred_at, s);
    } else if (strcmp(key, "kind") == 0) {
        if ((error = get_str(v, key, false, &s)) == 0)
            error = td_event_kind_parse(&ev->kind, s);
    } else if (strcmp(key, "traceparent") == 0) {
        if ((error = get_str(v, key, true, &s)) == 0 && s)
            if ((error = td_traceparent_check(s)) == 0)
                memcpy(ev->traceparent, s, TD_TRACEPARENT_LEN + 1);
    } else if (strcmp(key, "stream") == 0) {
        error = get_str(v, key, false, &ev->stream);
    } else if (strcmp(key, "type") == 0) {
        error = get_str(v, key, false, &ev->type);
    } else if (strcmp(key, "source") == 0) {
        error = get_str(v, key, true, &ev->source);
    } else if (strcmp(key, "correlation_id") == 0) {
        error = get_str(v, key, true, &ev->correlation_id);
    } else if (strcmp(key, "causation_id") == 0) {
        error = get_str(v, key, true, &ev->causation_id);
    } else if (strcmp(key, "metadata") == 0) {
        error = dump_object(v, key, &d->metadata);
    } else if (strcmp(key, "data") == 0) {
        error = dump_object(v, key, &d->data);
    } else {
        error = td_error__set(TD_EINVAL, "unknown event field '%.64s'", key);
    }
    return error;
}

static int check_decoded(const td_event *ev)
{
    int error = td_stream_check(ev->stream);
    if (error == 0)
        error = td_type_check(ev->type);
    if (error == 0 && ev->source)
        error = td_source_check(ev->source);
    if (error == 0 && ev->correlation_id)
        error = td_ref_id_check(ev->correlation_id);
    if (error == 0 && ev->causation_id)
        error = td_ref_id_check(ev->causation_id);
    if (error == 0 && ev->data == NULL)
        error = td_error__set(TD_EINVAL, "event field 'data' is missing");
    return error;
}

int td_event_from_json(td_event **out, const json_t *json)
{
    TD_REQUIRE(out);
    decoded d = {0};
    const char *key;
    json_t *value;
    int error = 0;

    if (!json_is_object(json))
        return td_error__set(TD_EINVAL, "an event must be a JSON object");
    json_object_foreach((json_t *)json, key, value)
    {
        if ((error = decode_envelope(&d, key, value)) < 0)
            goto done;
    }
    if (d.ev.schema_version == 0) /* absent: 1, as when appending */
        d.ev.schema_version = 1;
    d.ev.metadata = d.metadata;
    d.ev.data = d.data;
    if ((error = check_decoded(&d.ev)) == 0)
        error = td_event_dup(out, &d.ev);
done:
    td_json__free(d.metadata);
    td_json__free(d.data);
    return error;
}
