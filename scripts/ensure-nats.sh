#!/usr/bin/env bash
# Makes sure the shared NATS (with JetStream) answers on 127.0.0.1:4222: starts it where installed
# but stopped, fails with how to install it where absent. Safe to run by hand. The NATS tests run
# on private servers of their own and only need the binary; this is for everything else.
set -euo pipefail
HOST=127.0.0.1
PORT=4222
STORE=/var/lib/nats-server
LOG=/var/log/nats-server.log

# The server's INFO line, or nothing: a NATS server greets every connection with it.
info() {
  (
    exec 3<>"/dev/tcp/$HOST/$PORT" || exit 1
    IFS= read -r -t 2 line <&3 || exit 1
    printf '%s\n' "$line"
  ) 2>/dev/null || true
}

# Running: say which version, and refuse a server without JetStream (another one holds the port).
check_running() {
  local line
  line="$(info)"
  [[ "$line" == INFO* ]] || return 1
  local version
  version="$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$line")"
  if [[ "$line" != *'"jetstream":true'* ]]; then
    echo "nats: a server answers on $HOST:$PORT (version ${version:-unknown}) but without JetStream; stop it and run this script again (it starts nats-server with -js)" >&2
    exit 1
  fi
  echo "nats: running (nats-server $version, JetStream on)"
  return 0
}

if check_running; then exit 0; fi

bin=""
for candidate in /usr/sbin/nats-server "$(command -v nats-server 2>/dev/null || true)"; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then bin="$candidate"; break; fi
done
if [[ -z "$bin" ]]; then
  echo "nats: nats-server is not installed. On Debian/Ubuntu: apt-get install nats-server (then run this script again)" >&2
  exit 1
fi

echo "nats: starting $bin on $HOST:$PORT with JetStream (store $STORE, log $LOG)"
mkdir -p "$STORE" "$(dirname "$LOG")"
start-stop-daemon --start --oknodo --background --exec "$bin" -- -a "$HOST" -p "$PORT" -js -sd "$STORE" -l "$LOG"
for _ in $(seq 1 50); do
  if check_running; then exit 0; fi
  sleep 0.2
done
# start-stop-daemon matches by executable: it starts no second nats-server next to one that runs elsewhere.
if pgrep -x nats-server >/dev/null 2>&1; then
  echo "nats: nothing answers on $HOST:$PORT, but a nats-server process runs (pgrep -a nats-server): stop it or make it listen there; see $LOG" >&2
else
  echo "nats: did not start on $HOST:$PORT within 10 s; see $LOG" >&2
fi
exit 1
