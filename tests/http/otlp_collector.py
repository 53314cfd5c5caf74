#!/usr/bin/env python3
"""otlp_collector.py: a tiny OpenTelemetry collector for the tests: accepts
OTLP/HTTP JSON on 127.0.0.1 (a free port), records each request, and answers
200 {} after DELAY seconds (a slow collector when DELAY > 0).

usage: otlp_collector.py PORT_FILE RECORD_FILE DELAY
Writes the port to PORT_FILE once listening; appends one JSON line per
request to RECORD_FILE: {"path", "content_type", "body"}. Exits after 120 s
in any case.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port_file, record_file, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
lock = threading.Lock()


class Collector(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with lock, open(record_file, "a", encoding="utf-8") as f:
            f.write(json.dumps({"path": self.path,
                                "content_type": self.headers.get("Content-Type"),
                                "body": body.decode("utf-8", "replace")}) + "\n")
        time.sleep(delay)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
server.daemon_threads = True
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
threading.Timer(120, server.shutdown).start()
server.serve_forever()
