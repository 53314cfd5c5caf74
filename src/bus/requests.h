/*
 * requests.h: the subscription's side of the dead-letter queue (internal;
 * requests.c). Owns no state of its own: it blocks streams and queues
 * redeliveries through the scheduler (scheduler.h), taking the
 * subscription's lock for each step.
 *
 * restore: at start, on the control thread, no reader or lane running.
 * process: on the reader thread, every REQUESTS_EVERY_US (reader.c); it
 * claims a stream (busy) while it carries out a request on it, so no lane
 * parks an event behind an entry being retried.
 */
#ifndef TD_BUS_REQUESTS_H
#define TD_BUS_REQUESTS_H

#include "tidings/subscription.h"

int td_requests__restore(td_subscription *sub);
int td_requests__process(td_subscription *sub);

#endif
