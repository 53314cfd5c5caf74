"""shop_server.py: a real `shop serve` for the python tests.

Server(shop, *args) starts the shop on a free loopback port (the kernel
picks it: --listen 127.0.0.1:0), its data in a temporary folder of its own,
its store there on SQLite or, with TD_TEST_STORE=postgres, in a schema of
its own on the tests' PostgreSQL server (store_url, as
tests/support/store_url.sh does for the shell tests). It waits for the
"listening on" line, reads the admin key the shop wrote to DATA/admin.key,
and stop() ends it with SIGTERM, returns its exit status and removes the
folder. call() sends one request on a connection of its own; raw() sends
bytes as they are.

The process is this object's: it is ended by its pid, never by name.
"""
import http.client
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

_schemas = itertools.count(1)


def pg_server_url():
    """The tests' PostgreSQL server: TD_TEST_PG_URL, or the url= line of the
    state file TD_TEST_PG_STATE that scripts/start-postgres.sh wrote."""
    url = os.environ.get("TD_TEST_PG_URL", "")
    if not url:
        try:
            with open(os.environ.get("TD_TEST_PG_STATE", "/nonexistent")) as state:
                for line in state:
                    if line.startswith("url="):
                        url = line[len("url="):].strip()
        except OSError:
            pass
    if not url:
        raise SystemExit("no PostgreSQL server for the tests: set TD_TEST_PG_URL or "
                         "TD_TEST_PG_STATE")
    return url


def store_url(folder, name):
    """A new store's URL for the backend under test (TD_TEST_STORE)."""
    if os.environ.get("TD_TEST_STORE", "sqlite") == "postgres":
        schema = "s%d_%d_%s" % (os.getpid(), next(_schemas), re.sub(r"[^a-z0-9]", "_", name))
        return "%s?options=-csearch_path%%3D%s" % (pg_server_url(), schema)
    return "sqlite:%s/%s.db" % (folder, name)


class Server:
    def __init__(self, shop, *args, backend_store=False):
        """Starts `shop serve ARGS`; with backend_store, its store is
        store_url()'s (else the shop's default, SQLite in DATA)."""
        self.shop = shop
        self.dir = tempfile.mkdtemp()
        self.data = os.path.join(self.dir, "data")
        self.db = None
        store = []
        if backend_store:
            os.mkdir(self.data, 0o700)
            self.db = store_url(self.data, "tidings")
            store = ["--db", self.db]
        self.out = open(os.path.join(self.dir, "out"), "w+")
        self.proc = subprocess.Popen(
            [shop, "serve", "--listen", "127.0.0.1:0", "--data", self.data, "--log-level",
             "error", *store, *args], stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            self.out.seek(0)
            log = self.out.read()
            m = re.search(r"listening on http://127.0.0.1:(\d+)", log)
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the shop did not start:\n" + log[-2000:])
            time.sleep(0.05)
        with open(os.path.join(self.data, "admin.key")) as key:
            self.key = key.read().strip()

    def stop(self):
        """SIGTERM; returns the shop's exit status (0: a clean stop)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            status = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return status

    def log(self):
        """What the shop has written so far."""
        with open(os.path.join(self.dir, "out"), errors="replace") as out:
            return out.read()

    def call(self, method, path, body=None, headers=None, token=None, source=None):
        """One request on a connection of its own (from source, an address):
        (status, headers, body bytes). body: JSON-encoded when not bytes;
        token: the bearer token (the admin key by default, False for none);
        headers: sent as given (Content-Type is application/json unless
        given; a header given as None is not sent)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30,
                                          source_address=(source, 0) if source else None)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        all_headers = {k: v for k, v in all_headers.items() if v is not None}
        if token is not False:
            all_headers["Authorization"] = "Bearer " + (token or self.key)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        try:
            conn.request(method, path, body=body, headers=all_headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the whole body went (413): the answer is there
        r = conn.getresponse()
        answer = r.status, dict(r.getheaders()), r.read()
        conn.close()
        return answer

    def raw(self, data, wait=2.0, source=None):
        """Sends data on a connection of its own; what came back until the
        shop closed it (or wait seconds passed), as text."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=wait,
                                     source_address=(source, 0) if source else None)
        out = b""
        try:
            s.sendall(data)
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass  # a refused connection may be reset rather than closed
        s.close()
        return out.decode(errors="replace")
