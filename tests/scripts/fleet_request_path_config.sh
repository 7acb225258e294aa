# Shared by fleet_request_path_{callgrind,wrk}.sh: picks a free port
# ($port) and writes $d/rampart.toml: one worker answering 200 behind the
# limit zone `api` (RATE, BURST), `fleet = true` with a [fleet] on $RPORT
# when MODE is `on`.
# usage: . fleet_request_path_config.sh; write_config MODE RATE BURST
write_config() {
local mode=$1 rate=$2 burst=$3
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
fleet=""; flag="false"
if [ "$mode" = on ]; then fleet="[fleet]
redis = \"127.0.0.1:$RPORT\"
name = \"h18bench$$\"
host = \"b1\"
"; flag="true"; fi
cat > $d/rampart.toml <<T
[[listener]]
bind = "127.0.0.1:$port"
http2 = false

[http]
workers = 1

[admin]
bind = "off"

[control]
socket = "$d/control.sock"
state_file = "$d/state.json"

$fleet
[limit.api]
rate = "$rate"
burst = $burst
nodelay = true
fleet = $flag

[[route]]
respond = 200
limit = "api"
access_log = false
T
}
