/*
 * recorder.c: see recorder.h.
 */
#include "recorder.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void recorder_init(recorder *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
}

void recorder_add(recorder *r, const td_event *ev, unsigned attempt)
{
    pthread_mutex_lock(&r->lock);
    if (r->count < RECORDER_MAX) {
        record *e = &r->entries[r->count++];
        snprintf(e->stream, sizeof e->stream, "%s", ev->stream);
        e->version = ev->version;
        e->position = ev->position;
        e->attempt = attempt;
    }
    pthread_mutex_unlock(&r->lock);
}

int recorder_count(recorder *r)
{
    pthread_mutex_lock(&r->lock);
    int n = r->count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

void recorder_wait(recorder *r, int n, int timeout_ms)
{
    struct timespec pause = {0, 2000000};
    for (int waited = 0; recorder_count(r) < n; waited += 2) {
        if (waited > timeout_ms)
            fail_msg("%d records after %d ms, expected %d", recorder_count(r), timeout_ms, n);
        nanosleep(&pause, NULL);
    }
}

int recorder_stream(recorder *r, const char *stream, int64_t *versions, int max)
{
    int n = 0;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->count; i++)
        if (strcmp(r->entries[i].stream, stream) == 0 && n < max)
            versions[n++] = r->entries[i].version;
    pthread_mutex_unlock(&r->lock);
    return n;
}
