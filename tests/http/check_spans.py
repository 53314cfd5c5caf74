#!/usr/bin/env python3
"""check_spans.py: checks the spans a collector recorded (otlp_collector.py)
and a trace file (shop serve --trace-file) hold whole traces.

usage: check_spans.py RECORD_FILE TRACE_FILE
  - every request went to /v1/traces as application/json, and each body is
    an ExportTraceServiceRequest (resourceSpans → scopeSpans → spans);
  - every span has a 32-hex trace id, a 16-hex span id, a kind, and times
    in nanoseconds (19 digits, end >= start);
  - every parentSpanId is the spanId of a span received: no parent missing;
  - appends and handler calls are there; the trace file holds the same spans.
Prints what it found; exits 1 on a problem.
"""
import json
import re
import sys


def spans_of(request):
    out = []
    for rs in request["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            out.extend(ss["spans"])
    return out


def check(spans, where, problems):
    ids = {s["spanId"] for s in spans}
    for s in spans:
        if not re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) or not re.fullmatch(r"[0-9a-f]{16}", s["spanId"]):
            problems.append(f"{where}: bad ids in {s['name']}")
        start, end = s["startTimeUnixNano"], s["endTimeUnixNano"]
        if not (re.fullmatch(r"\d{19}", start) and re.fullmatch(r"\d{19}", end) and int(end) >= int(start)):
            problems.append(f"{where}: times of {s['name']} are not nanoseconds in order: {start} {end}")
        if s["parentSpanId"] and s["parentSpanId"] not in ids:
            problems.append(f"{where}: {s['name']} has a parent that was never exported")
    names = {s["name"] for s in spans}
    for want in ("append OrderCreated", "handle OrderCreated", "append UserRegistered"):
        if want not in names:
            problems.append(f"{where}: no span '{want}' (have {sorted(names)[:8]}…)")
    if not any(s["parentSpanId"] == "" for s in spans):
        problems.append(f"{where}: no root span")


def main(record_file, trace_file):
    problems, received = [], []
    with open(record_file, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["path"] != "/v1/traces":
                problems.append(f"a request to {r['path']}")
            if not (r["content_type"] or "").startswith("application/json"):
                problems.append(f"a request as {r['content_type']}")
            received.extend(spans_of(json.loads(r["body"])))
    check(received, "collector", problems)
    with open(trace_file, encoding="utf-8") as f:
        in_file = [s for line in f for s in spans_of(json.loads(line))]
    check(in_file, "trace file", problems)
    if {s["spanId"] for s in in_file} != {s["spanId"] for s in received}:
        problems.append(f"the trace file holds {len(in_file)} spans, the collector got {len(received)}")
    for p in problems:
        print("FAIL:", p)
    print(f"{len(received)} spans from the collector, {len(in_file)} in the trace file, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
