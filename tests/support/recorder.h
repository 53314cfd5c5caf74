/*
 * recorder.h: a thread-safe log of what handlers saw, for the delivery tests.
 */
#ifndef TD_TEST_RECORDER_H
#define TD_TEST_RECORDER_H

#include <pthread.h>

#include "support.h"

#define RECORDER_MAX 20000

typedef struct record {
    char stream[32];
    int64_t version;
    int64_t position;
    unsigned attempt;
} record;

typedef struct recorder {
    pthread_mutex_t lock;
    record entries[RECORDER_MAX];
    int count;
} recorder;

void recorder_init(recorder *r);
void recorder_add(recorder *r, const td_event *ev, unsigned attempt);
int recorder_count(recorder *r);
/* Waits until at least n records exist; fails the test after timeout_ms. */
void recorder_wait(recorder *r, int n, int timeout_ms);
/* How many records of stream; and the versions of that stream in the order seen. */
int recorder_stream(recorder *r, const char *stream, int64_t *versions, int max);

#endif
