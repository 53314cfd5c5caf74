/*
 * partition.c: one partition of a subscription (partition.h): which events
 * are its own, the name its state is kept under, and the record of a
 * name's partitioning on the store.
 *
 * The record (tidings_partitions, under the whole name: {"count","by"}) is
 * written by the first start of a partitioned name and checked by every
 * start, partitioned or not, in one unit of work with the check: processes
 * that disagree on the count would otherwise hand some events to two
 * partitions and others to none.
 */
#include <stdio.h>
#include <string.h>

#include "bus/partition.h"
#include "bus/state.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME  1099511628211ULL

unsigned td_partition_of(const char *key, unsigned count)
{
    if (key == NULL || count <= 1)
        return 0;
    uint64_t h = FNV_OFFSET;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= FNV_PRIME;
    }
    return (unsigned)(h % count);
}

int td_partition_name(char *out, size_t size, const char *name, const td_partition *partition)
{
    TD_REQUIRE(out && name);
    int n;
    if (partition == NULL || partition->count <= 1)
        n = snprintf(out, size, "%s", name);
    else if (partition->count > TD_PARTITIONS_MAX || partition->index >= partition->count)
        return td_error__set(TD_EINVAL, "partition %u of %u of '%s' is out of range",
                             partition->index, partition->count, name);
    else
        n = snprintf(out, size, "%s.p%uof%u", name, partition->index, partition->count);
    if (n < 0 || (size_t)n >= size)
        return td_error__set(TD_EINVAL, "the name of partition %u of '%s' is too long",
                             partition ? partition->index : 0, name);
    return 0;
}

/* A whole number of 1..3 digits without a leading zero, ending at *end. */
static bool small_number(const char *s, const char **end, unsigned *out)
{
    unsigned n = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9' && p - s < 3)
        n = n * 10 + (unsigned)(*p++ - '0');
    if (p == s || (*s == '0' && p - s > 1))
        return false;
    *end = p;
    *out = n;
    return true;
}

bool td_partition_parse(const char *name, char *base, size_t size, td_partition *partition)
{
    td_partition none = {0, 0, TD_PARTITION_BY_STREAM};
    *partition = none;
    const char *dot = name ? strrchr(name, '.') : NULL, *end = NULL, *of = NULL;
    unsigned index = 0, count = 0;
    bool is = dot && dot > name && dot[1] == 'p' && small_number(dot + 2, &of, &index) &&
              strncmp(of, "of", 2) == 0 && small_number(of + 2, &end, &count) && *end == '\0' &&
              count >= 2 && count <= TD_PARTITIONS_MAX && index < count &&
              (size_t)(dot - name) < size;
    if (!is) {
        if (name && size > 0)
            snprintf(base, size, "%s", name);
        return false;
    }
    memcpy(base, name, (size_t)(dot - name));
    base[dot - name] = '\0';
    partition->count = count;
    partition->index = index;
    return true;
}

int td_partition_count(td_store *store, const char *name, unsigned *count)
{
    TD_REQUIRE(store && name && count);
    char *text = NULL;
    *count = 0;
    int error = td_store_doc_get(store, TD_COLL_PARTITIONS, name, &text, NULL);
    if (error == TD_ENOTFOUND)
        return 0;
    if (error < 0)
        return error;
    json_t *doc = json_loads(text, 0, NULL);
    td_free(text);
    json_int_t n = json_integer_value(json_object_get(doc, "count"));
    json_decref(doc);
    if (n < 2 || n > TD_PARTITIONS_MAX)
        return td_error__set(TD_ECORRUPT, "the partitioning of subscription '%s' is unreadable",
                             name);
    *count = (unsigned)n;
    return 0;
}

static const char *by_name(td_partition_by by)
{
    return by == TD_PARTITION_BY_CORRELATION ? "correlation" : "stream";
}

int td_partition__check(const td_partition *p, const char *name)
{
    if (p->count <= 1)
        return 0;
    if (p->count > TD_PARTITIONS_MAX)
        return td_error__set(TD_EINVAL, "subscription '%s': %u partitions, at most %d", name,
                             p->count, TD_PARTITIONS_MAX);
    if (p->index >= p->count)
        return td_error__set(TD_EINVAL, "subscription '%s': partition %u of %u does not exist",
                             name, p->index, p->count);
    if (p->by != TD_PARTITION_BY_STREAM && p->by != TD_PARTITION_BY_CORRELATION)
        return td_error__set(TD_EINVAL, "subscription '%s': unknown partition key %d", name,
                             (int)p->by);
    return 0;
}

void td_partition__set_key(td_subscription *sub, td_partition_key_fn fn)
{
    sub->partition_key = fn;
}

bool td_partition__owns(const td_subscription *sub, const td_event *ev)
{
    const td_partition *p = &sub->opts.partition;
    return p->count <= 1 || td_partition__index(sub, ev) == p->index;
}

unsigned td_partition__index(const td_subscription *sub, const td_event *ev)
{
    const td_partition *p = &sub->opts.partition;
    if (p->count <= 1)
        return 0;
    char key[TD_PARTITION_KEY_MAX + 1];
    const char *k = ev->stream;
    if (sub->partition_key) {
        if (sub->partition_key(ev, sub->payload, key, sizeof key) == 0)
            k = key;
    } else if (p->by == TD_PARTITION_BY_CORRELATION && ev->correlation_id &&
               ev->correlation_id[0]) {
        k = ev->correlation_id;
    }
    return td_partition_of(k, p->count);
}

typedef struct claim_ctx {
    const td_subscription *sub;
} claim_ctx;

static int claim_unit(td_txn *txn, void *payload)
{
    const td_subscription *sub = ((claim_ctx *)payload)->sub;
    const td_partition *want = &sub->opts.partition;
    char *text = NULL;
    int error = td_txn_doc_get(txn, TD_COLL_PARTITIONS, sub->base_name, &text, NULL);
    if (error < 0 && error != TD_ENOTFOUND)
        return error;
    json_error_t err;
    bool oom = false;
    json_t *doc = text ? td_json__loadb(text, strlen(text), 0, &err, &oom) : NULL;
    td_free(text);
    if (oom)
        return td_error__oom();
    if (error == 0 && doc == NULL)
        return td_error__set(TD_ECORRUPT, "the partitioning of subscription '%s' is unreadable",
                             sub->base_name);
    unsigned count = doc ? (unsigned)json_integer_value(json_object_get(doc, "count")) : 0;
    const char *by = doc ? json_string_value(json_object_get(doc, "by")) : NULL;
    bool same = doc && count == want->count && by && strcmp(by, by_name(want->by)) == 0;
    if (doc && !same) {
        error = want->count <= 1
                    ? td_error__set(TD_EINVAL,
                                    "subscription '%s' runs in %u partitions by %s on this store; "
                                    "it cannot run whole",
                                    sub->base_name, count, by ? by : "?")
                    : td_error__set(TD_EINVAL,
                                    "subscription '%s' runs in %u partitions by %s on this store, "
                                    "not %u by %s",
                                    sub->base_name, count, by ? by : "?", want->count,
                                    by_name(want->by));
        json_decref(doc);
        return error;
    }
    json_decref(doc);
    if (same || want->count <= 1)
        return 0;
    /* The first partitioned start: a whole that ran is split (split.c). */
    error = td_txn_doc_get(txn, TD_COLL_CHECKPOINTS, sub->base_name, &text, NULL);
    if (error == 0)
        error = td_partition__split(txn, sub, text);
    td_free(text);
    if (error < 0 && error != TD_ENOTFOUND)
        return error;
    json_t *record =
        json_pack("{s:I,s:s}", "count", (json_int_t)want->count, "by", by_name(want->by));
    error = record ? td_txn_doc_put_json(txn, TD_COLL_PARTITIONS, sub->base_name, record)
                   : td_error__oom();
    json_decref(record);
    return error;
}

int td_partition__claim(const td_subscription *sub)
{
    claim_ctx ctx = {sub};
    return td_transact(sub->store, claim_unit, &ctx);
}
