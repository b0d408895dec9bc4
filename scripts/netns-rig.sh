#!/usr/bin/env bash
# Spare boxes on one machine: a private network namespace whose loopback is shaped like a real link (tc tbf: rate;
# nftables: random loss), whose processes can run as separate "boxes" (identities), and whose links between boxes a
# test can cut (nftables drops: partitions, one-way cuts, flapping links). Only 127.0.0.1 inside the namespace is used.
#
#   scripts/netns-rig.sh run [--rate RATE] [--loss PCT] [--name NS] -- COMMAND [ARGS…]
#       Makes the namespace, runs COMMAND in it, removes it when the script exits (normally, on an error, on
#       INT/TERM/HUP; a SIGKILL of the script leaves it: ip netns del NS). Exits with COMMAND's status (2 when the rig
#       cannot be built, 77 when namespaces are not permitted here, with the reason).
#       RATE: tc's units (1gbit, 10gbit, 100mbit; default: unshaped). PCT: packets dropped at random, 0–100 (integer).
#   scripts/netns-rig.sh up [--rate RATE] [--loss PCT] --name NS     make the namespace and leave it (same exit codes)
#   scripts/netns-rig.sh down NS                                     remove it
#   scripts/netns-rig.sh exec NS [--as ID] -- COMMAND [ARGS…]
#       Runs COMMAND in NS (exec: same process id). With --as ID (1–64) it runs as box ID: user and group 64000+ID,
#       umask 0 (boxes share the test's files). Every TCP connection is tagged with the boxes at its two ends.
#   scripts/netns-rig.sh cut NS CUT…   adds cuts; a CUT is one of
#       --between IDS --and IDS   no packet between a box of the first list and one of the second (IDS: 1,2,3)
#       --to ID                   no packet to box ID from another box (ID's own packets still leave: one-way)
#       --port P                  no packet to or from port P (whoever listens on P, cut from everyone)
#       --from P --to-port Q      no packet from port P to port Q
#   scripts/netns-rig.sh heal NS       removes every cut
#   scripts/netns-rig.sh wall NS --allow ADDRS [--drop]
#       The firewall of a box on a shared network: TCP from any source address but ADDRS (comma-separated, e.g.
#       127.0.0.1) is refused in the kernel before a process sees it, with a reset (a flooder keeps its rate: the
#       harder case for the machine) or, with --drop, silently as a real network's rule would. Replaces an earlier wall.
#   scripts/netns-rig.sh wall NS --open      removes the wall
#
# Needs root, iproute2 (ip, tc), util-linux (setpriv) and nftables. netem does not exist in some kernels, so there is
# no added delay.
set -euo pipefail

die() { echo "rig: $*" >&2; exit 2; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found (Debian packages: iproute2, nftables, util-linux)"; }
readonly BOXES=64 UID_BASE=64000

box() {
  [[ "$1" =~ ^[0-9]+$ && "$1" -ge 1 && "$1" -le $BOXES ]] || die "a box id is 1–$BOXES, got '$1'"
  echo "$1"
}

# up NAME RATE LOSS: the namespace, its shaped loopback, loss, and the tagging of connections by box.
up() {
  local name=$1 rate=$2 loss=$3 rules
  [[ "$loss" =~ ^[0-9]+$ && "$loss" -le 100 ]] || die "--loss must be an integer percentage 0–100, got $loss"
  need ip; need tc; need nft; need setpriv
  if ! ip netns add "$name" 2>/tmp/rig-err-$$; then
    local reason; reason=$(cat /tmp/rig-err-$$); rm -f /tmp/rig-err-$$
    echo "rig: network namespaces are not permitted here: $reason" >&2; exit 77
  fi
  rm -f /tmp/rig-err-$$
  ip netns exec "$name" ip link set lo up
  if [[ -n "$rate" ]]; then
    # Burst: enough for the rate at a 1 ms timer (at least 64 KiB); latency bounds the queue.
    ip netns exec "$name" tc qdisc add dev lo root tbf rate "$rate" burst 1mbit latency 50ms \
      || { ip netns del "$name"; die "tc could not shape lo at $rate"; }
  fi
  # A connection's conntrack mark holds the box that opened it (bits 0–7, set on its first packet) and the box that
  # accepted it (bits 8–15, set on the first reply): a cut between boxes then matches both directions of every
  # connection between them, whoever opened it. Processes not started as a box (the test runner, root) have 0.
  rules="add table inet kto_rig
add chain inet kto_rig out { type filter hook output priority 0; policy accept; }
add chain inet kto_rig cuts
add chain inet kto_rig wall { type filter hook input priority 0; policy accept; }"
  for ((i = 1; i <= BOXES; i++)); do
    rules+="
add rule inet kto_rig out ct state new meta skuid $((UID_BASE + i)) ct mark set $i
add rule inet kto_rig out ct direction reply ct mark and 0xff00 == 0 meta skuid $((UID_BASE + i)) ct mark set ct mark or $((i << 8))"
  done
  rules+="
add rule inet kto_rig out jump cuts"
  if [[ "$loss" -gt 0 ]]; then
    rules+="
add rule inet kto_rig out numgen random mod 100 < $loss drop"
  fi
  echo "$rules" | ip netns exec "$name" nft -f - || { ip netns del "$name"; die "nft could not load the rig's rules"; }
  echo "rig: namespace $name, lo ${rate:-unshaped}, loss ${loss} %" >&2
}

cmd=${1:-}; shift || true
case "$cmd" in
  run|up)
    rate=""; loss=0; name=""
    while [[ $# -gt 0 ]]; do
      case "$1" in
        --rate) rate=$2; shift 2 ;;
        --loss) loss=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --) shift; break ;;
        *) die "unknown option $1 (expected --rate, --loss, --name${cmd/up/}${cmd/run/, then -- COMMAND})" ;;
      esac
    done
    if [[ "$cmd" == up ]]; then
      [[ -n "$name" ]] || die "up needs --name NS"
      up "$name" "$rate" "$loss"
      exit 0
    fi
    [[ $# -gt 0 ]] || die "no command to run (… -- COMMAND)"
    name=${name:-kto-rig-$$}
    up "$name" "$rate" "$loss"
    cleanup() { ip netns del "$name" 2>/dev/null || true; }
    trap cleanup EXIT INT TERM HUP
    set +e
    ip netns exec "$name" "$@"
    status=$?
    set -e
    exit $status
    ;;
  down)
    ip netns del "${1:?down NS}"
    ;;
  exec)
    name=${1:?exec NS [--as ID] -- COMMAND}; shift
    id=""
    while [[ $# -gt 0 ]]; do
      case "$1" in
        --as) id=$(box "$2"); shift 2 ;;
        --) shift; break ;;
        *) die "unknown option $1 (expected --as ID, then -- COMMAND)" ;;
      esac
    done
    [[ $# -gt 0 ]] || die "no command to run (… -- COMMAND)"
    if [[ -z "$id" ]]; then exec ip netns exec "$name" "$@"; fi
    u=$((UID_BASE + id))
    exec ip netns exec "$name" setpriv --reuid "$u" --regid "$u" --clear-groups -- sh -c 'umask 0; exec "$@"' sh "$@"
    ;;
  cut)
    name=${1:?cut NS CUT…}; shift
    [[ $# -gt 0 ]] || die "cut needs --between IDS --and IDS, --to ID, --port P or --from P --to-port Q"
    rules=""
    add() { rules+="add rule inet kto_rig cuts $*"$'\n'; }
    while [[ $# -gt 0 ]]; do
      case "$1" in
        --between)
          [[ "${3:-}" == "--and" ]] || die "--between IDS needs --and IDS"
          IFS=, read -ra left <<< "$2"; IFS=, read -ra right <<< "$4"
          for a in "${left[@]}"; do for b in "${right[@]}"; do
            a=$(box "$a"); b=$(box "$b")
            add "ct mark and 0xffff == $(((b << 8) | a)) drop"
            add "ct mark and 0xffff == $(((a << 8) | b)) drop"
          done; done
          shift 4 ;;
        --to)
          t=$(box "$2")
          add "meta skuid != $((UID_BASE + t)) ct mark and 0xff == $t drop"
          add "meta skuid != $((UID_BASE + t)) ct mark and 0xff00 == $((t << 8)) drop"
          shift 2 ;;
        --port)
          add "tcp dport $2 drop"; add "tcp sport $2 drop"
          shift 2 ;;
        --from)
          [[ "${3:-}" == "--to-port" ]] || die "--from P needs --to-port Q"
          add "tcp sport $2 tcp dport $4 drop"
          shift 4 ;;
        *) die "unknown cut $1 (expected --between IDS --and IDS, --to ID, --port P or --from P --to-port Q)" ;;
      esac
    done
    printf '%s' "$rules" | ip netns exec "$name" nft -f -
    ;;
  heal)
    ip netns exec "${1:?heal NS}" nft flush chain inet kto_rig cuts
    ;;
  wall)
    name=${1:?wall NS --allow ADDRS [--drop] | --open}; shift
    allow=""; verdict="reject with tcp reset"
    while [[ $# -gt 0 ]]; do
      case "$1" in
        --allow)
          [[ "${2:-}" =~ ^[0-9.,]+$ ]] || die "--allow needs IPv4 addresses separated by commas, got '${2:-}'"
          allow=$2; shift 2 ;;
        --drop) verdict="drop"; shift ;;
        --open) allow="-"; shift ;;
        *) die "unknown option $1 (expected --allow ADDRS [--drop] or --open)" ;;
      esac
    done
    [[ -n "$allow" ]] || die "wall needs --allow ADDRS or --open"
    rules="flush chain inet kto_rig wall"
    if [[ "$allow" != "-" ]]; then rules+=$'\n'"add rule inet kto_rig wall ip saddr != { $allow } meta l4proto tcp $verdict"; fi
    printf '%s\n' "$rules" | ip netns exec "$name" nft -f -
    ;;
  *)
    sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
