#!/usr/bin/env bash
# Runs `kto bench cluster` in the network rig (scripts/netns-rig.sh) at each link rate and loss, and appends each
# result, tagged with link_mbit and loss_pct, to a JSON-lines file that `kto bench plot --results FILE` draws.
#
#   scripts/rig-sweep.sh OUT.jsonl "RATES" "LOSSES" -- [kto bench cluster options…]
#       RATES: tc rates in Mbit/s, e.g. "100 300 1000 3000 10000"; LOSSES: percentages, e.g. "0 1".
#       KTO: the kto.dll to run (default: src/Kto.Cluster.Cmd/bin/Release, else Debug).
set -euo pipefail
out=${1:?OUT.jsonl}; rates=${2:?RATES}; losses=${3:?LOSSES}; shift 3
[[ "${1:-}" == "--" ]] && shift
here=$(cd "$(dirname "$0")/.." && pwd)
kto=${KTO:-}
if [[ -z "$kto" ]]; then
  for c in Release Debug; do
    f="$here/src/Kto.Cluster.Cmd/bin/$c/net10.0/kto.dll"
    if [[ -f "$f" ]]; then kto=$f; break; fi
  done
fi
[[ -f "$kto" ]] || { echo "rig-sweep: kto.dll not found (build first, or set KTO)" >&2; exit 2; }
for rate in $rates; do
  for loss in $losses; do
    echo "rig-sweep: ${rate} Mbit/s, ${loss} % loss: kto bench cluster $*" >&2
    line=$(bash "$here/scripts/netns-rig.sh" run --rate "${rate}mbit" --loss "$loss" -- dotnet "$kto" bench cluster "$@" | tail -n 1)
    [[ "$line" == "{"*"}" ]] || { echo "rig-sweep: no result at ${rate} Mbit/s: $line" >&2; exit 1; }
    echo "${line%\}},\"link_mbit\":${rate},\"loss_pct\":${loss}}" >> "$out"
  done
done
