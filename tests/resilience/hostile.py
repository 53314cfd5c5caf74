#!/usr/bin/env python3
"""hostile.py: hostile clients against a running `shop serve`, and one
well-behaved client whose order placements are timed meanwhile.

Scenarios, each from ADDRESSES loopback addresses (127.0.0.0/8):
  idle N        N connections that send nothing
  slowloris N   N connections sending a request head one byte every 2 s
  feeds N       N live feeds (GET /events/stream) that match nothing
For each it prints, as one JSON line, what the attack saw and the
well-behaved client's placement latencies (p50, p99, max, failures).

Usage: hostile.py URL KEY_FILE SCENARIO N [SECONDS] [ADDRESSES]
"""
import asyncio
import json
import random
import socket
import statistics
import sys
import time
import urllib.request


def pct(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


class Shop:
    def __init__(self, url, key):
        self.url = url.rstrip("/")
        self.host, self.port = self.url.split("//")[1].split(":")
        self.port = int(self.port)
        self.key = key

    def call(self, method, path, body=None, token=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=json.dumps(body).encode() if body else None)
        req.add_header("Content-Type", "application/json")
        req.add_header("Authorization", "Bearer " + (token or self.key))
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")
        except (urllib.error.URLError, OSError) as e:
            return 0, {"detail": str(e)}


async def open_from(shop, address):
    return await asyncio.open_connection(shop.host, shop.port, local_addr=(address, 0))


def address(i, count):
    return "127.0.%d.%d" % (1 + (i % count) // 250, 1 + (i % count) % 250)


async def idle(shop, n, seconds, count):
    conns = []
    for i in range(n):
        try:
            conns.append(await open_from(shop, address(i, count)))
        except OSError:
            pass
    await asyncio.sleep(seconds)
    alive = 0
    for r, w in conns:
        if not r.at_eof():
            alive += 1
        w.close()
    return {"opened": len(conns)}


async def slowloris(shop, n, seconds, count):
    head = ("POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            "X-Padding: " + "a" * 4000 + "\r\n\r\n").encode()
    cut = 0

    async def one(i):
        nonlocal cut
        try:
            r, w = await open_from(shop, address(i, count))
        except OSError:
            return
        end = time.monotonic() + seconds
        k = 0
        try:
            while time.monotonic() < end and k < len(head):
                w.write(head[k:k + 1])
                await w.drain()
                k += 1
                await asyncio.sleep(2)
                if r.at_eof():
                    break
        except (ConnectionError, OSError):
            pass
        if time.monotonic() < end:
            cut += 1
        w.close()
    await asyncio.gather(*(one(i) for i in range(n)))
    return {"cut_before_the_end": cut}


async def feeds(shop, n, seconds, count):
    opened = refused = 0
    conns = []
    for i in range(n):
        try:
            r, w = await open_from(shop, address(i, count))
        except OSError:
            refused += 1
            continue
        w.write(("GET /events/stream?stream=order-%032x HTTP/1.1\r\nHost: localhost\r\n"
                 "Authorization: Bearer %s\r\n\r\n" % (i, shop.key)).encode())
        conns.append((r, w))
    await asyncio.sleep(1)
    statuses = {}
    for r, w in conns:
        try:
            line = await asyncio.wait_for(r.readline(), 0.05)
            code = line.split()[1].decode() if line else "closed"
        except (asyncio.TimeoutError, IndexError, ConnectionError):
            code = "none"
        statuses[code] = statuses.get(code, 0) + 1
    await asyncio.sleep(seconds)
    for r, w in conns:
        w.close()
    return {"statuses": statuses, "refused_connects": refused}


def setup(shop):
    status, product = shop.call("POST", "/products",
                                {"name": "Hostile", "price": 100, "currency": "USD",
                                 "stock": 10000000})
    assert status == 201, (status, product)
    email = "polite-%d@example.com" % random.randrange(1 << 40)
    status, user = shop.call("POST", "/users", {"email": email, "full_name": "Polite",
                                                "password": "polite client"}, token="")
    assert status == 201, (status, user)
    status, session = shop.call("POST", "/sessions", {"email": email,
                                                      "password": "polite client"}, token="")
    assert status == 201, (status, session)
    return product["id"], session["token"]


def order_body(product):
    return {"items": [{"product_id": product, "quantity": 1}],
            "shipping_address": {"line1": "1 Polite St", "city": "Calm", "postal_code": "1",
                                 "country": "US"},
            "payment": {"method": "card", "token": "tok_visa"}}


def polite(shop, product, token, stop, out):
    """Places orders one after another over fresh connections until stop."""
    while not stop.is_set():
        start = time.monotonic()
        status, _ = shop.call("POST", "/orders", order_body(product), token=token)
        out.append((time.monotonic() - start, status))
        time.sleep(0.02)


async def main():
    url, key_file, scenario, n = sys.argv[1:5]
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 10
    count = int(sys.argv[6]) if len(sys.argv) > 6 else 100
    shop = Shop(url, open(key_file).read().strip())
    product, token = setup(shop)
    import threading
    stop = threading.Event()
    samples = []
    t = threading.Thread(target=polite, args=(shop, product, token, stop, samples))
    await asyncio.sleep(0)
    started = time.monotonic()
    attack = {"idle": idle, "slowloris": slowloris, "feeds": feeds}[scenario]
    task = asyncio.ensure_future(attack(shop, int(n), seconds, count))
    await asyncio.sleep(2)  # the attack is under way
    t.start()
    result = await task
    stop.set()
    t.join()
    lat = [s[0] * 1000 for s in samples]
    failures = sum(1 for s in samples if s[1] != 202)
    statuses = {}
    for s in samples:
        statuses[str(s[1])] = statuses.get(str(s[1]), 0) + 1
    print(json.dumps({"scenario": scenario, "n": int(n), "attack": result,
                      "placements": len(samples), "failures": failures, "statuses": statuses,
                      "p50_ms": round(pct(lat, 0.5), 1), "p99_ms": round(pct(lat, 0.99), 1),
                      "max_ms": round(max(lat) if lat else 0, 1),
                      "seconds": round(time.monotonic() - started, 1)}))


if __name__ == "__main__":
    asyncio.run(main())
