/*
 * tmpdir.c: temporary folders for the tests and benchmarks (see tmpdir.h).
 */
#define _XOPEN_SOURCE 700
#include "tmpdir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#define PATH_CAP 4096

char *tmpdir_make(const char *base, const char *prefix)
{
    char *dir = malloc(PATH_CAP);
    if (dir == NULL)
        return NULL;
    snprintf(dir, PATH_CAP, "%s/%s-XXXXXX", base && base[0] ? base : "/tmp", prefix);
    if (mkdtemp(dir) == NULL) {
        free(dir);
        return NULL;
    }
    return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tmpdir_remove(char *dir)
{
    if (dir) {
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
    }
}
