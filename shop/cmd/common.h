/*
 * common.h (shop commands): what the `shop` commands share: the master key
 * and files that hold secrets.
 */
#ifndef SHOP_CMD_COMMON_H
#define SHOP_CMD_COMMON_H

#include <stdbool.h>

#include "cmdline.h"
#include "shop.h"

/* Where the store is, for every command that opens one: --db URL (key 'd')
 * and --data DIR (key 'D'). */
extern const cmdline_option shop_cmd_store_options[];

/* The master key for store: read from path (NULL: DATA/master.key). When
 * there is no file, create allows making one, but only for a store that
 * has never sealed anything: a store that has is refused, since a new key
 * would leave every sealed field unreadable. Prints what went wrong
 * (prefixed with who) and returns < 0; *created says a key was made. */
int shop_cmd_master_key(unsigned char out[TD_MASTER_KEY_BYTES], td_store *store, const char *path,
                        const char *data, bool create, const char *who, bool *created);

/* Writes text and a newline to path atomically (a temporary file renamed),
 * mode 0600, synced. Returns 0 or < 0 with errno's message printed. */
int shop_cmd_write_secret(const char *path, const char *text, const char *who);

/* Reads one line (at most size - 1 bytes, without its newline) from fd
 * (a password on standard input). Returns its length or < 0. */
int shop_cmd_read_line(int fd, char *out, size_t size);

#endif
