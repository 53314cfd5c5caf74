/*
 * errors.h: how libtidings reports failure.
 *
 * Every fallible function returns an int: 0 on success or a negative TD_E…
 * code. Where the failure happens the library also records a one-line message
 * in thread-local storage; td_error_last() returns it on the same thread until
 * the next failing call there. The library never prints. Codes travel
 * unchanged through callers, so a conflict found deep in a unit of work reaches
 * td_transact()'s caller as TD_ECONFLICT.
 *
 * Arguments are checked: a NULL handle, a missing required argument or an
 * option struct of an unknown version is refused with TD_EINVAL (and a
 * message naming the function), never a crash. Free functions accept NULL;
 * setters given a NULL handle do nothing; accessors answer NULL. Option
 * structs carry a version: an older version is read as far as it went
 * (the fields it lacks take their defaults), as libgit2 does.
 *
 * Callbacks (units of work, read callbacks) use the same convention: return 0
 * to go on, a negative code to fail (it is passed back unchanged), and where
 * noted a positive value to stop early without error.
 */
#ifndef TIDINGS_ERRORS_H
#define TIDINGS_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum td_error_code {
    TD_OK = 0,
    TD_ERROR = -1,         /* failure with no better code */
    TD_EINVAL = -2,        /* invalid argument or input (bad name, bad JSON, …) */
    TD_ENOTFOUND = -3,     /* no such stream, document, event or file */
    TD_ECONFLICT = -4,     /* expected version does not match the stream */
    TD_EIO = -5,           /* the operating system or disk failed */
    TD_ECORRUPT = -6,      /* corrupt data, or a file that is not a tidings store */
    TD_ETOOBIG = -7,       /* input over a configured limit */
    TD_EVERSION = -8,      /* unsupported (newer) schema or format version */
    TD_ENOMEM = -9,        /* out of memory; state is left as it was */
    TD_EBUSY = -10,        /* a lock was not granted within the timeout */
    TD_EEXISTS = -11,      /* the thing to create exists already */
    TD_ECLOSED = -12,      /* the object is closing or refuses work after a fatal error */
    TD_EPERMANENT = -13,   /* a handler's failure that retrying cannot fix */
    TD_ENOSPC = -14,       /* the disk is full: nothing was written; the same call may succeed
                              once space is freed (the store keeps accepting work) */
    TD_EUNAVAILABLE = -15, /* the database server cannot be reached (a lost connection, a
                              server restarting): nothing of the call was committed, and the
                              same call may succeed once the server is back */
} td_error_code;

/* The message of the last failure on this thread; "" if none.
 * Borrowed: valid until the next libtidings call on this thread. */
const char *td_error_last(void);

/* The code of the last failure on this thread; TD_OK if none. */
int td_error_last_code(void);

/* A stable lower-case name for a code ("conflict", "not_found", …). Static. */
const char *td_error_name(int code);

/* Clears the thread's last error. */
void td_error_clear(void);

/* Sets the thread's last error (printf-style message) and returns code:
 * for an application's callback that answers the library with a failure of
 * its own (a broker consumer's decode, say) and says why. */
int td_error_report(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
