#!/usr/bin/env bash
# Spare boxes on one machine: runs a command inside a private network namespace whose loopback is shaped like a real
# link (tc tbf: rate; nftables: random loss), and lets a test cut it (nftables drops by port: partitions, one-way
# cuts). Only 127.0.0.1 inside the namespace is used. The namespace is removed when the script exits,
# on an error or on INT/TERM/HUP (a SIGKILL of the script itself leaves it: ip netns del NS).
#
#   scripts/netns-rig.sh run [--rate RATE] [--loss PCT] [--name NS] -- COMMAND [ARGS…]
#       RATE: tc's units (1gbit, 10gbit, 100mbit; default: unshaped). PCT: packets dropped at random, 0–100 (integer).
#       Prints "rig: …" lines on stderr; exits with COMMAND's status (2 when the rig cannot be built, 77 when
#       namespaces are not permitted here, with the reason).
#   scripts/netns-rig.sh cut NS (--port P | --from P --to Q)…   drop packets to port P (both directions: a partition
#       of whoever listens on P), or only those from port P to port Q (one-way)
#   scripts/netns-rig.sh heal NS                                    remove every cut
#
# Needs root, iproute2 (ip, tc) and nftables. netem does not exist in some kernels, so there is no added delay.
set -euo pipefail

die() { echo "rig: $*" >&2; exit 2; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found (Debian packages: iproute2, nftables)"; }

cmd=${1:-}; shift || true
case "$cmd" in
  run)
    rate=""; loss=0; name="kto-rig-$$"
    while [[ $# -gt 0 ]]; do
      case "$1" in
        --rate) rate=$2; shift 2 ;;
        --loss) loss=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --) shift; break ;;
        *) die "unknown option $1 (expected --rate, --loss, --name, then -- COMMAND)" ;;
      esac
    done
    [[ $# -gt 0 ]] || die "no command to run (… -- COMMAND)"
    [[ "$loss" =~ ^[0-9]+$ && "$loss" -le 100 ]] || die "--loss must be an integer percentage 0–100, got $loss"
    need ip; need tc; need nft
    if ! ip netns add "$name" 2>/tmp/rig-err-$$; then
      reason=$(cat /tmp/rig-err-$$); rm -f /tmp/rig-err-$$
      echo "rig: network namespaces are not permitted here: $reason" >&2; exit 77
    fi
    rm -f /tmp/rig-err-$$
    cleanup() { ip netns del "$name" 2>/dev/null || true; }
    trap cleanup EXIT INT TERM HUP
    ip netns exec "$name" ip link set lo up
    if [[ -n "$rate" ]]; then
      # Burst: enough for the rate at a 1 ms timer (at least 64 KiB); latency bounds the queue.
      ip netns exec "$name" tc qdisc add dev lo root tbf rate "$rate" burst 1mbit latency 50ms \
        || die "tc could not shape lo at $rate"
    fi
    ip netns exec "$name" nft add table inet kto_rig
    ip netns exec "$name" nft add chain inet kto_rig out '{ type filter hook output priority 0; policy accept; }'
    ip netns exec "$name" nft add chain inet kto_rig cuts
    ip netns exec "$name" nft add rule inet kto_rig out jump cuts
    if [[ "$loss" -gt 0 ]]; then
      ip netns exec "$name" nft add rule inet kto_rig out numgen random mod 100 '<' "$loss" drop
    fi
    echo "rig: namespace $name, lo ${rate:-unshaped}, loss ${loss} %" >&2
    set +e
    ip netns exec "$name" "$@"
    status=$?
    set -e
    exit $status
    ;;
  cut)
    name=${1:?namespace}; shift
    while [[ $# -gt 0 ]]; do
      case "$1" in
        --port)
          ip netns exec "$name" nft add rule inet kto_rig cuts tcp dport "$2" drop
          ip netns exec "$name" nft add rule inet kto_rig cuts tcp sport "$2" drop
          shift 2 ;;
        --from)
          [[ "${3:-}" == "--to" ]] || die "--from P needs --to Q"
          ip netns exec "$name" nft add rule inet kto_rig cuts tcp sport "$2" tcp dport "$4" drop
          shift 4 ;;
        *) die "unknown cut $1 (expected --port P or --from P --to Q)" ;;
      esac
    done
    ;;
  heal)
    name=${1:?namespace}
    ip netns exec "$name" nft flush chain inet kto_rig cuts
    ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
