/*
 * broker_support.h: what the broker suites share: the private RabbitMQ node
 * that CTest starts for them (TD_TEST_RABBITMQ_DIR, scripts/start-rabbitmq.sh),
 * names of their own on it, and the check that a receiving store holds each
 * integration event of a sending store exactly once, in stream order.
 */
#ifndef TD_TEST_BROKER_SUPPORT_H
#define TD_TEST_BROKER_SUPPORT_H

#include "support.h"

/* The node's folder and its URL (with the password, read from DIR/url).
 * Fails the test when CTest did not start a node. Static storage. */
const char *tb_dir(void);
const char *tb_url(void);

/* A name no other test run on the node has used: prefix-<pid>-<n>. */
void tb_name(char *buf, size_t size, const char *prefix);

/* Waits until store holds at least n events of the query, up to timeout_ms;
 * returns how many it holds. */
int64_t tb_wait_count(td_store *store, const td_read_query *q, int64_t n, int timeout_ms);

/* Every integration event of `from` is in `to` exactly once (same id, type,
 * stream, schema, source, correlation, causation, data), `to` holds no
 * other event of those streams, and each stream's events are in the same
 * order in both. Fails the test otherwise. Returns how many were checked. */
int64_t tb_check_copy(td_store *from, td_store *to);

/* Runs a command line through sh; returns its exit status. */
int tb_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The broker node's process id (DIR/rabbit.pid). */
int tb_broker_pid(void);

#endif
