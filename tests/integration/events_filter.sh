#!/usr/bin/env bash
# `fsrace events` filters (the way to read the kernel's side of one finding): --page keeps the events whose
# page range covers the page, --file one test file, --from / --to a window on the case's clock (times then
# print relative to --from); bad filters are one-line errors with exit 2. Uses the stored ext4 sample.
source "$(dirname "$0")/common.sh"
EV="$TOP/tests/data/events/ext4.events.bin"
all="$("$FSRACE" events "$EV" | tail -1)"
case "$all" in "103 events, 0 dropped"*) ;; *) fail "unfiltered listing: $all" ;; esac
out="$("$FSRACE" events "$EV" --page 7)" || fail "--page 7 exited $?"
n="$(echo "$out" | grep -c '^dev ')"
[ "$n" -gt 0 ] && [ "$n" -lt 103 ] || fail "--page 7 kept $n of 103 events"
echo "$out" | tail -1 | grep -q "^$n of 103 events" || fail "--page 7 summary: $(echo "$out" | tail -1)"
# every kept event names page 7 in its range (index 7, pages a..b with a <= 7 <= b, or bytes covering it)
echo "$out" | grep '^dev ' | grep -v -E 'index 7( |$)|index [0-7]-([7-9]|[1-9][0-9]+)|pages? [0-7]\.\.([7-9]|[1-9][0-9]+)|offset|lblk' &&
  fail "--page 7 kept an event not about page 7"
"$FSRACE" events "$EV" --file f0 | tail -1 | grep -q "^103 of 103 events" || fail "--file f0 is not every event"
"$FSRACE" events "$EV" --from 0 --limit 2 | grep -c '^dev ' | grep -qx 2 || fail "--limit with a filter"
for bad in "--file f9" "--from 10 --to 5" "--page x"; do
  # shellcheck disable=SC2086
  err="$("$FSRACE" events "$EV" $bad 2>&1 >/dev/null)"; rc=$?
  [ "$rc" = 2 ] || fail "events $bad: exit $rc, expected 2"
  [ "$(echo "$err" | wc -l)" = 1 ] || fail "events $bad: not one line: $err"
  echo "  events $bad -> $err"
done
pass "events --page / --file / --from / --to filter, bad filters exit 2 with one line"
