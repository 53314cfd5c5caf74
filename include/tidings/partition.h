/*
 * partition.h: splitting a subscription's events into partitions, so that
 * several instances of a service share its work.
 *
 * A partitioned subscription is one partition of a named whole: with count
 * N > 1 and index K it takes only the events whose key hashes to K
 * (td_partition_of), and keeps everything durable (checkpoint, lease,
 * progress marks, retries, dead letters) under its own name,
 * "NAME.pKofN" (td_partition_name). Every event that fits the match goes to
 * exactly one partition, so the N partitions of a name together handle
 * each event once, and each may run in a different process: the lease of
 * each partition is taken on its own (subscription.h), and a balancer
 * (balance.h) spreads them over the live instances.
 *
 * The key decides what stays in order. By stream (the default), every
 * event of a stream goes to one partition: per-stream order holds as
 * without partitions. By correlation (the event's correlation id; events
 * without one go by stream), every event of one business process goes to
 * one partition, whatever its stream: what a saga needs, since one instance
 * must see all its events one at a time. Events of one stream with
 * different correlation ids may then go to different partitions, in order
 * within each. Sagas partition by the correlation id their definition
 * reads (saga.h).
 *
 * The count is a property of the name on a store: the first start of a
 * partitioned name records it (with the key), and a start with another
 * count or key, or unpartitioned, is refused (TD_EINVAL naming both). A
 * name that ran whole is split at that first partitioned start: each
 * partition goes on from the whole's checkpoint, with the whole's progress
 * marks of what lies past it, once the whole runs nowhere (TD_EBUSY) and
 * has no retries waiting, dead letters or replays of its own (TD_EINVAL:
 * they are the whole's; finish, retry or drop them first). The count
 * cannot change later.
 */
#ifndef TIDINGS_PARTITION_H
#define TIDINGS_PARTITION_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TD_PARTITIONS_MAX 256

typedef enum td_partition_by {
    TD_PARTITION_BY_STREAM = 0,      /* each stream in one partition */
    TD_PARTITION_BY_CORRELATION = 1, /* each correlation id in one partition */
} td_partition_by;

/* count 0 or 1: not partitioned (the whole of the name). */
typedef struct td_partition {
    unsigned count; /* 2..TD_PARTITIONS_MAX to partition */
    unsigned index; /* 0..count-1 */
    td_partition_by by;
} td_partition;

/* The partition (0..count-1) of a key: FNV-1a (64 bits) of its bytes,
 * modulo count. Stable across processes, hosts and versions. 0 for
 * count <= 1 or a NULL key. */
unsigned td_partition_of(const char *key, unsigned count);

/* Writes the name the partition keeps its state under, "NAME.pKofN" (or
 * NAME itself when not partitioned) into out. TD_EINVAL when it does not
 * fit in size or the partition is out of range. */
int td_partition_name(char *out, size_t size, const char *name, const td_partition *partition);

/* The reverse: whether name is a partition's ("NAME.pKofN", K < N,
 * 2 <= N <= TD_PARTITIONS_MAX, no leading zeros), with its whole name
 * (into base, size bytes) and index and count (by is not in the name:
 * TD_PARTITION_BY_STREAM). False, with base = name and partition {0},
 * for any other name (or one that does not fit in base). */
bool td_partition_parse(const char *name, char *base, size_t size, td_partition *partition);

/* How many partitions the name runs in on store (the record of its
 * first partitioned start): 0 when it has never run partitioned. */
typedef struct td_store td_store;
int td_partition_count(td_store *store, const char *name, unsigned *count);

#ifdef __cplusplus
}
#endif
#endif
