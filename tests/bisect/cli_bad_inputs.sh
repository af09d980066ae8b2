#!/usr/bin/env bash
# fsrace bisect / fsrace run --bisect-exit through the fsrace binary: every bad input is one line on stderr
# and exit 2 (no root, no kernel needed). The bisection itself: kernels/test_bisect*.py.
set -u
FSRACE="${FSRACE_BIN:?FSRACE_BIN is the fsrace binary}"
TOP="$(cd "$(dirname "$0")/../.." && pwd)"
export FSRACE_TOP="$TOP"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fails=0
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

expect() {  # expect RC NAME PATTERN CMD...
  local want="$1" name="$2" pat="$3"
  shift 3
  "$@" > "$TMP/o" 2> "$TMP/e" < /dev/null
  local rc=$?
  if [ "$rc" != "$want" ]; then cat "$TMP/o" "$TMP/e"; fail "$name: exit $rc, expected $want"; return; fi
  if [ "$want" = 2 ] && [ "$(wc -l < "$TMP/e")" != 1 ]; then cat "$TMP/e"; fail "$name: error is not one line"; return; fi
  if grep -q Traceback "$TMP/e"; then cat "$TMP/e"; fail "$name: a Python traceback"; return; fi
  if [ -n "$pat" ] && ! grep -q -- "$pat" "$TMP/e"; then cat "$TMP/e"; fail "$name: stderr does not say '$pat'"; return; fi
  pass "$name: $(head -1 "$TMP/e")"
}

# a small repository: good -> 3 commits -> bad, and a side branch
R="$TMP/repo"
git init -q -b main "$R"
g() { git -C "$R" -c user.name=t -c user.email=t@e "$@"; }
echo 0 > "$R/f"; g add -A; g commit -qm good; g tag good
for i in 1 2 3; do echo $i > "$R/f"; g commit -qam "c$i"; done
g tag bad
g checkout -q -b side good; echo s > "$R/s"; g add -A; g commit -qm side; g tag side; g checkout -q main
C="$TMP/c.toml"; echo "# campaign" > "$C"
ok=(--build-cmd "true" --test-cmd "true")
B=("$FSRACE" bisect --out "$TMP/out")

expect 2 "not a git tree" "is not a git work tree" "${B[@]}" --src "$TMP" --good good --bad bad --campaign "$C" "${ok[@]}"
expect 2 "no such src" "no such directory" "${B[@]}" --src "$TMP/nope" --good good --bad bad --campaign "$C" "${ok[@]}"
expect 2 "unknown good" "--good nosuch: unknown revision" "${B[@]}" --src "$R" --good nosuch --bad bad --campaign "$C" "${ok[@]}"
expect 2 "unknown bad" "--bad v9: unknown revision" "${B[@]}" --src "$R" --good good --bad v9 --campaign "$C" "${ok[@]}"
expect 2 "good not ancestor" "is not an ancestor" "${B[@]}" --src "$R" --good side --bad bad --campaign "$C" "${ok[@]}"
expect 2 "good is bad" "the same commit" "${B[@]}" --src "$R" --good bad --bad bad --campaign "$C" "${ok[@]}"
expect 2 "missing campaign" "--campaign" "${B[@]}" --src "$R" --good good --bad bad --campaign "$TMP/none.toml" "${ok[@]}"
expect 2 "unknown placeholder" "unknown placeholder {img}" "${B[@]}" --src "$R" --good good --bad bad --campaign "$C" --build-cmd true --test-cmd "run {img}"
expect 2 "bad quoting" "fix the quoting" "${B[@]}" --src "$R" --good good --bad bad --campaign "$C" --build-cmd "x 'y" --test-cmd true
expect 2 "missing program" "not found" "${B[@]}" --src "$R" --good good --bad bad --campaign "$C" --build-cmd "/nonexistent/make {rev}" --test-cmd true
expect 2 "bad class" "--class nosuch: not a finding class" "${B[@]}" --src "$R" --good good --bad bad --campaign "$C" --class nosuch "${ok[@]}"
expect 2 "bad confidence" "--confidence" "${B[@]}" --src "$R" --good good --bad bad --campaign "$C" --confidence 2 "${ok[@]}"
expect 2 "missing --src" "--src is required" "$FSRACE" bisect --good good --bad bad --campaign "$C"
expect 2 "max-runs not a number" "max-runs" "${B[@]}" --src "$R" --good good --bad bad --campaign "$C" --max-runs many "${ok[@]}"
expect 2 "test command broken" "the test command exited with status 3" "${B[@]}" --src "$R" --good good --bad bad --campaign "$C" --build-cmd true --test-cmd "sh -c 'exit 3'"
[ ! -e "$TMP/out/bisect.json" ] || grep -q '"history": \[\]' "$TMP/out/bisect.json" || fail "a refused bisection recorded outcomes"
rm -rf "$TMP/out"
# a whole (tiny) bisection through the binary: deterministic test, culprit c2
cat > "$TMP/t.sh" <<'T'
#!/bin/sh
[ "$(cat "$1/f")" -ge 2 ] && exit 1; exit 0
T
chmod +x "$TMP/t.sh"
expect 0 "tiny bisection" "" "${B[@]}" --src "$R" --good good --bad bad --campaign "$C" --build-cmd true --test-cmd "$TMP/t.sh {worktree}"
c2="$(g rev-parse bad~1)"
grep -q "\"commit\": \"$c2\"" "$TMP/out/bisect.json" && grep -q "first bad commit: \[$c2\]" "$TMP/out/git-bisect.log" \
  && pass "tiny bisection named c2" || { cat "$TMP/o"; fail "tiny bisection did not name c2"; }
git -C "$R" worktree prune

# fsrace run --bisect-exit
expect 2 "--bisect-class alone" "--bisect-class needs --bisect-exit" "$FSRACE" run --bisect-class stale
expect 2 "unknown bisect class" "not a finding class" "$FSRACE" run --bisect-exit --bisect-class nosuch --kernel /nonexistent
expect 125 "run error is a skip" "run exit 2 -> 125" "$FSRACE" run "$TOP/campaigns/default.toml" --kernel "$TMP/no-such-bzImage" --bisect-exit --results "$TMP/res"
[ "$fails" = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
