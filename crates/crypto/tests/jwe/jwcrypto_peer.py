"""Independent JOSE peer for crates/crypto's interoperability tests, using jwcrypto.

Run as `/usr/bin/python3 jwcrypto_peer.py COMMAND` with a JSON object on stdin; prints one
JSON object on stdout. Binary values travel as base64url without padding. Any failure exits
non-zero with the reason on stderr.

Commands (encrypt and decrypt take batches: one interpreter start and key import for all):
  encrypt     {jwk, items: [{plaintext, zip?, kid?, cty?, typ?}]} -> {jwes: [compact]}
              RSA-OAEP-256 + A256GCM
  decrypt     {jwk (private), jwes: [compact]}
              -> {results: [{plaintext, header} | {error}]}
  verify      {jwk (public), jws}               -> {payload, header}   PS512 only
  sign        {jwk (private) | null, size?, payload, header} -> {jws, public_jwk}
              (null: jwcrypto generates its own RSA key of `size` bits, default 4096)
  thumbprint  {jwk}                             -> {thumbprint}   RFC 7638, SHA-256
"""

import base64
import json
import sys

from jwcrypto import jwe, jwk, jws
from jwcrypto.common import json_decode


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encrypt(req):
    key = jwk.JWK(**req["jwk"])
    jwes = []
    for item in req["items"]:
        header = {"alg": "RSA-OAEP-256", "enc": "A256GCM"}
        if item.get("zip"):
            header["zip"] = "DEF"
        for name in ("kid", "cty", "typ"):
            if item.get(name) is not None:
                header[name] = item[name]
        token = jwe.JWE(unb64u(item["plaintext"]), protected=json.dumps(header))
        token.add_recipient(key)
        jwes.append(token.serialize(compact=True))
    return {"jwes": jwes}


def decrypt(req):
    key = jwk.JWK(**req["jwk"])
    results = []
    for compact in req["jwes"]:
        token = jwe.JWE()
        try:
            token.deserialize(compact, key=key)
        except Exception as e:  # noqa: BLE001 - any refusal is a result here
            results.append({"error": type(e).__name__})
            continue
        results.append({
            "plaintext": b64u(token.payload),
            "header": json_decode(token.objects["protected"]),
        })
    return {"results": results}


def verify(req):
    key = jwk.JWK(**req["jwk"])
    token = jws.JWS()
    token.deserialize(req["jws"])
    token.verify(key, alg="PS512")
    return {
        "payload": b64u(token.payload),
        "header": json_decode(token.objects["protected"]),
    }


def sign(req):
    if req.get("jwk") is None:
        key = jwk.JWK.generate(kty="RSA", size=req.get("size", 4096))
    else:
        key = jwk.JWK(**req["jwk"])
    header = dict(req["header"])
    if header.get("kid") is None:
        header["kid"] = key.thumbprint()
    token = jws.JWS(unb64u(req["payload"]))
    token.add_signature(key, alg="PS512", protected=json.dumps(header))
    return {
        "jws": token.serialize(compact=True),
        "public_jwk": json.loads(key.export_public()),
    }


def thumbprint(req):
    return {"thumbprint": jwk.JWK(**req["jwk"]).thumbprint()}


COMMANDS = {
    "encrypt": encrypt,
    "decrypt": decrypt,
    "verify": verify,
    "sign": sign,
    "thumbprint": thumbprint,
}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit("usage: jwcrypto_peer.py " + "|".join(COMMANDS))
    request = json.load(sys.stdin)
    json.dump(COMMANDS[sys.argv[1]](request), sys.stdout)


if __name__ == "__main__":
    main()
