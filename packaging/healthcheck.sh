#!/bin/bash
# Exits 0 when facerec's /ready answers 200: the models are loaded and the database answers. Needs
# only bash (the container has no curl). Port: FACEREC_HEALTH_PORT, else the port of FACEREC_BIND,
# else 8000.
port="${FACEREC_HEALTH_PORT:-${FACEREC_BIND##*:}}"
port="${port:-8000}"
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
read -r -t 5 _ status _ <&3
[ "$status" = 200 ]
