#!/usr/bin/env bash
# `fsrace kernel ...` through the C++ CLI: it execs kernels/kbuild.py with the arguments untouched; bad
# inputs are one line on stderr and exit 2; `list` of an empty cache is a message, exit 0. No kernel build.
set -uo pipefail
TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FSRACE_TOP="$TOP"
BIN="${FSRACE_BIN:-$TOP/build/harness/fsrace}"
export FSRACE_KERNEL_CACHE="$(mktemp -d)"
trap 'rm -rf "$FSRACE_KERNEL_CACHE"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
one_line_2() {  # one_line_2 PATTERN ARGS...
  local pat=$1; shift
  local err rc
  err="$("$BIN" "$@" 2>&1 >/dev/null)"; rc=$?
  [ "$rc" -eq 2 ] || fail "fsrace $* exited $rc, expected 2 ($err)"
  [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "fsrace $*: not one line on stderr: $err"
  grep -q -- "$pat" <<<"$err" || fail "fsrace $*: stderr lacks '$pat': $err"
  ! grep -q Traceback <<<"$err" || fail "fsrace $*: traceback"
}
one_line_2 "is not a directory" kernel build --src /nonexistent/linux
one_line_2 "is not a Linux kernel source tree" kernel build --src "$TOP"
one_line_2 "unknown debug set 'nope'" kernel build --src "$TOP" --debug nope
one_line_2 "no kernel build 'nothing'" kernel path nothing
one_line_2 "unrecognized arguments: --no-such-option" kernel build --src /x --no-such-option
one_line_2 "argument --src: expected one argument" kernel build --src
one_line_2 "A subcommand is required" kernel
out="$("$BIN" kernel list)" || fail "kernel list exited $?"
grep -q "no kernel builds in $FSRACE_KERNEL_CACHE/builds" <<<"$out" || fail "kernel list: $out"
"$BIN" kernel build --help | grep -q -- "--rev REV" || fail "kernel build --help is not kbuild.py's"
echo "PASS: fsrace kernel: bad inputs one line / exit 2, list, help"
