/*
 * memory.h: releasing memory the library hands out.
 *
 * Buffers that a libtidings function returns through an out-parameter and
 * documents as "caller owns; free with td_free" are released with td_free().
 * Objects with a type of their own have their own free function instead.
 * Inside the library every allocation goes through one seam, so tests can
 * make any allocation fail on purpose; running out of memory is reported as
 * TD_ENOMEM, never an abort.
 */
#ifndef TIDINGS_MEMORY_H
#define TIDINGS_MEMORY_H

#ifdef __cplusplus
extern "C" {
#endif

/* Frees a buffer returned by libtidings. Accepts NULL. */
void td_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif
