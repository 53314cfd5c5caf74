#!/usr/bin/env python3
# check_orders.py IDS ORDERS MAIL STOCK: what the resilience tests check
# after their faults. IDS: the acknowledged order ids, a line each; ORDERS:
# `tidings events --category order` (JSON lines); MAIL: the mail spool;
# STOCK: "PRODUCT STOCK" lines read from the shop at the end. Every
# acknowledged order is there and final, none cancelled, each has exactly
# one order_received and one order_confirmed e-mail, and each product's
# stock plus the units of its paid orders is the 1,000,000 `shop load`
# gave it. Prints what it found; exits 1 naming the first problems.
import collections, json, re, sys
ids, orders, mail, stock = sys.argv[1:5]
acked = set(open(ids).read().split())
created, status, reasons, units = {}, {}, collections.Counter(), collections.Counter()
for line in open(orders):
    ev = json.loads(line)
    d = ev["data"]
    if ev["type"] == "OrderCreated":
        created[d["order_id"]] = d["items"]
    elif ev["type"] == "OrderStatusChanged":
        status[d["order_id"]] = d["to_status"]
        if d["to_status"] == "Cancelled":
            reasons[d.get("reason")] += 1
problems = []
lost = acked - set(created)
if lost:
    problems.append(f"{len(lost)} acknowledged orders lost, e.g. {sorted(lost)[0]}")
final = {o: s for o, s in status.items() if s in ("Processing", "Cancelled")}
unfinished = [o for o in created if o not in final]
if unfinished:
    problems.append(f"{len(unfinished)} orders not final, e.g. {unfinished[0]}")
cancelled = sum(reasons.values())
print(f"orders: {len(acked)} acknowledged, {len(created)} created, {cancelled} cancelled "
      f"({dict(reasons)})")
print(f"figure: cancelled_payment_timeout {reasons['payment_timeout']}")
if cancelled:
    problems.append(f"{cancelled} orders cancelled: {dict(reasons)}")
text = open(mail, encoding="utf-8", errors="replace").read()
kinds = collections.Counter(re.findall(r"X-Order-Id: (\S+)\r?\nX-Email-Kind: (\S+)", text))
for o in created:
    for kind in ("order_received", "order_confirmed"):
        if kinds[(o, kind)] != 1:
            problems.append(f"order {o} has {kinds[(o, kind)]} {kind} e-mails")
            break
for o, s in final.items():
    if s == "Processing":
        for item in created.get(o, []):
            units[item["product_id"]] += item["quantity"]
for line in open(stock):
    product, left = line.split()
    if int(left) + units[product] != 1000000:
        problems.append(f"product {product}: stock {left} + {units[product]} sold != 1000000")
print(f"e-mails: {sum(kinds.values())} for {len(created)} orders; stock checked for "
      f"{sum(1 for _ in open(stock))} products")
for p in problems[:10]:
    print("PROBLEM:", p)
sys.exit(1 if problems else 0)
