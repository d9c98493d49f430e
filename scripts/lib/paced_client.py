#!/usr/bin/env python3
"""Paced client for scripts/bench-flood: POST /v1/predict at a fixed rate on one keep-alive
connection for a fixed time, then print one JSON line: {"sent", "ok", "failed", "p50_ms", "p99_ms"}.

  paced_client.py URL KEY RATE SECONDS

A request is "failed" when its status is not 200 or it raised; latency is measured per request.
Stops by itself after SECONDS (each request has a 5 s timeout).
"""
import http.client
import json
import sys
import time
import urllib.parse

url, key, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
parts = urllib.parse.urlsplit(url)
body = json.dumps({"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}})
headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
latencies, ok, failed = [], 0, 0
start = time.monotonic()
interval = 1 / rate
n = 0
while True:
    due = start + n * interval
    if due - start >= seconds:
        break
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    n += 1
    began = time.monotonic()
    try:
        connection.request("POST", parts.path or "/v1/predict", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status == 200:
            ok += 1
        else:
            failed += 1
    except Exception:
        failed += 1
        connection.close()
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    latencies.append(time.monotonic() - began)
latencies.sort()


def percentile(q):
    return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2) if latencies else None


print(json.dumps({"sent": n, "ok": ok, "failed": failed, "p50_ms": percentile(0.5), "p99_ms": percentile(0.99)}))
