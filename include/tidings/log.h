/*
 * log.h: structured log records from libtidings.
 *
 * The library never writes anywhere by itself: it hands records (level,
 * time, message, and where known the subscription, event id and correlation
 * id) to a sink the application installs. td_log_stderr is a ready sink that
 * writes one JSON object per line to standard error; the tidings and shop
 * commands install it, with the level from --log-level or TIDINGS_LOG
 * (debug, info, warn, error, off; default info).
 *
 * Threads: set the sink and level once at start-up; records may then be
 * emitted from any thread, and a sink must be safe to call concurrently.
 */
#ifndef TIDINGS_LOG_H
#define TIDINGS_LOG_H

#include "timestamp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum td_log_level {
    TD_LOG_DEBUG = 0,
    TD_LOG_INFO = 1,
    TD_LOG_WARN = 2,
    TD_LOG_ERROR = 3,
    TD_LOG_OFF = 4,
} td_log_level;

typedef struct td_log_record {
    td_log_level level;
    td_time time;
    const char *message;
    const char *subscription;   /* or NULL */
    const char *event_id;       /* or NULL */
    const char *correlation_id; /* or NULL */
} td_log_record;

/* Called for each record at or above the level. The record is borrowed. */
typedef void (*td_log_fn)(const td_log_record *record, void *payload);

/* Installs a sink (NULL: records are dropped, the default) and a level. */
void td_log_set_sink(td_log_fn fn, void *payload);
void td_log_set_level(td_log_level level);
td_log_level td_log_get_level(void);

/* Parses "debug", "info", "warn", "error", "off"; TD_EINVAL otherwise. */
int td_log_level_parse(td_log_level *out, const char *name);
const char *td_log_level_name(td_log_level level);

/* A sink writing JSON lines to stderr:
 * {"time","level","message","subscription"?,"event_id"?,"correlation_id"?} */
void td_log_stderr(const td_log_record *record, void *payload);

/* Emits a record of the application's own through the same sink, if level
 * is enabled: a printf-style message, and where it concerns one the name
 * of a subscription or component (or NULL). Safe from any thread. */
void td_log(td_log_level level, const char *subscription, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Installs td_log_stderr with the level named by `level` if not NULL, else by
 * TIDINGS_LOG, else info. TD_EINVAL for an unknown level name. */
int td_log_to_stderr(const char *level);

#ifdef __cplusplus
}
#endif
#endif
