#!/usr/bin/env bash
# Runs each fuzz target (comparison and rules from strangler-diff, configuration loading, event
# decoding) for a bounded time; exits non-zero on a crash.
#
#   deploy/fuzz.sh                 # 30 s per target
#   MAX_TOTAL_TIME=300 deploy/fuzz.sh rules_parse
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer); on a stable toolchain we set
# RUSTC_BOOTSTRAP=1, which lets stable rustc accept them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
max_total_time="${MAX_TOTAL_TIME:-30}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(rules_parse compare_json config_parse event_decode)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if ! rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi

cd "$here/fuzz"
status=0
for target in "${targets[@]}"; do
  corpus="corpus/$target"
  work="$(mktemp -d)"
  # Fuzz into a scratch copy so the committed seed corpus stays small and reviewed.
  cp -r "$corpus/." "$work/"
  echo "fuzzing $target for ${max_total_time}s"
  if ! cargo fuzz run "$target" "$work" -- -max_total_time="$max_total_time" -rss_limit_mb=2048; then
    echo "fuzz target $target crashed; the reproducer is in fuzz/artifacts/$target/" >&2
    status=1
  fi
  rm -rf "$work"
done
exit "$status"
