/*
 * tidings.h: everything public in libtidings.
 *
 * libtidings is an event-driven backbone for C services: a durable event
 * store with group commit and JSON documents (store.h), publishing and
 * inline handlers (bus.h), durable subscriptions with retries (subscription.h)
 * and their dead-letter queue (dlq.h), sagas (saga.h), event versioning
 * (upcast.h), the audit chain (audit.h), personal data
 * sealed per data subject (seal.h), metrics and tracing (metrics.h,
 * trace.h), the event envelope (event.h), UUIDv7 ids (uuid.h), timestamps
 * (timestamp.h), errors (errors.h), and integration events between
 * services over RabbitMQ (broker.h). Include this header, or the one
 * header of the concept you use.
 */
#ifndef TIDINGS_TIDINGS_H
#define TIDINGS_TIDINGS_H

#include "aggregate.h"
#include "audit.h"
#include "balance.h"
#include "broker.h"
#include "bus.h"
#include "dlq.h"
#include "errors.h"
#include "log.h"
#include "event.h"
#include "memory.h"
#include "metrics.h"
#include "partition.h"
#include "projection.h"
#include "saga.h"
#include "seal.h"
#include "store.h"
#include "subscription.h"
#include "timestamp.h"
#include "trace.h"
#include "upcast.h"
#include "uuid.h"

#define TD_VERSION_STRING "0.1.0"

#endif
