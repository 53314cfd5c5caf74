/*
 * mailer.h (shop): the mailer interface, the mail spool and SMTP.
 *
 * The spool (spool.c, the default) appends each e-mail as one RFC 5322
 * message to the mbox file DIR/spool.mbox and returns once it is durable
 * (fsyncs shared by the messages appended meanwhile). The Message-ID is
 * named after the causing event and the kind of e-mail, and the spool
 * remembers the names it holds, so delivering the same event again never
 * adds a second message. Past SHOP_SPOOL_ROTATE_BYTES the file is renamed
 * DIR/spool.mbox.N (N counting up) and a new one begun; the names of the
 * current and the last rotated file are remembered.
 *
 * The SMTP mailer hands the same message to an SMTP server through libcurl.
 * A server cannot be asked whether it has a message already, so delivery is
 * at least once: a crash right after the server accepted a message sends it
 * again on redelivery, with the same Message-ID, by which mail systems drop
 * duplicates.
 */
#ifndef SHOP_SERVICES_MAILER_H
#define SHOP_SERVICES_MAILER_H

#include "shop.h"

typedef struct shop_mail {
    const char *event_id; /* the causing event: names the message */
    const char *kind;     /* order_received, order_confirmed, order_cancelled */
    const char *order_id;
    const char *to_email, *to_name;
    const char *subject; /* any UTF-8: encoded as RFC 2047 asks */
    const char *text;    /* the body as plain text (UTF-8, LF or CRLF line ends) */
    const char *html;    /* the same as HTML, an alternative; or NULL */
} shop_mail;

typedef struct shop_mailer {
    /* 0 when sent (or sent before), else a negative code worth retrying. */
    int (*send)(void *self, const shop_mail *mail);
    void *self;
} shop_mailer;

/* The message as RFC 5322 text, CRLF line ends, 7-bit clean: headers
 * encoded and folded (mime.h), the body as quoted-printable text, or with
 * html as multipart/alternative (text, then HTML). Caller frees *out. */
int shop_mail_format(const shop_mail *mail, char **out, size_t *len);

#define SHOP_SPOOL_ROTATE_BYTES (64 * 1024 * 1024)

/* The spool DIR/spool.mbox (dir made if missing; a message torn by a crash
 * is cut off), rotated past rotate_at bytes (0: SHOP_SPOOL_ROTATE_BYTES). */
int shop_spool_open(shop_mailer *out, const char *dir, size_t rotate_at);
/* shop_spool_open with the default size. */
int shop_spool_new(shop_mailer *out, const char *dir);
void shop_spool_free(shop_mailer *mailer);

/* An SMTP mailer. url: "smtp://host:port" (plain, or STARTTLS required
 * with starttls) or "smtps://host:port" (TLS from the start); credentials
 * in it are refused: a netrc file or user and password give the login,
 * which goes only over TLS. Certificates are checked (ca_file: the CAs to
 * check with; NULL: the system's). Strings are copied. TD_EINVAL with the
 * shop error saying why. */
typedef struct shop_smtp_options {
    const char *url;
    const char *netrc_file;
    const char *user, *password;
    const char *ca_file;
    bool starttls;
} shop_smtp_options;
int shop_smtp_new(shop_mailer *out, const shop_smtp_options *opts);
void shop_smtp_free(shop_mailer *mailer);

#endif
