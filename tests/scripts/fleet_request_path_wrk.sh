#!/bin/bash
# Issue 18: p50/p99, CPU per request and Redis commands with fleet on vs
# off (BENCHMARKS.md, "Request path with fleet on vs off"). Needs wrk,
# redis-server on $RPORT (127.0.0.1) and RAMPART_BIN (default target/release/rampart).
# usage: fleet_request_path_wrk.sh on|off SECONDS -> p50/p99 and CPU per request
set -e
mode=$1; secs=$2
d=$(mktemp -d /tmp/rampart-fleet-nrun.XXXX)
. "$(dirname "$0")/fleet_request_path_config.sh"
write_config "$mode" 1000000r/s 100000
RUST_LOG=warn ${RAMPART_BIN:-target/release/rampart} run -c $d/rampart.toml 2>$d/log &
rpid=$!
for i in $(seq 1 100); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break; sleep 0.1; done
wrk -t1 -c10 -d1s http://127.0.0.1:$port/ >/dev/null
cpu0=$(awk '{print $14+$15}' /proc/$rpid/stat)
cmd0=$(redis-cli -p $RPORT info stats | grep total_commands_processed | tr -d '\r' | cut -d: -f2)
out=$(wrk -t1 -c10 -d${secs}s --latency http://127.0.0.1:$port/)
cpu1=$(awk '{print $14+$15}' /proc/$rpid/stat)
cmd1=$(redis-cli -p $RPORT info stats | grep total_commands_processed | tr -d '\r' | cut -d: -f2)
kill $rpid; wait $rpid 2>/dev/null || true
reqs=$(echo "$out" | grep "requests in" | awk '{print $1}')
p50=$(echo "$out" | grep -E "^ +50%" | awk '{print $2}')
p99=$(echo "$out" | grep -E "^ +99%" | awk '{print $2}')
non2xx=$(echo "$out" | grep -c "Non-2xx" || true)
tck=$(getconf CLK_TCK)
echo "$mode reqs=$reqs p50=$p50 p99=$p99 non2xx_lines=$non2xx cpu_us_per_req=$(python3 -c "print(round(($cpu1-$cpu0)/$tck*1e6/$reqs,2))") redis_cmds=$((cmd1-cmd0))"
rm -rf $d
