/*
 * replay.c: runs a fuzz target over its corpus without libFuzzer, for
 * builds with a compiler that has none (GCC: the ASan/UBSan build of
 * `make test`). Each argument is a file or a folder of files; each file is
 * handed once to LLVMFuzzerTestOneInput, as libFuzzer would with -runs=0.
 * A target that finds something wrong aborts, which fails the test.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    uint8_t *data = NULL;
    size_t size = 0, cap = 0, n;
    do {
        if (size == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *more = realloc(data, cap);
            if (more == NULL) {
                free(data);
                fclose(f);
                return 1;
            }
            data = more;
        }
        n = fread(data + size, 1, cap - size, f);
        size += n;
    } while (n > 0);
    int failed = ferror(f);
    fclose(f);
    if (!failed)
        LLVMFuzzerTestOneInput(data, size);
    free(data);
    return failed;
}

static int run_path(const char *path, int *files)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: no %s\n", path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        ++*files;
        return run_file(path);
    }
    struct dirent **names = NULL;
    int count = scandir(path, &names, NULL, alphasort), failed = count < 0;
    for (int i = 0; i < count; i++) {
        char child[4096];
        if (names[i]->d_name[0] != '.') {
            snprintf(child, sizeof child, "%s/%s", path, names[i]->d_name);
            failed |= run_path(child, files);
        }
        free(names[i]);
    }
    free(names);
    return failed;
}

int main(int argc, char **argv)
{
    int failed = 0, files = 0;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++)
        failed |= run_path(argv[i], &files);
    printf("replay: %d inputs%s\n", files, failed ? ", some unreadable" : "");
    return failed || files == 0;
}
