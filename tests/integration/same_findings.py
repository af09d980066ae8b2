#!/usr/bin/env python3
"""Compares two findings.json documents (a run's and its re-analysis) after dropping what may differ
between two analyses of the same files: timing fields. Exit 0 if equal, 1 with the first differences."""
import json
import sys

TIMING = {"timing", "analysis_s"}


def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x


def diff(a, b, path="", out=None):
    out = [] if out is None else out
    if len(out) >= 10:
        return out
    if type(a) != type(b):
        out.append(f"{path}: {json.dumps(a)[:200]} != {json.dumps(b)[:200]}")
    elif isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'second' if k not in a else 'first'}")
            else:
                diff(a[k], b[k], f"{path}/{k}", out)
    elif isinstance(a, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} entries != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {json.dumps(a)[:200]} != {json.dumps(b)[:200]}")
    return out


def main():
    a, b = (strip(json.load(open(p))) for p in sys.argv[1:3])
    d = diff(a, b)
    if d:
        print(f"{sys.argv[1]} and {sys.argv[2]} differ:")
        for line in d:
            print("  " + line)
        return 1
    print(f"same findings: {sys.argv[1]} == {sys.argv[2]} ({len(a.get('findings', []))} findings, {len(a.get('cases', []))} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
