#!/usr/bin/env python3
"""Prints a fresh identity for one harness run: Kafka's cluster id, an S3 access key and secret.

Usage: identity.py [COUNT]  (COUNT lines, default 1; tests draw many)

The cluster id is 16 random bytes printed as Kafka prints a Uuid (URL-safe base64, unpadded).
A value starting with "-" would be read as an option by kafka-storage or versitygw, so it is
drawn again, as Kafka's Uuid.randomUuid does: one draw in 64 starts with "-".
"""
import base64
import secrets
import string
import sys

ALNUM = string.ascii_uppercase + string.digits


def draw(make):
    while True:
        value = make()
        if not value.startswith("-"):
            return value


def identity():
    cluster_id = draw(lambda: base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="))
    access_key = "STRATA" + "".join(secrets.choice(ALNUM) for _ in range(14))
    secret_key = draw(lambda: secrets.token_urlsafe(30))
    return cluster_id, access_key, secret_key


for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1):
    print(*identity())
