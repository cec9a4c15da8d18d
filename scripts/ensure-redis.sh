#!/usr/bin/env bash
# Makes sure Redis answers on 127.0.0.1:6379: starts it where installed but stopped, installs it
# with apt where absent. Used by .ci/run; safe to run by hand.
set -euo pipefail
ping_redis() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if command -v redis-cli >/dev/null && ping_redis; then
  echo "redis: running ($(redis-cli -h 127.0.0.1 info server | grep redis_version | tr -d '\r'))"
  exit 0
fi
if ! command -v redis-server >/dev/null; then
  echo "redis: not installed; installing Debian's redis-server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
echo "redis: starting"
mkdir -p /var/lib/redis /var/log/redis
redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
for _ in $(seq 1 50); do
  if ping_redis; then echo "redis: running"; exit 0; fi
  sleep 0.2
done
echo "redis: did not start; see /var/log/redis/ci.log" >&2
exit 1
