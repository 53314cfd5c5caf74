/*
 * cmd_import.c: `tidings import FILE`: append the events of a JSON lines
 * export, keeping their ids, versions and positions.
 *
 * The whole file is read and checked first (import_batch.c: every line an
 * event, positions increasing), then imported in one unit of work, so a bad line or a version
 * or position conflict anywhere writes nothing. Events whose id is stored
 * already with the same stream, version and position are skipped, which
 * makes importing the same file twice a no-op.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "import_batch.h"

static int import_unit(td_txn *txn, void *payload)
{
    import_batch *b = payload;
    b->imported = b->skipped = 0;
    for (size_t i = 0; i < b->count; i++) {
        int rc = td_txn_import(txn, b->events[i]);
        if (rc < 0) {
            b->failed_at = i;
            return rc;
        }
        if (rc > 0)
            b->skipped++;
        else
            b->imported++;
    }
    return 0;
}

int cmd_import(int argc, char **argv)
{
    const cli_command *cmd = cli_find_command("import");
    import_batch b = IMPORT_BATCH_INIT;
    const char *pos[1];
    int count;
    td_store *store = NULL;
    int rc = cli_parse(cmd, argc, argv, NULL, pos, 1, 1, &count);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    FILE *in = strcmp(pos[0], "-") == 0 ? stdin : fopen(pos[0], "r");
    if (in == NULL) {
        fprintf(stderr, "tidings: cannot open '%s': %s\n", pos[0], strerror(errno));
        return EXIT_FAIL;
    }
    rc = import_batch_read(&b, in);
    if (in != stdin)
        fclose(in);
    if (rc == 0) {
        int error = cli_open(&store, true, false);
        if (error == 0 && b.count > 0)
            error = td_transact(store, import_unit, &b);
        if (error < 0 && b.failed_at < b.count) {
            fprintf(stderr, "tidings: line %zu: %s; nothing was imported\n", b.lines[b.failed_at],
                    td_error_last());
            rc = cli_exit_code(error);
        } else {
            rc = error < 0 ? cli_fail(error) : EXIT_OK;
        }
        if (rc == EXIT_OK)
            printf("imported %zu events, skipped %zu already present\n", b.imported, b.skipped);
    }
    td_store_free(store);
    import_batch_dispose(&b);
    return rc;
}
