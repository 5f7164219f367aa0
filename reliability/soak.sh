#!/usr/bin/env bash
# `make soak`: the crash, blackout, disk-full, isolation and provider-fault suites in their
# long form (CLINICMSG_SOAK=1: more kills and messages, the status poll left to the server's
# cron). Prints each suite's "N passed, N failed" and the total; the figures go to
# docs/reliability-latest.json under "soak". Takes about 12 minutes on 2 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CLINICMSG_SOAK=1 CLINICMSG_RECORD_FIGURES=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
go test -count=1 -timeout 120m -v -run '^(TestCrashRecovery|TestGracefulStopDuringBusySend|TestWebhookBlackout|TestDiskFull|TestIsolationAndAbuse)$' ./reliability/ 2>&1 | tee -a "$log"
go test -count=1 -timeout 60m -v -run '^TestProviderFaults$' ./hooks/ 2>&1 | tee -a "$log"
passed="$(grep -c '^--- PASS' "$log")" failed="$(grep -c '^--- FAIL' "$log")" skipped="$(grep -c '^--- SKIP' "$log")"
echo
grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed$|^faults: ' "$log" | sort -u
echo "soak: ${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ]
