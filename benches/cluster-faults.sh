#!/bin/bash
# Detection and repair at scale on a 3-node R3 JetStream cluster (docs/JETSTREAM.md, "Fault
# schedules on a three-node cluster"): a home's events given to an empty cluster, every replica
# asked alone, then a simulated power cut (the last 40 % of every .blk file on every node cut
# off), detection and repair. Each step prints its exit code, wall time and findings by check.
#
# Usage: benches/cluster-faults.sh HOME
#   HOME: a personctl home with events, copied first (it is not changed). One of 100,000 events
#   over 1,000 persons: 100 commands per person in a JSON Lines file (see README, "Person
#   commands"), then `personctl --home HOME append --file FILE`.
# Needs a release build (cargo build --release -p personctl) and nats-server (NATS_SERVER or
# PATH). Uses ports 16100-16302 on loopback and /tmp/c100.
set -u
SRC=${1:?usage: $0 HOME}
P=${PERSONCTL:-target/release/personctl}
NS=${NATS_SERVER:-nats-server}
W=/tmp/c100
pkill -f "$W/n" ; sleep 0.5
rm -rf $W; mkdir -p $W; cp -r "$SRC" $W/home
start() {
  for i in 0 1 2; do
    $NS -a 127.0.0.1 -p $((16100+i)) -m $((16200+i)) -js -sd $W/n$i -n n$i --cluster_name c100 \
      --cluster nats://127.0.0.1:$((16300+i)) \
      --routes nats://127.0.0.1:16300,nats://127.0.0.1:16301,nats://127.0.0.1:16302 >$W/log$i 2>&1 &
  done
  sleep 3
}
U=nats://127.0.0.1:16100,nats://127.0.0.1:16101,nats://127.0.0.1:16102
M=http://127.0.0.1:16200,http://127.0.0.1:16201,http://127.0.0.1:16202
pc() { $P --home $W/home --nats $U --nats-replicas 3 --nats-monitor $M --json "$@"; }
step() {
  local t0 t1 rc
  t0=$(date +%s.%N); pc "$@" >$W/out 2>$W/err; rc=$?; t1=$(date +%s.%N)
  echo "$* : exit $rc, $(echo "$t1 - $t0" | bc) s"
  grep -o '"check":"[a-z-]*"' $W/out | sort | uniq -c
  grep -h '"type":"repaired"' $W/out
  echo "  gap records: $(grep -c '"type":"gap"' $W/out)"
}
start
until pc sync >/dev/null 2>&1 || [ $? = 1 ]; do sleep 1; done
step verify
step sync --repair
step verify --replicas
pkill -9 -f "$W/n"; sleep 0.5
for f in $(find $W -name '*.blk'); do s=$(stat -c %s "$f"); truncate -s $((s*6/10)) "$f"; done
start
sleep 5
step verify
step verify --replicas
step sync --repair
step verify --replicas
pkill -f "$W/n"
