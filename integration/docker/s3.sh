#!/usr/bin/env bash
# The S3 image's entry point, after integration/scripts/start.sh:
#   s3.sh serve    makes a self-signed certificate for 127.0.0.1 in $S3_TLS_DIR (once) and runs
#                  versitygw over HTTPS with its posix backend in /data;
#   s3.sh health   succeeds once the server answers on its health endpoint;
#   s3.sh bucket   creates $STRATA_S3_BUCKET with a SigV4-signed request (an existing one is fine).
# Environment: S3_PORT (default 7070), S3_TLS_DIR (default /tls), STRATA_S3_REGION,
# STRATA_S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
set -euo pipefail

port=${S3_PORT:-7070}
tls=${S3_TLS_DIR:-/tls}
url=https://127.0.0.1:$port
region=${STRATA_S3_REGION:-us-east-1}

case "${1:-serve}" in
serve)
  if [ ! -s "$tls/s3.crt" ]; then
    mkdir -p "$tls"
    # Written to temporary names and renamed: the tests never see half a certificate.
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
      -subj "/CN=strata-it S3" -addext "subjectAltName=IP:127.0.0.1" \
      -keyout "$tls/s3.key.tmp" -out "$tls/s3.crt.tmp")
    chmod 0644 "$tls/s3.crt.tmp"
    mv "$tls/s3.key.tmp" "$tls/s3.key"
    mv "$tls/s3.crt.tmp" "$tls/s3.crt"
  fi
  mkdir -p /data
  # ETags from the data-integrity checksum instead of MD5, as in start.sh.
  exec versitygw --access "${AWS_ACCESS_KEY_ID:?}" --secret "${AWS_SECRET_ACCESS_KEY:?}" \
    --region "$region" --port "127.0.0.1:$port" --cert "$tls/s3.crt" --key "$tls/s3.key" \
    --health /health posix --data-integrity-etag /data
  ;;
health)
  [ "$(curl -s --cacert "$tls/s3.crt" -o /dev/null -w '%{http_code}' "$url/health")" = 200 ]
  ;;
bucket)
  bucket=${STRATA_S3_BUCKET:?}
  code=$(curl -sS --cacert "$tls/s3.crt" -o /tmp/response -w '%{http_code}' -X PUT \
    -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
    --aws-sigv4 "aws:amz:$region:s3" --user "${AWS_ACCESS_KEY_ID:?}:${AWS_SECRET_ACCESS_KEY:?}" \
    "$url/$bucket") || true
  case "$code" in
  200 | 409) ;;
  *)
    echo "creating bucket $bucket answered HTTP $code: $(cat /tmp/response 2>/dev/null)" >&2
    exit 1
    ;;
  esac
  ;;
*)
  echo "usage: s3.sh serve|health|bucket" >&2
  exit 2
  ;;
esac
