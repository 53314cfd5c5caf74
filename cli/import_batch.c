/*
 * import_batch.c: reads the lines of a `tidings import` file into memory
 * and checks them (import_batch.h): each line one event envelope
 * (td_event_from_json, duplicate keys refused), positions increasing. The
 * check is all done before the store is touched, so a bad line anywhere
 * writes nothing.
 */
#include "import_batch.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "cli.h"

void import_batch_dispose(import_batch *b)
{
    for (size_t i = 0; i < b->count; i++)
        td_event_free(b->events[i]);
    free(b->events);
    free(b->lines);
}

static int batch_push(import_batch *b, td_event *ev, size_t line)
{
    if (b->count == b->capacity) {
        size_t cap = b->capacity ? b->capacity * 2 : 256;
        td_event **events = realloc(b->events, cap * sizeof *events);
        if (events)
            b->events = events;
        size_t *lines = events ? realloc(b->lines, cap * sizeof *lines) : NULL;
        if (lines == NULL)
            return -1;
        b->lines = lines;
        b->capacity = cap;
    }
    b->events[b->count] = ev;
    b->lines[b->count++] = line;
    return 0;
}

/* Parses one line into the batch; returns 0 or an exit code after printing. */
static int parse_line(import_batch *b, const char *text, size_t len, size_t line)
{
    json_error_t err;
    td_event *ev = NULL;
    json_t *json = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (json == NULL) {
        fprintf(stderr, "tidings: line %zu: not JSON: %s\n", line, err.text);
        return EXIT_INVALID;
    }
    int error = td_event_from_json(&ev, json);
    json_decref(json);
    if (error < 0) {
        fprintf(stderr, "tidings: line %zu: %s\n", line, td_error_last());
        return EXIT_INVALID;
    }
    if (ev->position < 1 || (b->count > 0 && ev->position <= b->events[b->count - 1]->position)) {
        fprintf(stderr, "tidings: line %zu: positions must be >= 1 and increase\n", line);
        td_event_free(ev);
        return EXIT_INVALID;
    }
    if (batch_push(b, ev, line) < 0) {
        td_event_free(ev);
        fprintf(stderr, "tidings: out of memory\n");
        return EXIT_FAIL;
    }
    return 0;
}

int import_batch_read(import_batch *b, FILE *in)
{
    char *text = NULL;
    size_t size = 0, line = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&text, &size, in)) >= 0) {
        line++;
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            len--;
        if (len > 0)
            rc = parse_line(b, text, (size_t)len, line);
    }
    free(text);
    if (rc == 0 && ferror(in)) {
        fprintf(stderr, "tidings: reading the import file failed\n");
        rc = EXIT_FAIL;
    }
    return rc;
}
