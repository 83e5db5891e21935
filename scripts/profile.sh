#!/usr/bin/env bash
# Profiles hookfleet under `make bench`'s scenarios (docs/BENCHMARKS.md, "Profile").
#
#   scripts/profile.sh callgrind --only ingest --events 2000
#   scripts/profile.sh perf      --only ingest --events 20000
#
# The bench starts every role through --bin, here a wrapper that runs the role
# (`target/release/hookfleet`) under `valgrind --tool=callgrind`, or natively
# with `perf record -p` attached. The bench ends a role with SIGKILL, which would
# lose the profile, so the wrapper runs the role in the background: SIGKILL ends
# only the wrapper, and a watcher then stops the orphaned role with SIGTERM (a
# clean shutdown, after which callgrind and perf write their files).
# Output: target/profile/<tool>.<role>.<pid>.{out,data}. Read them with
# `callgrind_annotate [--inclusive=yes] FILE` or `perf report -i FILE --stdio`.
#
# Under valgrind 3.19, the sha2 crate does not see SHA-NI and hashes in software:
# signing looks about 20 times dearer than it is natively.
set -euo pipefail
tool=${1:?usage: scripts/profile.sh callgrind|perf [hookfleet-bench options]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/target/profile
mkdir -p "$out"
bin=$root/target/release/hookfleet
[ -x "$bin" ] && [ -x "$root/target/release/hookfleet-bench" ] || {
  echo "build first: cargo build --release -p hookfleet -p hookfleet-bench" >&2
  exit 1
}
pids=$(mktemp)
wrapper=$(mktemp)
case $tool in
  callgrind) run="valgrind --tool=callgrind --callgrind-out-file=$out/callgrind.\$1.%p.out $bin \"\$@\" 2>>$out/valgrind.log &" ;;
  perf) run="$bin \"\$@\" & perf record -F 1999 -p \$! -o $out/perf.\$1.\$!.data >/dev/null 2>&1 &" ;;
  *) echo "unknown tool $tool: callgrind or perf" >&2; exit 2 ;;
esac
cat >"$wrapper" <<EOF
#!/usr/bin/env bash
if [ "\$1" = migrate ]; then exec $bin "\$@"; fi
$run
for p in \$(pgrep -P \$\$); do [ "\$(cat /proc/\$p/comm)" = perf ] || echo \$p >>$pids; done
wait
EOF
chmod +x "$wrapper"
# The watcher: a role whose wrapper is gone (its parent is now init) is stopped.
(
  while [ -f "$pids" ]; do
    for p in $(cat "$pids" 2>/dev/null); do
      [ "$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ')" = 1 ] && kill -TERM "$p" 2>/dev/null || true
    done
    sleep 0.5
  done
) &
watcher=$!
"$root/target/release/hookfleet-bench" --bin "$wrapper" --out "$out/bench.json" "$@" || true
sleep 5
rm -f "$pids" "$wrapper"
wait "$watcher" 2>/dev/null || true
ls -la "$out"
