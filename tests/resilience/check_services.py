#!/usr/bin/env python3
# check_services.py IDS P1 P2 P3: what services_faults.sh checks across the
# stores of the three-process shop after its faults. IDS: the acknowledged
# order ids, a line each; P1, P2, P3: `tidings events` of the stores of
# users,catalog,orders / inventory / payments,notifications (JSON lines,
# in position order).
#
# - Delivery: every integration event a service wrote (its source is one of
#   its contexts) of a type another service reads (common/contexts.c) is
#   in that service's store, once.
# - Order: for each pair of stores, the events they share appear in each
#   stream in the same relative order (per-stream order from the sender to
#   the receiver, across redeliveries and reconnects).
# - Effects once: exactly one PaymentProcessed per acknowledged order in
#   P3's store and in P1's, at most one StockReserved per order line in P2's.
# Prints what it found; exits 1 naming the first problems.
import collections, json, sys

ids, *paths = sys.argv[1:5]
names = ["p1", "p2", "p3"]
contexts = {"p1": {"users", "catalog", "orders"}, "p2": {"inventory"},
            "p3": {"payments", "notifications"}}
# who reads what of the others (common/contexts.c), by the reader's contexts
reads = {
    "p1": {"InventoryUpdate", "StockReserved", "StockNotReserved", "InventoryReleased",
           "PaymentProcessed", "PaymentRefunded"},
    "p2": {"ProductCreated", "ProductPriceChanged", "InventoryUpdate", "ReserveInventory",
           "ReleaseInventory"},
    "p3": {"UserRegistered", "UserForgotten", "OrderCreated", "OrderStatusChanged",
           "ProcessPayment", "RefundPayment"},
}
acked = set(open(ids).read().split())
stores = {}
for name, path in zip(names, paths):
    stores[name] = [json.loads(line) for line in open(path)]
problems = []

# one store's id is unique: a repeated id would be an event stored twice
for name, events in stores.items():
    dup = [i for i, n in collections.Counter(e["id"] for e in events).items() if n > 1]
    if dup:
        problems.append(f"{name}: {len(dup)} event ids stored twice, e.g. {dup[0]}")

# delivery: what one service wrote and another reads is there
index = {name: {e["id"]: e for e in events} for name, events in stores.items()}
delivered = collections.Counter()
for sender in names:
    for e in stores[sender]:
        if e["kind"] != "integration" or e["source"] not in contexts[sender]:
            continue
        for reader in names:
            if reader == sender or e["type"] not in reads[reader]:
                continue
            got = index[reader].get(e["id"])
            if got is None:
                problems.append(f"{e['type']} {e['id']} of {sender} ({e['stream']}) "
                                f"never reached {reader}")
            elif got["stream"] != e["stream"] or got["type"] != e["type"]:
                problems.append(f"{e['id']} reached {reader} as {got['type']} in {got['stream']}")
            else:
                delivered[(sender, reader)] += 1
print("delivered: " + ", ".join(f"{s}->{r} {n}" for (s, r), n in sorted(delivered.items())))

# order: in each stream, the events two stores share come in the same order
out_of_order = 0
for a in names:
    for b in names:
        if a >= b:
            continue
        streams = collections.defaultdict(list)
        for e in stores[a]:
            other = index[b].get(e["id"])
            if other is not None:
                streams[e["stream"]].append((e["position"], other["position"], e["id"]))
        for stream, pairs in streams.items():
            pairs.sort()
            for (_, pb1, id1), (_, pb2, id2) in zip(pairs, pairs[1:]):
                if pb2 <= pb1:
                    out_of_order += 1
                    if out_of_order <= 3:
                        problems.append(f"stream {stream}: {id1} before {id2} in {a}, "
                                        f"after it in {b}")
print(f"per-stream order: {out_of_order} events out of order between the stores")

# effects once
def count(store, type_, key):
    c = collections.Counter()
    for e in stores[store]:
        if e["type"] == type_:
            c[key(e["data"])] += 1
    return c

for store in ("p3", "p1"):
    paid = count(store, "PaymentProcessed", lambda d: d.get("order_id"))
    wrong = [o for o in acked if paid[o] != 1]
    if wrong:
        problems.append(f"{store}: {len(wrong)} acknowledged orders without exactly one "
                        f"PaymentProcessed, e.g. {wrong[0]} ({paid[wrong[0]]})")
    extra = [o for o in paid if o not in acked]
    print(f"{store}: {sum(paid.values())} PaymentProcessed for {len(acked)} acknowledged orders"
          f" ({len(extra)} for orders never acknowledged)")
reserved = count("p2", "StockReserved", lambda d: (d.get("order_id"), d.get("product_id")))
twice = [k for k, n in reserved.items() if n > 1]
if twice:
    problems.append(f"p2: {len(twice)} order lines reserved more than once, e.g. {twice[0]}")
unreserved = acked - {o for o, _ in reserved}
if unreserved:
    problems.append(f"p2: {len(unreserved)} acknowledged orders never reserved, "
                    f"e.g. {sorted(unreserved)[0]}")
print(f"p2: {sum(reserved.values())} StockReserved for {len(reserved)} order lines")
for p in problems[:10]:
    print("PROBLEM:", p)
sys.exit(1 if problems else 0)
