#!/usr/bin/env bash
# report.html in a real browser (Debian's chromium, headless): a run with findings (--inject-corruption)
# and a clean run. Asserts the report files are valid (check_reports.py: schema, XSD, trace phases),
# that the page's timeline has thread and kernel lanes and the highlighted read, that the wheel zoom
# changes the visible range, that no JS error occurred and the page loaded nothing (no resource, no
# http(s) request in chromium's net log), and saves screenshots in $FSRACE_TEST_OUT.
source "$(dirname "$0")/common.sh"
# Debian's python3 (python3-jsonschema from make deps), not whatever python3 comes first on PATH
DEBIAN_PY=/usr/bin/python3
"$DEBIAN_PY" -c "import jsonschema" 2>/dev/null || fail "python3-jsonschema missing: make deps installs it"
need_host ext4
source "$TOP/tests/integration/browser.sh"

# The request check can fail: a page that fetches an image is caught.
printf '<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/probe.png"></body></html>' >"$TMP/fetching.html"
timeout 60 "$CHROMIUM" $QUIET_FLAGS --user-data-dir="$TMP/prof-neg" --log-net-log="$TMP/neg.netlog.json" --dump-dom "file://$TMP/fetching.html" \
  >/dev/null 2>&1
"$DEBIAN_PY" "$TOP/tests/integration/page_requests.py" "$TMP/neg.netlog.json" >/dev/null && fail "the net-log check missed a page's request"

# A run with findings
"$FSRACE" run "$TOP/campaigns/default.toml" --fs ext4 --duration 3 --inject-corruption --results "$TMP/res" --workdir "$WORK" --quiet \
  >"$TMP/run.out" 2>&1
rc=$?
[ $rc = 1 ] || { tail -20 "$TMP/run.out"; fail "run with --inject-corruption exited $rc, want 1"; }
RUN="$(run_dir_of "$TMP/res")"
RUN="${RUN%/}"
for f in report.html trace.json junit.xml; do [ -s "$RUN/$f" ] || fail "the run did not write $f"; done
grep -q "report: $RUN/report.html" "$TMP/run.out" || fail "the run did not print where its report is"
"$DEBIAN_PY" "$TOP/tests/integration/check_reports.py" "$RUN" --want-flows || exit 1
st="$(browse "$RUN/report.html" findings)" || exit 1
echo "selftest: $st"
python3 - "$st" <<'PY' || exit 1
import json, sys
r = json.loads(sys.argv[1])
def need(c, m):
    if not c:
        print("FAIL:", m, r); sys.exit(1)
need(r["timelines"] >= 4, "a timeline per finding (4 injected)")
need(r["resources"] == 0, "the page loaded resources")
need(r["thread_lanes"] >= 1 and r["kernel_lanes"] >= 1, "thread and kernel lanes")
need(r["read_highlighted"] == 1, "the read that saw wrong data is highlighted")
need(r["expected_highlighted"] >= 1, "the op it should have seen is highlighted")
need(r["zoom_changed"] and r["view_after"][1] - r["view_after"][0] < r["view_before"][1] - r["view_before"][0], "wheel zoom narrows the view")
need(r["items_drawn"] >= 2, "items drawn")
print("ok: selftest", r)
PY
pass "report.html with findings renders in chromium (screenshot $OUT/findings.png)"

# A clean run renders too (no timeline, no error)
"$FSRACE" run "$TOP/campaigns/default.toml" --fs ext4 --duration 1 --results "$TMP/clean" --workdir "$WORK" --quiet >"$TMP/clean.out" 2>&1
rc=$?
[ $rc = 0 ] || { tail -20 "$TMP/clean.out"; fail "clean run exited $rc"; }
CLEAN="$(run_dir_of "$TMP/clean")"
CLEAN="${CLEAN%/}"
"$DEBIAN_PY" "$TOP/tests/integration/check_reports.py" "$CLEAN" || exit 1
st="$(browse "$CLEAN/report.html" clean)" || exit 1
echo "$st" | grep -q '"timelines":0' || fail "clean run: selftest $st"
grep -q "No finding" "$CLEAN/report.html" || fail "clean report does not say there was no finding"

# Merge: the two runs in one report
"$FSRACE" report "$RUN" "$CLEAN" --out "$TMP/merged" >/dev/null
[ $? = 1 ] || fail "merged report of a run with findings must exit 1"
"$DEBIAN_PY" "$TOP/tests/integration/check_reports.py" "$TMP/merged" || exit 1
st="$(browse "$TMP/merged/report.html" merged)" || exit 1
echo "$st" | grep -q '"zoom_changed":true' || fail "merged report: selftest $st"
assert_no_leftovers
pass "clean and merged reports render; screenshots in $OUT"
