#!/usr/bin/env python3
"""Prints the network requests a page made, from a chromium --log-net-log file: URL_REQUEST_START_JOB
events whose initiator is an origin (the browser's own background traffic has initiator "not an
origin"). Exit 0 if there were none, 1 otherwise (one URL per line)."""
import json
import sys

d = json.load(open(sys.argv[1]))
types = {v: k for k, v in d["constants"]["logEventTypes"].items()}
urls = []
for e in d.get("events", []):
    p = e.get("params") or {}
    if types.get(e.get("type")) == "URL_REQUEST_START_JOB" and "url" in p and p.get("initiator") != "not an origin":
        if not p["url"].startswith(("file:", "data:")):
            urls.append(f'{p["url"]} (initiator {p.get("initiator")})')
for u in urls:
    print(u)
sys.exit(1 if urls else 0)
