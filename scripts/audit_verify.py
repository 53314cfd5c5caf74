#!/usr/bin/env python3
"""Check a `tidings audit export` file on its own, with no tidings code.

Each line is an event with its exact stored bytes (metadata_raw, data_raw)
and two links: prev_hash (the link before it) and hash (its own). A link is
SHA-256 over the previous link (32 bytes) followed by netstrings
("<decimal length>:<bytes>,") of: position, id, stream, version, type,
schema_version, kind, source, occurred_at in microseconds since the epoch,
correlation_id, causation_id, traceparent (absent: empty), metadata_raw,
data_raw. Lines must chain: each prev_hash is the previous line's hash, and
the readable data and metadata must be what the hashed raw bytes say.

Usage: audit_verify.py EXPORT.jsonl   (exit 0: ok; 1: the first bad line)
"""
import datetime
import hashlib
import json
import sys


def micros(text):
    when = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    when = when.replace(tzinfo=datetime.timezone.utc)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    delta = when - epoch
    return (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds


def netstring(value):
    data = value.encode("utf-8")
    return str(len(data)).encode() + b":" + data + b","


def link(prev, e):
    fields = [str(e["position"]), e["id"], e["stream"], str(e["version"]), e["type"],
              str(e["schema_version"]), e["kind"], e["source"] or "",
              str(micros(e["occurred_at"])), e["correlation_id"] or "",
              e["causation_id"] or "", e["traceparent"] or "", e["metadata_raw"],
              e["data_raw"]]
    return hashlib.sha256(prev + b"".join(netstring(f) for f in fields)).digest()


def main(path):
    previous = None
    count = 0
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            e = json.loads(line)
            prev = bytes.fromhex(e["prev_hash"])
            if previous is not None and prev != previous:
                print(f"line {number} (position {e['position']}): does not follow the line before")
                return 1
            if link(prev, e).hex() != e["hash"]:
                print(f"line {number} (position {e['position']}): its hash does not match its bytes")
                return 1
            if json.loads(e["data_raw"]) != e["data"] or json.loads(e["metadata_raw"]) != e["metadata"]:
                print(f"line {number} (position {e['position']}): data differs from the hashed bytes")
                return 1
            previous = bytes.fromhex(e["hash"])
            count += 1
    print(f"ok: {count} events verified")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]) if len(sys.argv) == 2 else 2)
