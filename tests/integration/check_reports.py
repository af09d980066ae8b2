#!/usr/bin/env python3
"""Checks the report files of a run directory (or a merged report directory) and exits 1 naming the
first problem: findings.json (the run's and every case's) against docs/schema/findings.schema.json,
junit.xml against tests/data/junit.xsd (xmllint), and trace.json for what each trace-event phase
requires: X has dur, b/e pairs balance per (cat, id), s/f flow ids pair up, every event has pid/ts.
Usage: check_reports.py DIR [--max-html-mb N] [--max-trace-mb N]"""
import argparse
import glob
import json
import os
import subprocess
import sys

import jsonschema

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check_findings(paths):
    schema = json.load(open(os.path.join(TOP, "docs", "schema", "findings.schema.json")))
    v = jsonschema.Draft202012Validator(schema)
    for p in paths:
        doc = json.load(open(p))
        errs = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
        if errs:
            e = errs[0]
            fail(f"{p}: {'/'.join(str(x) for x in e.path)}: {e.message[:300]}")
    print(f"ok: {len(paths)} findings.json valid against the schema")


def check_junit(path):
    xsd = os.path.join(TOP, "tests", "data", "junit.xsd")
    r = subprocess.run(["xmllint", "--noout", "--schema", xsd, path], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{path} does not validate against {xsd}: {r.stderr.strip()[:500]}")
    print("ok: junit.xml validates (xmllint --schema tests/data/junit.xsd)")


def check_trace(path):
    d = json.load(open(path))
    if not isinstance(d, dict) or not isinstance(d.get("traceEvents"), list):
        fail(f"{path}: no traceEvents array")
    opened, flows = {}, {}
    phases = {}
    for i, e in enumerate(d["traceEvents"]):
        ph = e.get("ph")
        phases[ph] = phases.get(ph, 0) + 1
        if ph not in ("X", "b", "e", "i", "s", "f", "M"):
            fail(f"event {i}: unexpected phase {ph!r}")
        if "pid" not in e:
            fail(f"event {i} ({ph}): no pid")
        if ph != "M" and not isinstance(e.get("ts"), (int, float)):
            fail(f"event {i} ({ph}): no numeric ts")
        if ph != "M" and "name" not in e:
            fail(f"event {i} ({ph}): no name")
        if ph == "X" and not (isinstance(e.get("dur"), (int, float)) and e["dur"] >= 0 and "tid" in e):
            fail(f"event {i}: X without dur >= 0 / tid")
        if ph == "i" and e.get("s") not in ("t", "p", "g"):
            fail(f"event {i}: instant without scope s")
        if ph in ("b", "e"):
            key = (e.get("cat"), e.get("id"), e.get("pid"))
            if e.get("id") is None:
                fail(f"event {i}: async {ph} without id")
            if ph == "b":
                if key in opened:
                    fail(f"event {i}: async id {key} opened twice")
                opened[key] = e["ts"]
            else:
                if key not in opened:
                    fail(f"event {i}: async end {key} without begin")
                if e["ts"] < opened.pop(key):
                    fail(f"event {i}: async end before its begin")
        if ph in ("s", "f"):
            flows.setdefault(e.get("id"), []).append(ph)
            if e.get("id") is None:
                fail(f"event {i}: flow without id")
    if opened:
        fail(f"{len(opened)} async slices never end, e.g. {next(iter(opened))}")
    for fid, ps in flows.items():
        if sorted(ps) != ["f", "s"]:
            fail(f"flow {fid}: phases {ps} (want one s and one f)")
    print(f"ok: trace.json {sum(phases.values())} events {dict(sorted(phases.items()))}, async balanced, {len(flows)} flows paired")
    return phases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--max-html-mb", type=float, default=5)
    ap.add_argument("--max-trace-mb", type=float, default=50)
    ap.add_argument("--want-flows", action="store_true")
    a = ap.parse_args()
    fj = [p for p in [os.path.join(a.dir, "findings.json")] + glob.glob(os.path.join(a.dir, "*", "findings.json")) if os.path.exists(p)]
    check_findings(fj)
    check_junit(os.path.join(a.dir, "junit.xml"))
    phases = check_trace(os.path.join(a.dir, "trace.json"))
    if a.want_flows and not phases.get("s"):
        fail("trace.json has no flow from a write to the read that should have seen it")
    for name, lim in (("report.html", a.max_html_mb), ("trace.json", a.max_trace_mb)):
        mb = os.path.getsize(os.path.join(a.dir, name)) / 1e6
        if mb > lim:
            fail(f"{name} is {mb:.1f} MB, over {lim} MB")
        print(f"ok: {name} {mb:.2f} MB (limit {lim} MB)")


if __name__ == "__main__":
    main()
