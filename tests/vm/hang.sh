#!/usr/bin/env bash
# A guest agent that stops making progress (test hook: FIFREEZE of the test filesystem mid-race, so the
# writer blocks in the kernel) -> hang finding with task states (sysrq-w), exit 1, no qemu left.
source "$(dirname "$0")/lib.sh"
run_vm 1 "$TOP/tests/vm/hang.toml" --kernel debian
F="$RUN/findings.json"
[ "$(json "$F" 'd["findings_by_class"].get("hang", 0)')" = 1 ] || fail "no hang finding"
log="$(json "$F" '"\n".join(l for f in d["findings"] if f["class"]=="hang" for l in f.get("kernel_log", []))')"
grep -q "sysrq: Show Blocked State" <<<"$log" || fail "hang finding lacks the sysrq-w output"
grep -q "state:D" <<<"$log" || fail "hang finding shows no blocked (D) task"
detail="$(json "$F" '[f["detail"] for f in d["findings"] if f["class"]=="hang"][0]')"
grep -q "\[D\]" <<<"$detail" || fail "hang detail lacks the blocked thread from the heartbeat"
no_qemu_left
echo "PASS: hang reported with task states, exit 1"
