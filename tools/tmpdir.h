/*
 * tmpdir.h: temporary folders for the tests and benchmarks (not part of
 * libtidings).
 */
#ifndef TD_TOOLS_TMPDIR_H
#define TD_TOOLS_TMPDIR_H

/* Makes base/prefix-XXXXXX (base NULL or "": /tmp). Caller frees it with
 * tmpdir_remove. NULL on failure. */
char *tmpdir_make(const char *base, const char *prefix);

/* Removes the folder with everything in it, and frees dir. Accepts NULL. */
void tmpdir_remove(char *dir);

#endif
