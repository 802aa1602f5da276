#!/usr/bin/env bash
# Makes a private CA and a TLS server certificate for nginx in front of lark-bridge.
#
#   scripts/make-cert.sh [--out DIR] [--days N] [--new-ca] NAME_OR_IP [NAME_OR_IP …]
#   scripts/make-cert.sh --out /etc/lark-bridge/tls bridge.corp.example 10.0.0.5
#
# Every NAME_OR_IP goes into the certificate's subjectAltName: IP addresses as "IP:", names as
# "DNS:". Clients check the address they connect to against that list (the common name is
# ignored), so a LAN address that clients type must be listed: forgetting the IP in the SAN is
# the classic reason for "certificate is not valid for 10.0.0.5" although the name works.
#
# Writes into DIR (default ./tls): ca.key, ca.crt (the CA: give ca.crt to clients, keep ca.key
# offline), server.key, server.crt (for nginx's ssl_certificate / ssl_certificate_key).
# An existing CA in DIR is reused (clients that trust it keep working) unless --new-ca is given.
set -euo pipefail

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

out=./tls
days=825 # the longest validity Apple platforms accept for a TLS server certificate
new_ca=0
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --out) [ $# -ge 2 ] || { echo "make-cert: --out needs a directory" >&2; exit 2; }; out=$2; shift 2 ;;
    --days) [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "make-cert: --days needs a number of days" >&2; exit 2; }; days=$2; shift 2 ;;
    --new-ca) new_ca=1; shift ;;
    -*) echo "make-cert: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
if [ ${#names[@]} -eq 0 ]; then
  echo "make-cert: give the name(s) and IP address(es) clients use, e.g. make-cert.sh bridge.corp.example 10.0.0.5" >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "make-cert: openssl is not installed (apt-get install openssl)" >&2; exit 1; }

san=()
for n in "${names[@]}"; do
  if [[ $n =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || $n == *:* ]]; then
    san+=("IP:$n")
  elif [[ $n =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$ ]]; then
    san+=("DNS:$n")
  else
    echo "make-cert: \"$n\" is neither an IP address nor a DNS name" >&2
    exit 2
  fi
done
san_list=$(IFS=,; echo "${san[*]}")

mkdir -p "$out"
umask 077
if [ "$new_ca" = 1 ] || [ ! -s "$out/ca.key" ] || [ ! -s "$out/ca.crt" ]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 \
    -subj "/CN=lark-bridge private CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
  echo "make-cert: new CA $out/ca.crt (clients must trust it; keep $out/ca.key private)"
else
  echo "make-cert: reusing the CA in $out/ca.crt"
fi

ext=$(mktemp)
csr=$(mktemp)
trap 'rm -f "$ext" "$csr"' EXIT
cat > "$ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san_list
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
  -subj "/CN=${names[0]}" -keyout "$out/server.key" -out "$csr" 2>/dev/null
openssl x509 -req -in "$csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -sha256 \
  -days "$days" -extfile "$ext" -out "$out/server.crt" 2>/dev/null
rm -f "$out/ca.srl"
chmod 644 "$out/ca.crt" "$out/server.crt"
echo "make-cert: server certificate $out/server.crt for $san_list, valid $days days"
echo "make-cert: nginx: ssl_certificate $out/server.crt; ssl_certificate_key $out/server.key;"
