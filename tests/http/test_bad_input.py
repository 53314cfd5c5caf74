#!/usr/bin/env python3
"""test_bad_input.py: bad requests to the shop's HTTP API, as data.

Each file in the cases folder (tests/http/bad_input/*.case) is one bad
request and the answer it must get, lines of "key: value" (# starts a
comment line; a key the runner does not know is itself a failure):

  method: POST            the request (required)
  path: /users            its path and query (required)
  as: admin               whose credentials: anonymous, customer (a session
                          of the customer set up below), staff (a staff key)
                          or admin (the default)
  header: Name: value     an extra request header (any number)
  content_type: text/plain
                          the Content-Type; application/json by default
                          when there is a body, none without one (or when
                          given empty)
  body: {"email":         the body, the rest of the line as it is
  body_from: "[" * 4000   or: the body as a python expression (str or bytes,
                          for bodies too long or too odd to write out)
  status: 400             the status the answer must have (required)
  code: malformed_json    its problem's code (required)
  field: /email           its problem's field (a JSON Pointer), if given
  detail: not JSON        a part of its problem's detail, if given
  allow: POST             its Allow header, if given

In path, body and body_from, {user} and {product} stand for the customer's
user id and a product's id, made before the first case (the customer is
http@example.com, the product a Pen at 150 USD with 100 in stock).

One `shop serve` answers every case, its store on the backend under test
(TD_TEST_STORE: SQLite, or a schema of its own on the tests' PostgreSQL
server). Every answer must be application/problem+json with the status and
code; and after each case the store must be as it was: the same head in
GET /health (no event appended), and the same documents the cases could
touch (the product, the products list, the customer, their orders, the
categories).

With TD_HTTP_RECORD=FILE, every exchange is written to FILE as a JSON line
(method, path, status, content_type, body), for the check of the answers
against docs/openapi.yaml (tests/openapi/check_responses.mjs).

Usage: test_bad_input.py SHOP CASES_DIR
"""
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import shop_server  # noqa: E402

SHOP, CASES = sys.argv[1], sys.argv[2]
KEYS = {"method", "path", "as", "header", "content_type", "body", "body_from", "status", "code",
        "field", "detail", "allow"}
REPEATABLE = {"header"}
REQUIRED = {"method", "path", "status", "code"}
WHO = {"anonymous", "customer", "staff", "admin"}


class CaseError(Exception):
    """A case file that cannot be run as written."""


def parse(path):
    """The case in path as a dict (header: a list); raises CaseError."""
    case = {"header": []}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            key, sep, value = line.partition(": ")
            if not sep and line.endswith(":"):
                key, value = line[:-1], ""
            elif not sep:
                raise CaseError("line %d is not 'key: value': %r" % (number, line))
            if key not in KEYS:
                raise CaseError("line %d: unknown key %r" % (number, key))
            if key in REPEATABLE:
                case[key].append(value)
            elif key in case:
                raise CaseError("line %d: %r given twice" % (number, key))
            else:
                case[key] = value
    missing = REQUIRED - case.keys()
    if missing:
        raise CaseError("no " + ", ".join(sorted(missing)))
    if "body" in case and "body_from" in case:
        raise CaseError("both body and body_from")
    if case.get("as", "admin") not in WHO:
        raise CaseError("as: %r is none of %s" % (case["as"], ", ".join(sorted(WHO))))
    if not case["status"].isdigit():
        raise CaseError("status: %r is not a number" % case["status"])
    return case


class Shop:
    """The one shop the cases run against, with what they refer to."""

    def __init__(self):
        # --auth-limit: the cases register and log in far more often than
        # one client would, and must not meet the throttle instead.
        self.server = shop_server.Server(SHOP, "--payment-timeout", "400", "--auth-limit",
                                         "100000", backend_store=True)
        self.record = os.environ.get("TD_HTTP_RECORD", "")
        if self.record:
            open(self.record, "w").close()
        user = self.expect(201, "POST", "/users", {
            "email": "http@example.com", "full_name": "H T", "password": "long enough pw"})
        product = self.expect(201, "POST", "/products", {
            "name": "Pen", "price": 150, "currency": "USD", "stock": 100})
        session = self.expect(201, "POST", "/sessions", {
            "email": "http@example.com", "password": "long enough pw"}, token=False)
        staff = subprocess.run([SHOP, "keys", "create", "--role", "staff", "--name", "staff1",
                                "--db", self.server.db], capture_output=True, text=True)
        if staff.returncode != 0:
            raise SystemExit("cannot make a staff key: " + staff.stderr)
        self.values = {"user": user["id"], "product": product["id"]}
        self.tokens = {"anonymous": False, "customer": session["token"],
                       "staff": staff.stdout.strip(), "admin": None}

    def expect(self, status, method, path, body=None, token=None):
        got, _, answer = self.server.call(method, path, body, token=token)
        if got != status:
            raise SystemExit("%s %s: %d, expected %d: %s" % (method, path, got, status, answer))
        return json.loads(answer)

    def fill(self, text):
        for name, value in self.values.items():
            text = text.replace("{%s}" % name, value)
        return text

    def head(self):
        return self.expect(200, "GET", "/health")["head"]

    def wait_quiet(self):
        """Until the head stays put for 0.2 s (the saga and read models
        done with what the set-up wrote)."""
        before, now = -1, self.head()
        while now != before:
            time.sleep(0.2)
            before, now = now, self.head()

    def state(self):
        """What a bad request must leave as it was."""
        product, user = self.values["product"], self.values["user"]
        return {
            "head": self.head(),
            "product": self.expect(200, "GET", "/products/" + product),
            "products": self.expect(200, "GET", "/products?limit=500"),
            "user": self.expect(200, "GET", "/users/" + user),
            "orders": self.expect(200, "GET", "/users/%s/orders" % user),
            "categories": self.expect(200, "GET", "/categories"),
        }

    def send(self, case):
        """The case's request: (status, headers, body bytes)."""
        if "body_from" in case:
            body = eval(case["body_from"], {"__builtins__": {}}, dict(self.values))
        elif "body" in case:
            body = self.fill(case["body"])
        else:
            body = None
        if isinstance(body, str):
            body = body.encode()
        if body is not None and not isinstance(body, bytes):
            raise CaseError("body_from gave a %s, not str or bytes" % type(body).__name__)
        headers = {}
        for h in case["header"]:
            name, _, value = h.partition(": ")
            headers[name] = value
        content_type = case.get("content_type", "application/json" if body is not None else "")
        headers["Content-Type"] = content_type or None  # None: no Content-Type at all
        path = self.fill(case["path"])
        status, got_headers, answer = self.server.call(
            case["method"], path, body, headers=headers, token=self.tokens[case.get("as", "admin")])
        self.write_record(case["method"], path, status, got_headers, answer)
        return status, got_headers, answer

    def write_record(self, method, path, status, headers, answer):
        if not self.record:
            return
        try:
            body = json.loads(answer) if answer else None
        except ValueError:
            body = answer.decode(errors="replace")
        line = {"method": method, "path": path, "status": status,
                "content_type": headers.get("Content-Type", "")}
        if body is not None:
            line["body"] = body
        with open(self.record, "a") as f:
            f.write(json.dumps(line) + "\n")


def problems_of(case, status, headers, answer):
    """What is wrong with the answer to case, as a list of sentences."""
    wrong = []
    if status != int(case["status"]):
        wrong.append("status %d, expected %s" % (status, case["status"]))
    content_type = headers.get("Content-Type", "")
    if not content_type.startswith("application/problem+json"):
        wrong.append("Content-Type %r, not application/problem+json" % content_type)
    try:
        problem = json.loads(answer)
    except ValueError:
        return wrong + ["the body is not JSON"]
    if not isinstance(problem, dict):
        return wrong + ["the body is not a problem object"]
    if problem.get("code") != case["code"]:
        wrong.append("code %r, expected %r" % (problem.get("code"), case["code"]))
    if problem.get("status") != status:
        wrong.append("the problem's status %r is not the answer's" % problem.get("status"))
    if "field" in case and problem.get("field") != case["field"]:
        wrong.append("field %r, expected %r" % (problem.get("field"), case["field"]))
    if "detail" in case and case["detail"] not in str(problem.get("detail", "")):
        wrong.append("detail %r lacks %r" % (problem.get("detail"), case["detail"]))
    if "allow" in case and headers.get("Allow") != case["allow"]:
        wrong.append("Allow %r, expected %r" % (headers.get("Allow"), case["allow"]))
    return wrong


def changes(before, after):
    """What differs between two states, as a list of sentences."""
    return ["%s changed: %s -> %s" % (k, json.dumps(before[k])[:300], json.dumps(after[k])[:300])
            for k in before if before[k] != after[k]]


def main():
    files = sorted(glob.glob(os.path.join(CASES, "*.case")))
    if not files:
        raise SystemExit("no cases in " + CASES)
    shop = Shop()
    passed = failed = 0
    try:
        shop.wait_quiet()
        before = shop.state()
        for path in files:
            name = os.path.basename(path)
            try:
                case = parse(path)
                status, headers, answer = shop.send(case)
                wrong = problems_of(case, status, headers, answer)
            except CaseError as e:
                wrong, answer = ["the case: %s" % e], b""
            after = shop.state()
            wrong += changes(before, after)
            if wrong:
                failed += 1
                print("FAIL %s: %s" % (name, "; ".join(wrong)))
                print("  answer: %s" % answer[:400].decode(errors="replace"))
            else:
                passed += 1
            before = after
        # what a request set going in the background would have written by now
        shop.wait_quiet()
        if shop.state() != before:
            failed += 1
            print("FAIL: the store changed after the last case: %s"
                  % "; ".join(changes(before, shop.state())))
    finally:
        log = shop.server.log()
        status = shop.server.stop()
        if status != 0:
            failed += 1
            print("FAIL: the shop did not stop cleanly (%d)" % status)
            print(log[-2000:])
    print("%d passed, %d failed (store: %s)"
          % (passed, failed, os.environ.get("TD_TEST_STORE", "sqlite")))
    sys.exit(1 if failed else 0)


main()
