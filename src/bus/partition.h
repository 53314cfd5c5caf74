/*
 * partition.h: the partition part of a subscription (internal;
 * partition.c). It owns nothing that changes: the partition is fixed at
 * creation (opts.partition, base_name, partition_key), so any thread may
 * call these.
 */
#ifndef TD_BUS_PARTITION_H
#define TD_BUS_PARTITION_H

#include <stdbool.h>

#include "tidings/subscription.h"

#define TD_PARTITION_KEY_MAX 256

/* A key for an event other than its stream or correlation id (the saga's
 * correlation, read from the event's data): 0 with the key in out, or a
 * negative code when the event has none (it then goes by its stream). */
typedef int (*td_partition_key_fn)(const td_event *event, void *payload, char *out, size_t size);

/* Sets the key of a subscription made but not started (the saga's). */
void td_partition__set_key(td_subscription *sub, td_partition_key_fn fn);

/* TD_EINVAL naming what is wrong with p. */
int td_partition__check(const td_partition *p, const char *name);

/* Whether ev is the subscription's partition's (true when not partitioned). */
bool td_partition__owns(const td_subscription *sub, const td_event *ev);

/* The partition (0..count-1) ev belongs to (0 when not partitioned). */
unsigned td_partition__index(const td_subscription *sub, const td_event *ev);

/* Records the name's partitioning on the store at the first start, or
 * checks it against the record (TD_EINVAL on a mismatch). Control thread. */
int td_partition__claim(const td_subscription *sub);

/* split.c: in the unit that records the partitioning, moves the state of
 * the whole that ran (its checkpoint document: checkpoint) to the
 * partitions, or refuses (TD_EBUSY: it runs; TD_EINVAL: it has retries,
 * dead letters or replays of its own). */
typedef struct td_txn td_txn;
int td_partition__split(td_txn *txn, const td_subscription *sub, const char *checkpoint);

#endif
