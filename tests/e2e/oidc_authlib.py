#!/usr/bin/python3
"""A second, independent relying party for the Rathaus OpenID provider: Python's authlib.

Run by specs/oidc.test.js with Debian's /usr/bin/python3 (python3-authlib 1.2,
python3-requests); scripts/test installs both. authlib does everything a relying party
does on the back channel (PKCE, token request, client authentication, ID token
validation with the OP's JWKS, userinfo, refresh); the browser part (login and consent
pages) is driven by the JS spec in Chromium, which talks to this script in JSON lines:

    python3 -> stdout  {"step": "authorize", "url": "<authorization URL>"}
    stdin  <- JS       {"callback_url": "http://127.0.0.1:8765/callback?code=...&state=...&iss=..."}
    python3 -> stdout  {"step": "done", "report": {...}}          (exit 0)
                   or  {"step": "error", "error": "...", "report": {...}} (exit 1)

Every check this script makes is an assertion here: a wrong answer from the OP ends in
"step": "error" naming the request, the answer and what was expected. The report carries
the values the JS spec asserts on as well (so its failure messages show them).

Commands:
    code-flow           authorization code flow with PKCE S256, state and nonce
    client-credentials  client_credentials grant with client_secret_post
    genkey              make a signing key pair: public JWKS to stdout, private JWK to a file

Logs go to stderr. Loopback HTTP only: AUTHLIB_INSECURE_TRANSPORT is set below.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from urllib.parse import parse_qs, urlsplit

# The OP under test listens on http://127.0.0.1:<port>; authlib refuses plain HTTP without this.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

import requests  # noqa: E402
from authlib.common.security import generate_token  # noqa: E402
from authlib.integrations.base_client.errors import OAuthError  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from authlib.jose import JsonWebKey, JsonWebToken  # noqa: E402
from authlib.oauth2.rfc7523 import PrivateKeyJWT  # noqa: E402
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # noqa: E402
from authlib.oidc.core import CodeIDToken, UserInfo  # noqa: E402

TIMEOUT = 15
# Only the algorithms the OP announces for ID tokens; never "none" or HMAC with a public key.
ID_TOKEN_JWT = JsonWebToken(["ES256", "RS256"])
LEVEL_1 = "STORK-QAA-Level-1"


class Failure(Exception):
    """A check failed: the OP answered something the standards or the spec rule out."""


def log(*args):
    print("oidc_authlib:", *args, file=sys.stderr, flush=True)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def check(cond, message):
    if not cond:
        raise Failure(message)


def b64url_half_hash(value, alg):
    """at_hash / c_hash: left half of the hash named by the JWS alg, base64url (OIDC Core 3.1.3.6)."""
    digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}[alg[-3:]](
        value.encode("ascii")
    ).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def jwt_header(token):
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def discover(issuer):
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    res = requests.get(url, timeout=TIMEOUT)
    check(res.status_code == 200, f"GET {url} answered HTTP {res.status_code}: {res.text[:300]}")
    meta = res.json()
    # OIDC Discovery 1.0 § 4.3: the issuer in the document is exactly the one asked for.
    check(meta.get("issuer") == issuer, f"discovery issuer {meta.get('issuer')!r} is not {issuer!r}")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        check(isinstance(meta.get(key), str), f"discovery lacks {key}")
    return meta


def load_jwks(meta):
    res = requests.get(meta["jwks_uri"], timeout=TIMEOUT)
    check(res.status_code == 200, f"GET {meta['jwks_uri']} answered HTTP {res.status_code}")
    jwks = res.json()
    for k in jwks.get("keys", []):
        # A published key must never carry private parts (RFC 7517 / RFC 7518 § 6).
        leaked = sorted(set(k) & {"d", "p", "q", "dp", "dq", "qi", "k"})
        check(not leaked, f"JWKS key {k.get('kid')} publishes private members {leaked}")
    return jwks, JsonWebKey.import_key_set(jwks)


def validate_id_token(id_token, keyset, *, issuer, client_id, nonce, access_token, expect_alg=None,
                      max_age=None):
    """Signature with the OP's JWKS and the claims of OIDC Core 3.1.3.7 via authlib's CodeIDToken."""
    header = jwt_header(id_token)
    if expect_alg:
        check(header.get("alg") == expect_alg, f"ID token alg is {header.get('alg')}, expected {expect_alg}")
    params = {"nonce": nonce, "client_id": client_id, "access_token": access_token}
    if max_age is not None:
        params["max_age"] = max_age
    claims = ID_TOKEN_JWT.decode(
        id_token,
        keyset,
        claims_cls=CodeIDToken,
        claims_options={
            "iss": {"essential": True, "value": issuer},
            "sub": {"essential": True},
            "aud": {"essential": True},
            "exp": {"essential": True},
            "iat": {"essential": True},
        },
        claims_params=params,
    )
    try:
        claims.validate(leeway=30)
    except Exception as e:  # authlib's JoseError subclasses
        raise Failure(f"authlib rejected the ID token: {e!r}; claims {dict(claims)}") from e
    # authlib checks at_hash only if present; the spec promises it, so check it is there.
    check("at_hash" in claims, f"ID token has no at_hash: {dict(claims)}")
    check(
        claims["at_hash"] == b64url_half_hash(access_token, header["alg"]),
        "at_hash does not match the access token",
    )
    check(claims.get("acr") == LEVEL_1, f"acr is {claims.get('acr')!r}, expected {LEVEL_1}")
    check(isinstance(claims.get("auth_time"), int), f"auth_time missing or not a number: {claims.get('auth_time')!r}")
    check(isinstance(claims.get("sid"), str) and claims["sid"], f"sid missing: {dict(claims)}")
    amr = claims.get("amr")
    check(isinstance(amr, list) and amr and all(isinstance(x, str) for x in amr), f"amr is not a non-empty array: {amr!r}")
    return header, dict(claims)


def oauth_error(fn):
    """Call fn; return the OAuth error code it raised, or None if it succeeded."""
    try:
        fn()
    except OAuthError as e:
        return e.error
    return None


class KidPrivateKeyJWT(PrivateKeyJWT):
    """private_key_jwt whose assertion names the key (kid), as clients with several keys must."""

    def __init__(self, token_endpoint, alg, kid):
        super().__init__(token_endpoint, alg=alg)
        self.kid = kid

    def sign(self, auth, token_endpoint):
        from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign

        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            claims=self.claims,
            alg=self.alg,
            header={"kid": self.kid},
        )


def make_session(meta, args, *, scope=None, redirect_uri=None):
    method = args.auth_method
    if method == "private_key_jwt":
        with open(args.private_key, encoding="utf-8") as f:
            jwk = json.load(f)
        alg = "ES256" if jwk["kty"] == "EC" else "RS256"
        sess = OAuth2Session(
            args.client_id,
            jwk,
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="private_key_jwt",
        )
        # aud = the token endpoint (OIDC Core 9), for introspection and revocation too.
        sess.register_client_auth_method(KidPrivateKeyJWT(meta["token_endpoint"], alg, jwk.get("kid")))
        return sess
    return OAuth2Session(
        args.client_id,
        args.client_secret,
        scope=scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method=method,
    )


def client_auth(sess, args):
    """The session's client authentication, for plain requests to introspection/revocation."""
    return sess.client_auth(args.auth_method)


def read_callback():
    line = sys.stdin.readline()
    check(line, "no callback URL on stdin (the browser part ended without one)")
    msg = json.loads(line)
    check(msg.get("callback_url"), "the browser never reached the redirect URI (see the browser run in the JS message)")
    return msg["callback_url"]


# ---------------------------------------------------------------------------------------
# code-flow
# ---------------------------------------------------------------------------------------


def code_flow(args, report):
    meta = discover(args.issuer)
    jwks, keyset = load_jwks(meta)
    report["jwks_kids"] = [k.get("kid") for k in jwks.get("keys", [])]
    sess = make_session(meta, args, scope=args.scope, redirect_uri=args.redirect_uri)

    verifier = generate_token(64)
    nonce = generate_token(24)
    state = generate_token(24)
    url, state = sess.create_authorization_url(
        meta["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce,
        **({"prompt": args.prompt} if args.prompt else {}),
    )
    report["authorize_url"] = url
    # authlib put the S256 challenge in; make sure, since the OP refuses requests without.
    check(f"code_challenge={create_s256_code_challenge(verifier)}" in url, "authlib sent no S256 code_challenge")
    check("code_challenge_method=S256" in url, "authlib sent no code_challenge_method=S256")
    emit({"step": "authorize", "url": url})

    callback = read_callback()
    report["callback_url"] = callback
    q = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    check("error" not in q, f"authorization error at the redirect URI: {q}")
    # RFC 9207: the OP announces iss in authorization responses, so it must be the issuer.
    if meta.get("authorization_response_iss_parameter_supported"):
        check(q.get("iss") == args.issuer, f"iss in the authorization response is {q.get('iss')!r}, not {args.issuer!r}")

    # authlib checks the state against ours, sends code, redirect_uri and code_verifier.
    try:
        token = sess.fetch_token(meta["token_endpoint"], authorization_response=callback, state=state,
                                 code_verifier=verifier)
    except OAuthError as e:
        raise Failure(f"token request ({args.auth_method}) refused: {e.error}: {e.description}") from e
    report["token_keys"] = sorted(token.keys())
    check(str(token.get("token_type", "")).lower() == "bearer", f"token_type is {token.get('token_type')!r}")
    check(isinstance(token.get("id_token"), str), f"no id_token in the token response: {sorted(token)}")

    header, claims = validate_id_token(
        token["id_token"], keyset, issuer=args.issuer, client_id=args.client_id, nonce=nonce,
        access_token=token["access_token"], expect_alg=args.expect_alg,
    )
    report["id_token_header"] = header
    report["id_token_claims"] = claims

    # UserInfo: GET with the Bearer header (authlib's session adds it), and POST with the header.
    res = sess.get(meta["userinfo_endpoint"], timeout=TIMEOUT)
    check(res.status_code == 200, f"GET userinfo answered HTTP {res.status_code}: {res.text[:300]}")
    info = UserInfo(res.json())
    report["userinfo"] = dict(info)
    check(info.get("sub") == claims["sub"], f"userinfo sub {info.get('sub')!r} differs from the ID token's {claims['sub']!r}")
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    res = requests.post(meta["userinfo_endpoint"], headers=bearer, timeout=TIMEOUT)
    check(res.status_code == 200, f"POST userinfo (Bearer header) answered HTTP {res.status_code}")
    check(res.json().get("sub") == claims["sub"], "POST userinfo: other sub")
    # RFC 6750 2.2 (form body) is optional for servers: recorded, not asserted.
    res = requests.post(meta["userinfo_endpoint"], data={"access_token": token["access_token"]}, timeout=TIMEOUT)
    report["userinfo_post_body_status"] = res.status_code

    if args.refresh:
        check(isinstance(token.get("refresh_token"), str), f"no refresh_token although asked for: {sorted(token)}")
        old_rt = token["refresh_token"]
        try:
            new = sess.refresh_token(meta["token_endpoint"], refresh_token=old_rt)
        except OAuthError as e:
            raise Failure(f"refresh refused: {e.error}: {e.description}") from e
        # authlib copies the old refresh token into the result when the answer has none.
        check(new.get("refresh_token") and new["refresh_token"] != old_rt, "refresh did not rotate the refresh token")
        check(new.get("access_token") and new["access_token"] != token["access_token"], "refresh gave no new access token")
        if new.get("id_token"):
            # OIDC Core 12.2: same iss, sub, aud; auth_time of the original authentication.
            h2, c2 = jwt_header(new["id_token"]), ID_TOKEN_JWT.decode(new["id_token"], keyset)
            c2.validate(leeway=30)
            for k in ("iss", "sub", "aud", "auth_time"):
                check(c2.get(k) == claims.get(k), f"refreshed ID token: {k} {c2.get(k)!r} != {claims.get(k)!r}")
            report["refreshed_id_token_alg"] = h2.get("alg")
        res = sess.get(meta["userinfo_endpoint"], timeout=TIMEOUT)
        check(res.status_code == 200, f"userinfo with the refreshed access token answered HTTP {res.status_code}")
        report["refresh_rotated"] = True

    if meta.get("introspection_endpoint"):
        auth = client_auth(sess, args)
        at = sess.token["access_token"]
        res = requests.post(meta["introspection_endpoint"], data={"token": at}, auth=auth, timeout=TIMEOUT)
        check(res.status_code == 200, f"introspection ({args.auth_method}) answered HTTP {res.status_code}: {res.text[:300]}")
        intro = res.json()
        report["introspection"] = intro
        check(intro.get("active") is True, f"introspection of a fresh access token: {intro}")
        check(intro.get("client_id") == args.client_id, f"introspection client_id {intro.get('client_id')!r}")
        check(intro.get("sub") == claims["sub"], f"introspection sub {intro.get('sub')!r}")

    # Last, as the OP SHOULD revoke what the code gave when it is reused (RFC 6749 4.1.2):
    # the code is single use, a second exchange fails with invalid_grant.
    sess2 = make_session(meta, args, scope=args.scope, redirect_uri=args.redirect_uri)
    err = oauth_error(lambda: sess2.fetch_token(
        meta["token_endpoint"], authorization_response=callback, state=state, code_verifier=verifier))
    report["code_reuse_error"] = err
    check(err == "invalid_grant", f"reusing the authorization code gave {err!r}, expected invalid_grant")
    return report


# ---------------------------------------------------------------------------------------
# client-credentials (client_secret_post)
# ---------------------------------------------------------------------------------------


def client_credentials(args, report):
    meta = discover(args.issuer)
    sess = OAuth2Session(args.client_id, args.client_secret, scope=args.scope,
                         token_endpoint_auth_method="client_secret_post")
    captured = {}

    def hook(res, *a, **kw):
        captured["body"] = res.request.body
        captured["authorization"] = res.request.headers.get("Authorization")

    sess.hooks["response"].append(hook)
    try:
        token = sess.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    except OAuthError as e:
        raise Failure(f"client_credentials with client_secret_post refused: {e.error}: {e.description}") from e
    body = captured.get("body") or ""
    body = body.decode() if isinstance(body, bytes) else body
    # Make sure authlib really authenticated in the body and not with Basic.
    check("client_secret=" in body and captured.get("authorization") is None,
          f"authlib did not use client_secret_post (body {body!r}, Authorization {captured.get('authorization')!r})")
    report["token_keys"] = sorted(token.keys())
    check(str(token.get("token_type", "")).lower() == "bearer", f"token_type is {token.get('token_type')!r}")
    check(isinstance(token.get("access_token"), str) and len(token["access_token"]) >= 20, "no access_token")
    # RFC 6749 4.4.3: no refresh token for client credentials (SHOULD NOT); no ID token either.
    check("refresh_token" not in token, "client_credentials answered with a refresh_token")
    check("id_token" not in token, "client_credentials answered with an id_token")
    report["scope"] = token.get("scope")

    # The wrong secret, same method: invalid_client (RFC 6749 5.2), HTTP 401 or 400.
    bad = OAuth2Session(args.client_id, args.client_secret + "x", scope=args.scope,
                        token_endpoint_auth_method="client_secret_post")
    err = oauth_error(lambda: bad.fetch_token(meta["token_endpoint"], grant_type="client_credentials"))
    report["wrong_secret_error"] = err
    check(err == "invalid_client", f"a wrong client_secret (post) gave {err!r}, expected invalid_client")
    return report


# ---------------------------------------------------------------------------------------
# private_key_jwt: a wrong key is refused
# ---------------------------------------------------------------------------------------


def wrong_key(args, report):
    """client_credentials/refresh are not needed: a token request with an assertion signed by a
    key the client did not register must fail with invalid_client before any grant check."""
    meta = discover(args.issuer)
    other = JsonWebKey.generate_key("EC", "P-256", is_private=True).as_dict(is_private=True)
    other["kid"] = "not-registered"
    sess = OAuth2Session(args.client_id, other, token_endpoint_auth_method="private_key_jwt",
                         redirect_uri=args.redirect_uri)
    sess.register_client_auth_method(KidPrivateKeyJWT(meta["token_endpoint"], "ES256", other["kid"]))
    err = oauth_error(lambda: sess.fetch_token(
        meta["token_endpoint"], grant_type="authorization_code", code="invalid-code", code_verifier="x" * 43))
    report["wrong_key_error"] = err
    check(err == "invalid_client", f"an assertion signed with an unregistered key gave {err!r}, expected invalid_client")
    return report


# ---------------------------------------------------------------------------------------
# genkey
# ---------------------------------------------------------------------------------------


def genkey(args, report):
    if args.kty == "EC":
        key = JsonWebKey.generate_key("EC", "P-256", is_private=True)
    else:
        key = JsonWebKey.generate_key("RSA", 2048, is_private=True)
    private = key.as_dict(is_private=True)
    public = key.as_dict(is_private=False)
    kid = key.thumbprint()
    alg = "ES256" if args.kty == "EC" else "RS256"
    for d in (private, public):
        d.update({"kid": kid, "use": "sig", "alg": alg})
    fd = os.open(args.private_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(private, f)
    report["jwks"] = {"keys": [public]}
    report["kid"] = kid
    return report


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    cf = sub.add_parser("code-flow")
    cf.add_argument("--issuer", required=True)
    cf.add_argument("--client-id", required=True)
    cf.add_argument("--client-secret")
    cf.add_argument("--auth-method", default="client_secret_post",
                    choices=["client_secret_basic", "client_secret_post", "private_key_jwt"])
    cf.add_argument("--private-key", help="private JWK file (private_key_jwt)")
    cf.add_argument("--redirect-uri", required=True)
    cf.add_argument("--scope", default="openid profile email")
    cf.add_argument("--prompt")
    cf.add_argument("--refresh", action="store_true", help="expect a refresh token and refresh once")
    cf.add_argument("--expect-alg", help="the ID token's alg (ES256 or RS256)")

    cc = sub.add_parser("client-credentials")
    cc.add_argument("--issuer", required=True)
    cc.add_argument("--client-id", required=True)
    cc.add_argument("--client-secret", required=True)
    cc.add_argument("--scope")

    wk = sub.add_parser("wrong-key")
    wk.add_argument("--issuer", required=True)
    wk.add_argument("--client-id", required=True)
    wk.add_argument("--redirect-uri", required=True)

    gk = sub.add_parser("genkey")
    gk.add_argument("--kty", choices=["EC", "RSA"], default="EC")
    gk.add_argument("--private-out", required=True)

    args = p.parse_args()
    if args.command == "code-flow" and args.auth_method == "private_key_jwt" and not args.private_key:
        p.error("--auth-method private_key_jwt needs --private-key")
    if args.command == "code-flow" and args.auth_method != "private_key_jwt" and not args.client_secret:
        p.error(f"--auth-method {args.auth_method} needs --client-secret")

    report = {"command": args.command, "started": int(time.time())}
    fn = {"code-flow": code_flow, "client-credentials": client_credentials, "wrong-key": wrong_key,
          "genkey": genkey}[args.command]
    try:
        fn(args, report)
    except Failure as e:
        emit({"step": "error", "error": str(e), "report": report})
        return 1
    except Exception as e:  # a crash is a failure too, with its type for the JS side
        log(f"unexpected {type(e).__name__}")
        emit({"step": "error", "error": f"{type(e).__name__}: {e}", "report": report})
        return 1
    emit({"step": "done", "report": report})
    return 0


if __name__ == "__main__":
    sys.exit(main())
