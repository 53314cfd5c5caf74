/*
 * memory.h: releasing memory the library hands out.
 *
 * Buffers that a libtidings function returns through an out-parameter and
 * documents as "caller owns; free with td_free" are released with td_free().
 * Objects with a type of their own have their own free function instead.
 * Inside the library every allocation goes through one seam, so tests can
 * make any allocation fail on purpose; running out of memory is reported as
 * TD_ENOMEM, never an abort.
 *
 * jansson's allocations go through the same seam: when loaded, the library
 * sets jansson's allocation functions (json_set_alloc_funcs, process-wide)
 * to its own, which are malloc and free in normal runs. An application
 * that sets jansson's functions itself afterwards keeps working.
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
