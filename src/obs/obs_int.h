/*
 * obs_int.h: what the observability files share (internal).
 */
#ifndef TD_OBS_INT_H
#define TD_OBS_INT_H

#include "tidings/metrics.h"

/* A collector whose payload the registry releases when it is freed. */
int td_metrics__add_collector(td_metrics *metrics, td_metrics_collect_fn fn, void *payload,
                              void (*release)(void *payload));

#endif
