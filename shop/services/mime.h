/*
 * mime.h (shop): the encodings an e-mail needs to carry any text (mime.c):
 * header fields with non-ASCII text as RFC 2047 encoded-words, folded so
 * that no line passes 78 characters, and bodies as quoted-printable
 * (RFC 2045), so a message is 7-bit clean whatever names and products
 * hold. What a standard mail parser (Python's email package, GMime) reads
 * without a defect.
 *
 * Threads: each `out` must be a stream only the calling thread writes (a
 * message being formatted): characters go out with unlocked stdio.
 */
#ifndef SHOP_SERVICES_MIME_H
#define SHOP_SERVICES_MIME_H

#include <stdio.h>

/* Writes "Name: value" and CRLF. ASCII text is folded at spaces; text with
 * other bytes (UTF-8) becomes base64 encoded-words of whole characters,
 * one per line. */
void mime_header(FILE *out, const char *name, const char *value);

/* Writes "Name: phrase <address>" and CRLF: the display name quoted when
 * it needs to be, encoded when it is not ASCII, the address on a line of
 * its own when it does not fit. */
void mime_address(FILE *out, const char *name, const char *display, const char *address);

/* Writes text (UTF-8, lines ended by LF or CRLF) as quoted-printable with
 * CRLF line ends and lines of at most 76 characters. */
void mime_quoted_printable(FILE *out, const char *text);

#endif
