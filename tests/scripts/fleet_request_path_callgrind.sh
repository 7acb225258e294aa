#!/bin/bash
# Issue 18: instructions per request with fleet on vs off (BENCHMARKS.md,
# "Request path with fleet on vs off"). Needs valgrind, redis-server running
# on $RPORT (127.0.0.1) and RAMPART_BIN (default target/release/rampart).
# usage: fleet_request_path_callgrind.sh on|off N SOURCES -> instructions per request
set -e
mode=$1; n=$2; src=$3
d=$(mktemp -d /tmp/rampart-fleet-run.XXXX)
. "$(dirname "$0")/fleet_request_path_config.sh"
write_config "$mode" 100000r/s 1000
RUST_LOG=warn valgrind --tool=callgrind --collect-atstart=yes --separate-threads=yes --callgrind-out-file=$d/cg.out ${RAMPART_BIN:-target/release/rampart} run -c $d/rampart.toml 2>$d/vg.log &
vpid=$!
for i in $(seq 1 300); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break; sleep 0.2; done
python3 "$(dirname "$0")/fleet_client.py" $port 200 $src >/dev/null
sleep 1
callgrind_control -z $vpid >/dev/null
t0=$(date +%s.%N)
bad=$(python3 "$(dirname "$0")/fleet_client.py" $port $n $src)
t1=$(date +%s.%N)
callgrind_control -d $vpid >/dev/null
sleep 1
per=$(for f in $(ls $d/cg.out.*-*); do echo -n "$(grep -m1 "^summary:\|^totals:" $f | awk '{print $2}') "; done)
ir=$(echo $per | tr ' ' '\n' | awk '{s+=$1} END {print s}')
top=$(echo $per | tr ' ' '\n' | sort -n | tail -1)
rest=$(python3 -c "print(round(($ir-$top)/$n))")
kill $vpid; wait $vpid 2>/dev/null || true
echo "$mode n=$n sources=$src bad=$bad instr/req=$(python3 -c "print(round($ir/$n))") busiest-thread/req=$(python3 -c "print(round($top/$n))") other-threads/req=$rest wall=$(python3 -c "print(round($t1-$t0,1))")s"
rm -rf $d
