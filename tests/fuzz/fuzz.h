/*
 * fuzz.h: what the fuzz targets share. A target that finds the code under
 * test broken calls FUZZ_CHECK, which says where and aborts: libFuzzer then
 * keeps the input as a crash, and the corpus replay fails.
 */
#ifndef TD_FUZZ_H
#define TD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A private folder for the target's files (under /dev/shm when there is
 * one, so fsyncs cost nothing), removed at exit. Never NULL. */
const char *fuzz_tmpdir(void);

#endif
