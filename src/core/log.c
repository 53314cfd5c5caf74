/*
 * log.c: the log sink, the level, and the stderr JSON-lines sink.
 *
 * The sink and level are process-wide atomics, set at start-up. Emitting a
 * record below the level costs one atomic load; the message is formatted
 * only when a record will be delivered.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/log_int.h"

static _Atomic(td_log_fn) sink;
static _Atomic(void *) sink_payload;
static atomic_int level = TD_LOG_INFO;

static const char *const names[] = {"debug", "info", "warn", "error", "off"};

void td_log_set_sink(td_log_fn fn, void *payload)
{
    atomic_store(&sink_payload, payload);
    atomic_store(&sink, fn);
}

void td_log_set_level(td_log_level l)
{
    atomic_store(&level, (int)l);
}

td_log_level td_log_get_level(void)
{
    return (td_log_level)atomic_load(&level);
}

const char *td_log_level_name(td_log_level l)
{
    return l >= TD_LOG_DEBUG && l <= TD_LOG_OFF ? names[l] : "unknown";
}

int td_log_level_parse(td_log_level *out, const char *name)
{
    for (int i = 0; name && i <= TD_LOG_OFF; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (td_log_level)i;
            return 0;
        }
    return td_error__set(TD_EINVAL,
                         "unknown log level '%.20s': expected debug, info, warn, "
                         "error or off",
                         name ? name : "");
}

bool td_log__enabled(td_log_level l)
{
    return atomic_load(&sink) != NULL && (int)l >= atomic_load(&level);
}

void td_log__emit(td_log_level l, const char *subscription, const td_event *event, const char *fmt,
                  ...)
{
    char message[512], event_id[TD_UUID_STR_LEN + 1];
    td_log_fn fn = atomic_load(&sink);
    if (fn == NULL || (int)l < atomic_load(&level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (event)
        td_uuid_format(event_id, &event->id);
    td_log_record r = {l,
                       td_time_now(),
                       message,
                       subscription,
                       event ? event_id : NULL,
                       event ? event->correlation_id : NULL};
    fn(&r, atomic_load(&sink_payload));
}

void td_log(td_log_level l, const char *subscription, const char *fmt, ...)
{
    char message[512];
    td_log_fn fn = atomic_load(&sink);
    if (fn == NULL || (int)l < atomic_load(&level) || fmt == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    td_log_record r = {l, td_time_now(), message, subscription, NULL, NULL};
    fn(&r, atomic_load(&sink_payload));
}

void td_log_stderr(const td_log_record *r, void *payload)
{
    char when[TD_TIME_STR_LEN + 1];
    (void)payload;
    if (td_time_format(when, r->time) < 0)
        when[0] = '\0';
    json_t *line = json_pack("{s:s,s:s,s:s}", "time", when, "level", td_log_level_name(r->level),
                             "message", r->message);
    if (line == NULL)
        return;
    if (r->subscription)
        json_object_set_new(line, "subscription", json_string(r->subscription));
    if (r->event_id)
        json_object_set_new(line, "event_id", json_string(r->event_id));
    if (r->correlation_id)
        json_object_set_new(line, "correlation_id", json_string(r->correlation_id));
    char *text = NULL;
    if (td_json__dump_steal(&text, NULL, line) == 0)
        fprintf(stderr, "%s\n", text); /* one write per line: lines never interleave */
    td_free(text);
}

int td_log_to_stderr(const char *name)
{
    td_log_level l = TD_LOG_INFO;
    const char *env = getenv("TIDINGS_LOG");
    if (name == NULL && env && env[0])
        name = env;
    if (name && td_log_level_parse(&l, name) < 0)
        return TD_EINVAL;
    td_log_set_level(l);
    td_log_set_sink(td_log_stderr, NULL);
    return 0;
}
