/*
 * transit.h: what the shop's services send each other of the data their
 * stores keep sealed (contexts.h, broker.h's encode and decode).
 *
 * Each service's store seals personal data under keys of its own, one per
 * customer (seal.h), and keeps a card token beside its order rather than
 * in any event. Neither can cross to another service's store as stored:
 * the receiver has none of the sender's keys, and the token is in no
 * event. So the relay's encode opens the personal fields of an outgoing
 * event (and, for ProcessPayment, reads the order's card token) and seals
 * them for the wire, into one "_transit" member, under a key derived from
 * the master key the services share; the consumer's decode opens that
 * member in the receiving unit and seals the fields again under the
 * receiver's own key for the customer (the token goes into the receiver's
 * payment-method document, as the single process keeps it). So no log
 * holds them in the clear, a customer forgotten by the users service
 * (UserForgotten) is forgotten by every store that received them, and a
 * copy of the broker's queues reveals nothing without the master key.
 *
 * Every service of one shop must be started with the same master key: a
 * message sealed under another is refused (parked in the dead-letter queue
 * with why).
 *
 * Threads: encode runs on the relay's thread, decode on the consumer's
 * (inside its unit of work); a shop_transit is shared by both once made.
 */
#ifndef SHOP_SERVICES_TRANSIT_H
#define SHOP_SERVICES_TRANSIT_H

#include <tidings/tidings.h>

typedef struct shop_transit shop_transit;

/* Makes the transit of store's events under master (copied; the caller
 * wipes its own copy), for a process running the contexts of services
 * (SHOP_CTX_* bits; common/contexts.h): when it runs some only, encode
 * passes over the events no other context reads (2), which no queue is
 * bound to; the whole shop sends every integration event, for whoever
 * listens. Caller owns *out; free with shop_transit_free after the relay
 * and the consumer that use it, before the store. */
int shop_transit_new(shop_transit **out, td_store *store, unsigned services,
                     const unsigned char master[TD_MASTER_KEY_BYTES]);
void shop_transit_free(shop_transit *t);

/* td_relay_encode_fn and td_consumer_decode_fn; payload: the shop_transit. */
int shop_transit_encode(const td_event *event, char **body, void *payload);
int shop_transit_decode(td_txn *txn, const td_event *event, char **data, void *payload);

#endif
