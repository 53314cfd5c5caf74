/*
 * mime.c (shop): RFC 2047 header encoding with folding, and
 * quoted-printable bodies (mime.h).
 */
#include "services/mime.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_CHARS 78 /* RFC 5322: SHOULD NOT pass 78, without CRLF */
#define WORD_BYTES     39 /* text per encoded-word: 52 base64 characters, 64 in all */

static bool is_ascii_text(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static void base64(FILE *out, const unsigned char *in, size_t n)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        putc_unlocked(digits[v >> 18 & 63], out);
        putc_unlocked(digits[v >> 12 & 63], out);
        putc_unlocked(i + 1 < n ? digits[v >> 6 & 63] : '=', out);
        putc_unlocked(i + 2 < n ? digits[v & 63] : '=', out);
    }
}

/* The length of the longest prefix of s, at most max bytes, that ends on a
 * character boundary (UTF-8). */
static size_t whole_chars(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--; /* s[max] continues a character: cut before it */
    return max;
}

/* Encoded-words for text, the first on the current line (at column), each
 * further one on a line of its own. Returns the column after the last. */
static size_t encoded_words(FILE *out, const char *text, size_t column)
{
    bool first = true;
    do {
        size_t n = whole_chars(text, WORD_BYTES);
        if (n == 0) /* a byte that starts nothing: take it alone */
            n = 1;
        if (!first) {
            fputs("\r\n ", out);
            column = 1;
        }
        fputs("=?UTF-8?B?", out);
        base64(out, (const unsigned char *)text, n);
        fputs("?=", out);
        column += 12 + (n + 2) / 3 * 4;
        text += n;
        first = false;
    } while (*text);
    return column;
}

/* ASCII text folded at spaces; returns the column after it. */
static size_t folded_ascii(FILE *out, const char *text, size_t column)
{
    while (*text) {
        size_t word = strcspn(text + 1, " ") + 1; /* the next space starts a word */
        if (column + word > LINE_MAX_CHARS && text[0] == ' ' && column > 1) {
            fputs("\r\n", out); /* the space stays, as the fold's whitespace */
            column = 0;
        }
        fwrite(text, 1, word, out);
        column += word;
        text += word;
    }
    return column;
}

static bool plain_byte(char c)
{
    return (unsigned char)c >= 0x20 && (unsigned char)c <= 0x7e;
}

void mime_header(FILE *out, const char *name, const char *value)
{
    size_t column = (size_t)fprintf(out, "%s: ", name);
    if (is_ascii_text(value)) {
        folded_ascii(out, value, column);
        fputs("\r\n", out);
        return;
    }
    /* Only the words from the first to the last that are not ASCII are
     * encoded; the words around them stay readable. */
    const char *first = value, *end = value + strlen(value);
    while (plain_byte(*first))
        first++;
    while (first > value && first[-1] != ' ')
        first--;
    while (end > first && plain_byte(end[-1]))
        end--;
    while (*end && *end != ' ')
        end++;
    char *middle = strndup(first, (size_t)(end - first));
    char *prefix = first > value ? strndup(value, (size_t)(first - value - 1)) : NULL;
    if (middle == NULL || (first > value && prefix == NULL)) { /* no memory: all of it encoded */
        free(middle);
        free(prefix);
        encoded_words(out, value, column);
        fputs("\r\n", out);
        return;
    }
    if (prefix) { /* the space before the encoded part ends the prefix, or folds */
        column = folded_ascii(out, prefix, column);
        fputs(column + 1 + 64 > LINE_MAX_CHARS ? "\r\n " : " ", out);
        column = column + 1 + 64 > LINE_MAX_CHARS ? 1 : column + 1;
    }
    column = encoded_words(out, middle, column);
    folded_ascii(out, end, column);
    fputs("\r\n", out);
    free(middle);
    free(prefix);
}

/* Whether an ASCII display name must be a quoted-string (RFC 5322 specials). */
static bool needs_quotes(const char *s)
{
    return strpbrk(s, "()<>[]:;@\\,.\"") != NULL;
}

void mime_address(FILE *out, const char *name, const char *display, const char *address)
{
    size_t column = (size_t)fprintf(out, "%s: ", name);
    if (display == NULL || display[0] == '\0') {
        fprintf(out, "<%s>\r\n", address);
        return;
    }
    if (!is_ascii_text(display)) {
        column = encoded_words(out, display, column);
    } else if (needs_quotes(display)) {
        putc_unlocked('"', out);
        for (const char *p = display; *p; p++) {
            if (*p == '"' || *p == '\\')
                putc_unlocked('\\', out);
            putc_unlocked(*p, out);
        }
        putc_unlocked('"', out);
        column += strlen(display) + 2;
    } else {
        column = folded_ascii(out, display, column);
    }
    if (column + 3 + strlen(address) > LINE_MAX_CHARS)
        fprintf(out, "\r\n <%s>\r\n", address);
    else
        fprintf(out, " <%s>\r\n", address);
}

void mime_quoted_printable(FILE *out, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t column = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '\r' && p[1] == '\n')
            continue; /* the LF ends the line */
        if (*p == '\n') {
            fputs("\r\n", out);
            column = 0;
            continue;
        }
        bool line_end = p[1] == '\0' || p[1] == '\n' || (p[1] == '\r' && p[2] == '\n');
        bool from = column == 0 && strncmp((const char *)p, "From ", 5) == 0; /* mbox */
        bool plain = (*p >= 33 && *p <= 126 && *p != '=' && !from) ||
                     ((*p == ' ' || *p == '\t') && !line_end);
        size_t width = plain ? 1 : 3;
        if (column + width > 75) { /* a soft break keeps lines within 76 */
            fputs("=\r\n", out);
            column = 0;
        }
        if (plain)
            putc_unlocked(*p, out);
        else
            fprintf(out, "=%c%c", hex[*p >> 4], hex[*p & 15]);
        column += width;
    }
}
