# Sourced after common.sh: browse FILE.html NAME opens a report in Debian's chromium (headless) with its
# #selftest, fails on a JavaScript error or any network request the page made (chromium's net log), saves a
# screenshot in $OUT/NAME.png and prints the selftest's JSON. Needs DEBIAN_PY and OUT set.
CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$CHROMIUM" ] || fail "chromium missing: make deps installs it (Debian package chromium)"
OUT="${FSRACE_TEST_OUT:-$TMP/out}"
mkdir -p "$OUT"
# chromium's own background traffic (component updates, network time, safe browsing) off: what is left
# in the net log is the page's
QUIET_FLAGS="--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking --disable-component-update
  --disable-sync --disable-default-apps --disable-domain-reliability --disable-client-side-phishing-detection
  --disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,AutofillServerCommunication"

browse() {  # browse FILE.html NAME: selftest JSON on stdout, screenshot in $OUT/NAME.png
  local html="$1" name="$2" prof="$TMP/prof-$2"
  local t0=$(date +%s%N)
  timeout 120 "$CHROMIUM" $QUIET_FLAGS --user-data-dir="$prof" --log-net-log="$TMP/$name.netlog.json" \
    --enable-logging=stderr --v=0 --virtual-time-budget=5000 --dump-dom "file://$html#selftest" >"$TMP/$name.dom" 2>"$TMP/$name.err" \
    || { tail -5 "$TMP/$name.err"; fail "chromium could not load $html"; }
  local t1=$(date +%s%N)
  echo "chromium load + selftest of $name: $(( (t1 - t0) / 1000000 )) ms" >&2
  if grep -a "Uncaught\|SyntaxError\|TypeError\|ReferenceError" "$TMP/$name.err"; then fail "JavaScript error in $name"; fi
  "$DEBIAN_PY" "$TOP/tests/integration/page_requests.py" "$TMP/$name.netlog.json" >"$TMP/$name.requests" \
    || { head -3 "$TMP/$name.requests"; fail "$name made a network request"; }
  timeout 120 "$CHROMIUM" $QUIET_FLAGS --user-data-dir="$prof" --hide-scrollbars --window-size=1400,2200 \
    --screenshot="$OUT/$name.png" "file://$html" >/dev/null 2>&1 || fail "chromium screenshot of $html failed"
  [ -s "$OUT/$name.png" ] || fail "no screenshot $OUT/$name.png"
  grep -o '<pre id="selftest-result">[^<]*' "$TMP/$name.dom" | sed 's/.*>//' | sed 's/&quot;/"/g'
}

