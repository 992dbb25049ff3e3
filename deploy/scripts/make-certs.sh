#!/usr/bin/env bash
# A private CA and Redis's server certificate, for REDIS_TLS=true:
#   make-certs.sh DIR [NAME...]       the host that runs Redis
#   make-certs.sh --client DIR        a host that only connects to it (make up ROLE=worker)
# DIR gets ca.crt (give it to every client), ca.key (keep it here), redis.crt and
# redis.key. The certificate names redis, localhost and 127.0.0.1, plus each NAME (a host
# name or an IP address: how remote workers reach this host) and REDIS_TLS_NAMES
# (comma-separated). An existing CA is kept; the server certificate is made again only
# when it is missing, expires within 30 days, or lacks a name asked for.
# A CA certificate is never replaced: with ca.crt but no ca.key (a worker host's copy of
# another host's CA) nothing is made, and where a certificate would have to be signed the
# script stops, naming the file. --client makes nothing at all: it checks that DIR holds
# the ca.crt copied from the Redis host, and says what to do when it does not.
set -euo pipefail

usage="usage: make-certs.sh [--client] DIR [NAME...]"
client=false
if [[ ${1:-} == --client ]]; then
  client=true
  shift
fi
dir=${1:?$usage}
shift

fail() {
  echo "make-certs: $*" >&2
  exit 2
}

if [[ $client == true ]]; then
  [[ -s $dir/ca.crt ]] || fail "$dir/ca.crt is missing. A worker host (ROLE=worker) needs" \
    "the CA certificate of the host that runs Redis, and nothing else from its certs/:" \
    "copy it from there (e.g. scp hostA:conveyor/certs/ca.crt $dir/ca.crt), never its" \
    "ca.key; set CONVEYOR_CERTS_DIR for another folder (docs/deploy.md)"
  openssl x509 -in "$dir/ca.crt" -noout 2>/dev/null ||
    fail "$dir/ca.crt is not a PEM certificate: copy certs/ca.crt from the host that runs Redis again"
  echo "make-certs: $dir/ca.crt is there (a worker host needs no other certificate)"
  exit 0
fi
IFS=', ' read -r -a extra <<<"${REDIS_TLS_NAMES:-}"
names=(redis localhost 127.0.0.1 "${extra[@]}" "$@")

# Only the owner may enter the directory or read a private key (0600), even in a copy
# of the folder; certificates are public (0644). Compose hands Redis its key through a
# volume (`make redis-tls-key`), Swarm and Kubernetes through their secrets.
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
# Keys made by an older version were readable by all.
for key in "$dir/ca.key" "$dir/redis.key"; do
  [[ ! -e $key ]] || chmod 600 "$key"
done

if [[ -s $dir/ca.key && ! -s $dir/ca.crt ]]; then
  fail "$dir/ca.key is there but not its certificate $dir/ca.crt: put ca.crt back (every" \
    "client trusts it), or remove ca.key too to start a new CA"
fi
if [[ ! -s $dir/ca.crt ]]; then
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 -sha256 \
    -subj "/O=Conveyor/CN=Conveyor private CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
  chmod 644 "$dir/ca.crt"
  echo "make-certs: created a private CA in $dir (ca.key stays here, ca.crt goes to clients)"
fi

subject_alt_names() {
  local name entries=()
  for name in "${names[@]}"; do
    [[ -n $name ]] || continue
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then entries+=("IP:$name"); else entries+=("DNS:$name"); fi
  done
  local IFS=,
  printf '%s' "${entries[*]}"
}

current_is_fine() {
  [[ -s $dir/redis.crt && -s $dir/redis.key ]] || return 1
  openssl verify -CAfile "$dir/ca.crt" "$dir/redis.crt" >/dev/null 2>&1 || return 1
  openssl x509 -in "$dir/redis.crt" -noout -checkend $((30 * 86400)) >/dev/null || return 1
  local text name
  text=$(openssl x509 -in "$dir/redis.crt" -noout -ext subjectAltName)
  for name in "${names[@]}"; do
    [[ -z $name ]] || grep -q -e "DNS:$name\b" -e "IP Address:$name\b" <<<"$text" || return 1
  done
}

if current_is_fine; then
  echo "make-certs: $dir/redis.crt is valid for ${names[*]}"
  exit 0
fi

# Signing needs the CA's key. A ca.crt without it was copied from the host that runs
# Redis: replacing it with a new CA would cut this host off from that Redis.
[[ -s $dir/ca.key ]] || fail "$dir/ca.crt is there but not its key $dir/ca.key, so" \
  "redis.crt cannot be issued here, and a new CA would replace the one the other hosts" \
  "trust. On a worker host run 'make up ROLE=worker' (it needs ca.crt only); on the host" \
  "that runs Redis put ca.key back into $dir"

sans=$(subject_alt_names)
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$dir/redis.key" -out "$dir/redis.csr" -subj "/O=Conveyor/CN=redis" 2>/dev/null
openssl x509 -req -in "$dir/redis.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
  -CAcreateserial -out "$dir/redis.crt" -days 825 -sha256 \
  -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n' "$sans") \
  2>/dev/null
rm -f "$dir/redis.csr"
chmod 644 "$dir/redis.crt"
chmod 600 "$dir/redis.key"
echo "make-certs: issued $dir/redis.crt for $sans"
