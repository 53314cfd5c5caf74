/*
 * bus_int.h: what the bus's files share (internal).
 */
#ifndef TD_BUS_INT_H
#define TD_BUS_INT_H

#include "tidings/bus.h"

/* TD_EINVAL with a message if match names a malformed type or category. */
int td_match__check(const td_match *match);

#endif
