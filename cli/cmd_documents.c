/*
 * cmd_documents.c: the `documents` command: what a store holds beside its
 * events (read models, indexes, checkpoints), read through the store API so
 * that it reads the same on every backend.
 *
 *   tidings documents               the collections that hold a document
 *   tidings documents COLLECTION    its documents, one JSON line each,
 *                                   {"key": KEY, "document": {...}}, by key
 *
 * Read-only: documents are written by the services that own them.
 * Documents are read in pages of DOCUMENTS_PAGE keys, each page after the
 * last key printed, so a large collection is never held whole.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define DOCUMENTS_PAGE 500

static int print_collection(const char *collection, void *payload)
{
    (void)payload;
    printf("%s\n", collection);
    return 0;
}

typedef struct doc_page {
    size_t count;
    char *last_key; /* owned: the key the next page starts after */
} doc_page;

static int print_document(const char *key, const char *json, size_t len, void *payload)
{
    doc_page *page = payload;
    json_error_t error;
    json_t *doc = json_loadb(json, len, 0, &error);
    if (doc == NULL)
        return TD_ECORRUPT;
    json_t *line = json_pack("{s:s,s:o}", "key", key, "document", doc);
    char *copy = strdup(key);
    if (line == NULL || copy == NULL) {
        json_decref(line);
        free(copy);
        return TD_ENOMEM;
    }
    int rc = json_dumpf(line, stdout, JSON_COMPACT);
    json_decref(line);
    if (rc < 0 || fputc('\n', stdout) == EOF) {
        free(copy);
        return TD_EIO;
    }
    free(page->last_key);
    page->last_key = copy;
    page->count++;
    return 0;
}

static int print_documents(td_store *store, const char *collection)
{
    doc_page page = {0, NULL};
    int error;
    do {
        size_t before = page.count;
        error = td_store_doc_list(store, collection, page.last_key, DOCUMENTS_PAGE, print_document,
                                  &page);
        if (error == 0 && page.count - before < DOCUMENTS_PAGE)
            break;
    } while (error == 0);
    free(page.last_key);
    return error;
}

int cmd_documents(int argc, char **argv)
{
    const char *pos[1];
    int count;
    td_store *store = NULL;
    int rc = cli_parse(cli_find_command("documents"), argc, argv, NULL, pos, 0, 1, &count);
    if (rc != 0)
        return rc == -1 ? EXIT_OK : rc;
    int error = cli_open(&store, false, true);
    if (error == 0)
        error = count == 0 ? td_store_doc_collections(store, print_collection, NULL)
                           : print_documents(store, pos[0]);
    td_store_free(store);
    return error < 0 ? cli_fail(error) : EXIT_OK;
}
