/*
 * log_int.h: emitting log records inside the library (internal).
 */
#ifndef TD_CORE_LOG_INT_H
#define TD_CORE_LOG_INT_H

#include <stdbool.h>

#include "tidings/event.h"
#include "tidings/log.h"

bool td_log__enabled(td_log_level level);

/* Formats and hands a record to the sink if level is enabled. subscription
 * and event may be NULL. */
void td_log__emit(td_log_level level, const char *subscription, const td_event *event,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
