#!/usr/bin/env bash
# Makes sure RabbitMQ answers AMQP on 127.0.0.1:5672 (what the RabbitMQ tests use, as guest/guest):
# starts it where installed but stopped; where absent, fails saying how to install it. Used by
# .ci/run; safe to run by hand (as root, or as the rabbitmq user). AMQP_PORT and RABBITMQ_WAIT_S
# override the port probed and how long a start may take.
set -euo pipefail
port="${AMQP_PORT:-5672}"
wait_s="${RABBITMQ_WAIT_S:-60}"

# An AMQP 0-9-1 protocol header gets a Connection.Start frame (type 1) back: RabbitMQ, not merely an open port.
amqp_answers() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'AMQP\x00\x00\x09\x01' >&3 && head -c 1 <&3 | od -An -tx1 | grep -q 01" 2>/dev/null
}
version() { rabbitmqctl -q version 2>/dev/null || echo "version unknown"; }

if amqp_answers; then
  echo "rabbitmq: running on 127.0.0.1:$port ($(version))"
  exit 0
fi
if ! command -v rabbitmq-server >/dev/null; then
  cat >&2 <<EOF
rabbitmq: nothing answers AMQP on 127.0.0.1:$port and rabbitmq-server is not installed.
Install it, then run this script again:
  Debian/Ubuntu: apt-get update && apt-get install -y rabbitmq-server
  elsewhere:     https://www.rabbitmq.com/docs/download (or docker run -d -p 5672:5672 rabbitmq:3)
EOF
  exit 1
fi
# Installed but stopped (a container has no init system to start it). The Debian wrapper drops to the rabbitmq user.
echo "rabbitmq: starting (rabbitmq-server -detached)"
# Not fatal: a node still booting refuses a second start, and the wait below covers it.
rabbitmq-server -detached || echo "rabbitmq: rabbitmq-server -detached failed; waiting in case a node is already booting" >&2
for _ in $(seq 1 $((wait_s * 2))); do
  if amqp_answers; then
    echo "rabbitmq: running on 127.0.0.1:$port ($(version))"
    exit 0
  fi
  sleep 0.5
done
echo "rabbitmq: did not answer on 127.0.0.1:$port within ${wait_s} s; see /var/log/rabbitmq/ (or: rabbitmq-diagnostics status)" >&2
exit 1
