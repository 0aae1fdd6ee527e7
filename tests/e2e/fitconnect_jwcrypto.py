#!/usr/bin/python3
"""A FIT-Connect sender and subscriber written with an independent JOSE implementation
(jwcrypto) and plain HTTP (requests), against the demo's Zustelldienst. Behaves like the
SDKs in the field: client_secret_post without scope, kid = the key's RFC 7638 thumbprint,
zip DEF, repeated attachment ids, metadata-only submit in v1.

Usage: fitconnect_jwcrypto.py DEMO_JSON
Prints one JSON line {"ok": true, ...} or exits non-zero with the reason on stderr.
"""
import hashlib
import json
import sys
import uuid

import requests
from jwcrypto import jwe, jwk, jws
from jwcrypto.common import json_encode


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


demo = json.load(open(sys.argv[1]))
fc = demo["fit_connect"]
base = demo["base_url"]
v1 = fc["submission_api_v1"]


def token(who):
    r = requests.post(fc["token_url"], data={
        "grant_type": "client_credentials",
        "client_id": fc[who]["client_id"],
        "client_secret": fc[who]["client_secret"],
    })
    check(r.status_code == 200, f"token {who}: {r.status_code} {r.text}")
    return {"Authorization": "Bearer " + r.json()["access_token"]}


sender, subscriber = token("sender"), token("subscriber")
dest = fc["destination_id"]

# Sender: public destination info and key, without a token.
d = requests.get(f"{v1}/destinations/{dest}").json()
check(d["status"] == "active", f"destination not active: {d}")
key_json = requests.get(f"{v1}/destinations/{dest}/keys/{d['encryptionKid']}").json()
check(key_json["key_ops"] == ["wrapKey"] and len(key_json["n"]) >= 683, f"key: {key_json}")
pub = jwk.JWK(**{k: key_json[k] for k in ("kty", "n", "e")})
thumb = pub.thumbprint()


def encrypt(data, cty="application/json"):
    prot = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "zip": "DEF", "cty": cty, "kid": thumb}
    t = jwe.JWE(data, json_encode(prot))
    t.add_recipient(pub)
    return t.serialize(compact=True)


att = str(uuid.uuid4())
pdf = b"%PDF-1.7 Meldebescheinigung " + bytes(range(256)) * 40
r = requests.post(f"{v1}/submissions", headers=sender, json={
    "destinationId": dest, "announcedAttachments": [att, att],
    "serviceType": {"name": "", "identifier": fc["service_identifier"]}})
check(r.status_code == 201, f"create: {r.status_code} {r.text}")
created = r.json()
sid, case = created["submissionId"], created["caseId"]
for _ in range(2):  # the SDK uploads the repeated id twice: the second replaces the first
    r = requests.put(f"{v1}/submissions/{sid}/attachments/{att}", headers={**sender, "Content-Type": "application/jose"},
                     data=encrypt(pdf, "application/pdf"))
    check(r.status_code == 204, f"upload: {r.status_code} {r.text}")
metadata = {"$schema": "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json",
            "contentStructure": {"attachments": [{"attachmentId": att, "purpose": "attachment", "mimeType": "application/pdf",
                                                  "hash": {"type": "sha512", "content": hashlib.sha512(pdf).hexdigest()}}]}}
r = requests.put(f"{v1}/submissions/{sid}", headers=sender, json={"encryptedMetadata": encrypt(json.dumps(metadata).encode())})
check(r.status_code == 202, f"submit: {r.status_code} {r.text}")
check(r.json()["attachments"] == [att], f"submit answer: {r.text}")

# Subscriber: pick up (no destinationId, no paging), fetch, decrypt with the private key.
priv_enc = jwk.JWK(**json.load(open(fc["decryption_jwk_file"])))
priv_sig = jwk.JWK(**json.load(open(fc["signing_jwk_file"])))
lst = requests.get(f"{v1}/submissions", headers=subscriber).json()
check(any(s["submissionId"] == sid for s in lst["submissions"]), f"pickup list: {lst}")
sub = requests.get(f"{v1}/submissions/{sid}", headers=subscriber).json()


def decrypt(compact):
    t = jwe.JWE()
    t.deserialize(compact, key=priv_enc)
    return t.payload


check(json.loads(decrypt(sub["encryptedMetadata"])) == metadata, "metadata differs after the round trip")
raw = requests.get(f"{v1}/submissions/{sid}/attachments/{att}", headers=subscriber).text
got = decrypt(raw)
check(hashlib.sha512(got).hexdigest() == metadata["contentStructure"]["attachments"][0]["hash"]["content"], "attachment hash differs")

# The event log verifies with the service's JWKS (jwcrypto PS512).
keys = jwk.JWKSet.from_json(requests.get(f"{base}/submission-api/.well-known/jwks.json").text)
log = requests.get(f"{v1}/cases/{case}/events", headers=subscriber).json()["eventLog"]
tags = None
for e in log:
    t = jws.JWS()
    t.deserialize(e)
    hdr = t.jose_header
    check(hdr["typ"] == "secevent+jwt" and hdr["alg"] == "PS512", f"SET header {hdr}")
    t.verify(keys.get_key(hdr["kid"]), alg="PS512")
    claims = json.loads(t.payload)
    (uri, payload), = claims["events"].items()
    if uri.endswith("/submit-submission"):
        tags = payload["authenticationTags"]
check(tags and tags["metadata"] == sub["encryptedMetadata"].split(".")[4], f"tags: {tags}")

# Accept, signed with the destination's key by jwcrypto.
claims = {"$schema": "https://schema.fitko.de/fit-connect/set-payload/1.2.2/set-payload.schema.json",
          "jti": str(uuid.uuid4()), "iss": dest, "iat": 1700000000, "sub": f"submission:{sid}", "txn": f"case:{case}",
          "events": {"https://schema.fitko.de/fit-connect/events/accept-submission": {"authenticationTags": tags}}}
s = jws.JWS(json.dumps(claims).encode())
s.add_signature(priv_sig, alg="PS512", protected=json_encode({"typ": "secevent+jwt", "alg": "PS512", "kid": priv_sig.kid}))
r = requests.post(f"{v1}/cases/{case}/events", headers={**subscriber, "Content-Type": "application/jose"}, data=s.serialize(compact=True))
check(r.status_code == 204, f"accept: {r.status_code} {r.text}")
log = requests.get(f"{v1}/cases/{case}/events", headers=sender).json()
check(log["totalCount"] == 4, f"event log after accept: {log['totalCount']}")
print(json.dumps({"ok": True, "submissionId": sid, "events": log["totalCount"]}))
