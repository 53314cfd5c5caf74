/*
 * fuzz_import.c: the lines of a `tidings import` file (cli/import_batch.c),
 * any bytes read as the file. What the reader accepts must hold what it
 * promises the import: every event decoded, positions >= 1 and strictly
 * increasing, a line number for each, growing too.
 */
#include <stdio.h>

#include "fuzz.h"
#include "import_batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    import_batch b = IMPORT_BATCH_INIT;
    FILE *in = fmemopen((void *)data, size, "r");
    if (size == 0 || in == NULL) /* fmemopen refuses an empty buffer */
        return 0;
    int rc = import_batch_read(&b, in);
    fclose(in);
    for (size_t i = 0; rc == 0 && i < b.count; i++) {
        FUZZ_CHECK(b.events[i] != NULL && b.events[i]->position >= 1);
        FUZZ_CHECK(i == 0 || b.events[i]->position > b.events[i - 1]->position);
        FUZZ_CHECK(i == 0 || b.lines[i] > b.lines[i - 1]);
    }
    import_batch_dispose(&b);
    return 0;
}
