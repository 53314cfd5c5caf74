/*
 * import_batch.h: the lines of a `tidings import` file, read and checked
 * before anything is written (cmd_import.c), and read by the fuzz target of
 * import lines (tests/fuzz/fuzz_import.c).
 */
#ifndef TD_CLI_IMPORT_BATCH_H
#define TD_CLI_IMPORT_BATCH_H

#include <stddef.h>
#include <stdio.h>

#include "tidings/tidings.h"

typedef struct import_batch {
    td_event **events; /* owned, in file order, positions increasing */
    size_t *lines;     /* line number of each event, for messages */
    size_t count, capacity;
    size_t imported, skipped;
    size_t failed_at; /* index of the event that failed, if any */
} import_batch;

#define IMPORT_BATCH_INIT                                                                          \
    {                                                                                              \
        .failed_at = SIZE_MAX                                                                      \
    }

/* Reads every line of in into b: each a JSON envelope, positions >= 1 and
 * increasing, blank lines skipped. Returns 0, or an exit code (cli.h) after
 * printing which line is wrong and why. b holds what was read either way. */
int import_batch_read(import_batch *b, FILE *in);

/* Frees the events and arrays of b (not b itself). */
void import_batch_dispose(import_batch *b);

#endif
