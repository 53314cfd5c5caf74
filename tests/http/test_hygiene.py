#!/usr/bin/env python3
"""test_hygiene.py: HTTP hygiene and the shop's limits, over raw sockets
against a real `shop serve` started with small limits:

- conflicting Content-Length headers are refused (400) and the connection
  closed; Expect: 100-continue with a body over the limit gets 413 before
  the body is sent;
- HEAD works on every GET route, with GET's headers and no body, and 405's
  Allow names HEAD beside GET;
- a client that sends its request head a byte at a time is cut at the head
  deadline, one that stalls in its body at the body deadline; both counted;
- connections beyond the cap per client address are refused while others'
  are served; live feeds beyond the cap per client get 503 too_many_feeds
  with Retry-After;
- requests beyond the rate per client address get 429 with Retry-After,
  counted in /metrics;
- Idempotency-Key: a request refused for its input leaves no record, a
  kept answer expires, and concurrent requests with one key get the
  winner's answer (or 409 request_in_progress), never
  request_already_applied, and one order.

The shops' stores are on the backend under test (TD_TEST_STORE): the
idempotency records live there.

Usage: test_hygiene.py SHOP
"""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import shop_server  # noqa: E402

SHOP = sys.argv[1]
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what, flush=True)


class Server(shop_server.Server):
    def __init__(self, *args):
        super().__init__(SHOP, *args, backend_store=True)

    def stop(self):
        check(super().stop() == 0, "the shop did not stop cleanly")


def metric(server, name):
    _, _, text = server.call("GET", "/metrics")
    total = 0.0
    for line in text.decode().splitlines():
        if line.startswith(name):
            total += float(line.split()[-1])
    return total


def order_body(product):
    return {"items": [{"product_id": product, "quantity": 1}],
            "shipping_address": {"line1": "1", "city": "C", "postal_code": "1",
                                 "country": "US"},
            "payment": {"method": "card", "token": "tok_visa"}}


def customer(server, name):
    email = "%s-%d@example.com" % (name, time.time_ns())
    server.call("POST", "/users", {"email": email, "full_name": name,
                                   "password": "long enough pw"}, token=False)
    _, _, body = server.call("POST", "/sessions", {"email": email,
                                                   "password": "long enough pw"}, token=False)
    return json.loads(body)["token"]


def framing_and_head(server):
    r = server.raw(b"POST /users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 2\r\nContent-Length: 5\r\n\r\n{}")
    check(r.startswith("HTTP/1.1 400") and "conflicting_content_length" in r and
          "Connection: close" in r, "conflicting Content-Length: " + r[:200])
    s = socket.create_connection(("127.0.0.1", server.port), timeout=3)
    s.sendall(b"POST /users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              b"Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n")
    answer = s.recv(4096).decode(errors="replace")  # before any body byte
    s.close()
    check(answer.startswith("HTTP/1.1 413") and "problem+json" in answer,
          "Expect: 100-continue over the limit: " + answer[:200])
    _, _, body = server.call("POST", "/products", {"name": "Pen", "price": 1, "currency": "USD",
                                                   "stock": 100000})
    product = json.loads(body)["id"]
    for path in ["/products", "/products/" + product, "/categories", "/health", "/metrics",
                 "/events", "/dead-letters", "/streams/product-" + product, "/sessions/current",
                 "/events/stream"]:
        gs, gh, _ = server.call("GET", path) if path != "/events/stream" else (200, {
            "Content-Type": "text/event-stream"}, b"")
        try:
            hs, hh, hb = server.call("HEAD", path)
        except OSError as e:
            raise SystemExit("HEAD %s: %s" % (path, e))
        check(hs == gs and hb == b"" and hh.get("Content-Type") == gh.get("Content-Type"),
              "HEAD %s: %s %s %r" % (path, hs, hh.get("Content-Type"), hb[:50]))
    status, headers, _ = server.call("DELETE", "/products")
    check(status == 405 and "HEAD" in headers.get("Allow", ""), "Allow: %s" % headers)
    return product


def deadlines(server):
    before = metric(server, "http_connections_cut_total")
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    start = time.monotonic()
    cut = False
    try:
        for c in b"GET /products HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100:
            s.sendall(bytes([c]))
            time.sleep(0.5)
            if time.monotonic() - start > 8:
                break
    except (BrokenPipeError, ConnectionResetError):
        cut = True
    if not cut:
        try:
            cut = s.recv(100) == b""
        except (ConnectionResetError, socket.timeout):
            cut = True
    elapsed = time.monotonic() - start
    s.close()
    check(cut and elapsed < 6, "a slow head was not cut at its deadline (%.1f s)" % elapsed)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(b"POST /users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{")
    start = time.monotonic()
    try:
        data = s.recv(1000)
    except (ConnectionResetError, socket.timeout):
        data = b""
    elapsed = time.monotonic() - start
    s.close()
    check(data == b"" and elapsed < 6, "a stalled body was not cut (%.1f s)" % elapsed)
    check(metric(server, "http_connections_cut_total") >= before + 2, "cuts are not counted")


def caps(server):
    held = []
    for _ in range(4):  # the cap per client address
        held.append(socket.create_connection(("127.0.0.1", server.port), source_address=(
            "127.0.0.9", 0)))
    time.sleep(0.2)
    r = server.raw(b"GET /products HTTP/1.1\r\nHost: localhost\r\n\r\n", wait=1,
                   source="127.0.0.9")
    check(not r.startswith("HTTP/1.1 200"), "a fifth connection from one address was served")
    status, _, _ = server.call("GET", "/products")  # another address
    check(status == 200, "another client was refused while one was at its cap: %s" % status)
    for s in held:
        s.close()
    feeds = []
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", server.port),
                                     source_address=("127.0.0.10", 0))
        s.sendall(("GET /events/stream?type=Nothing HTTP/1.1\r\nHost: localhost\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % server.key).encode())
        feeds.append(s)
    time.sleep(0.3)
    answers = []
    for s in feeds:
        s.settimeout(1)
        try:
            answers.append(s.recv(2000).decode(errors="replace"))
        except socket.timeout:
            answers.append("")
        s.close()
    check(sum(a.startswith("HTTP/1.1 200") for a in answers) == 2 and
          any(a.startswith("HTTP/1.1 503") and "too_many_feeds" in a and "Retry-After" in a
              for a in answers), "feeds per client: %s" % [a[:40] for a in answers])


def rate_limit(server):
    before = metric(server, "http_rate_limited_total")
    codes = []
    for _ in range(30):
        r = server.raw(b"GET /categories HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                       source="127.0.0.11")
        codes.append(r[9:12])
    check(codes.count("429") > 0 and codes.count("200") >= 10,
          "requests per client are not limited: %s" % codes)
    r = server.raw(b"GET /categories HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                   source="127.0.0.11")
    check("Retry-After:" in r and "too_many_requests" in r, "429 answer: " + r[:300])
    check(metric(server, "http_rate_limited_total") > before, "429s are not counted")


def idempotency(server, product):
    token = customer(server, "idem")
    status, _, body = server.call("POST", "/orders", {"items": []}, token=token,
                                  headers={"Idempotency-Key": "k-refused"})
    check(status in (400, 422), "a bad order: %s" % status)
    status, _, body = server.call("POST", "/orders", order_body(product), token=token,
                                  headers={"Idempotency-Key": "k-refused"})
    check(status == 202, "a refused request left a record: %s %s" % (status, body[:200]))
    status, _, first = server.call("POST", "/orders", order_body(product), token=token,
                                   headers={"Idempotency-Key": "k-expires"})
    check(status == 202, "keyed order: %s" % status)
    time.sleep(2.5)  # the server keeps answers 2 s here
    other = dict(order_body(product), items=[{"product_id": product, "quantity": 2}])
    status, _, _ = server.call("POST", "/orders", other, token=token,
                               headers={"Idempotency-Key": "k-expires"})
    check(status == 202, "an expired record still answered: %s" % status)
    before = len(json.loads(server.call("GET", "/events?type=OrderCreated&limit=1000")[2])[
        "events"])
    results = []

    def send(i):  # from addresses of their own, as eight clients would be
        results.append(server.call("POST", "/orders", order_body(product), token=token,
                                   headers={"Idempotency-Key": "k-race"},
                                   source="127.0.1.%d" % (i + 1)))
    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = set()
    for status, headers, body in results:
        answer = json.loads(body)
        check(status == 202 or (status == 409 and answer["code"] == "request_in_progress"),
              "a concurrent keyed request: %s %s" % (status, body[:200]))
        if status == 202:
            ids.add(answer["id"])
    time.sleep(0.3)
    after = len(json.loads(server.call("GET", "/events?type=OrderCreated&limit=1000")[2])[
        "events"])
    check(len(ids) == 1 and after == before + 1,
          "concurrent keyed requests: %d ids, %d orders made" % (len(ids), after - before))


def main():
    server = Server("--head-timeout", "3", "--body-timeout", "3", "--idempotency-ttl", "2")
    try:
        product = framing_and_head(server)
        deadlines(server)
        idempotency(server, product)
    finally:
        server.stop()
    # Caps on a server of their own: a closed connection counts against its
    # address until the server has seen it close, so sequential requests
    # from one address could meet a cap this small on a busy machine.
    capped = Server("--max-connections-per-client", "4", "--max-feeds-per-client", "2")
    try:
        caps(capped)
    finally:
        capped.stop()
    limited = Server("--rate-limit", "10")
    try:
        rate_limit(limited)
    finally:
        limited.stop()
    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("ok")


main()
