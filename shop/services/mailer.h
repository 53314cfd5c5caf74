/*
 * mailer.h (shop): the mailer interface and the Maildir mailer.
 *
 * The Maildir mailer writes each e-mail as one RFC 5322 message into
 * DIR/new/, atomically: written and fsync'd in DIR/tmp/, then renamed. The
 * file is named after the causing event and the kind of e-mail, and the
 * Message-ID derives from the same, so delivering the same event again
 * never adds a second message (also not after a reader moved it to cur/).
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
    const char *subject;
    const char *body;
} shop_mail;

typedef struct shop_mailer {
    /* 0 when sent (or sent before), else a negative code worth retrying. */
    int (*send)(void *self, const shop_mail *mail);
    void *self;
} shop_mailer;

/* The message as RFC 5322 text, CRLF line ends. Caller frees *out. */
int shop_mail_format(const shop_mail *mail, char **out, size_t *len);

/* A Maildir under dir (made with tmp/, new/, cur/ if missing). */
int shop_maildir_new(shop_mailer *out, const char *dir);
void shop_maildir_free(shop_mailer *mailer);

/* An SMTP mailer for url ("smtp://host:port"). */
int shop_smtp_new(shop_mailer *out, const char *url);
void shop_smtp_free(shop_mailer *mailer);

#endif
