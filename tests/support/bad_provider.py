"""An OpenID Provider under the tests' control, serving real HTTP on loopback.

It signs whatever ID token a test asks for — wrong issuer, expired, `alg: none`, HS256
keyed with the public key, an unknown key id, any claims and any `typ` — so the relying
party's every check can be shown to refuse it. It signs access tokens too, a person's or a
machine client's own (Auth0's client-credentials shape), for the bearer checks. It also
checks our PKCE verifier and refuses replayed codes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc import jws, jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "marketedge-test"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class IssuedCode:
    challenge: str
    id_token: str
    used: bool = False


@dataclass
class BadProvider:
    port: int = 0
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    extra_keys: list[RSAKey] = field(default_factory=list)
    publish_unparseable_key: bool = False
    discovery_issuer: str | None = None
    userinfo_sub: str | None = None
    userinfo_extra: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, IssuedCode] = field(default_factory=dict)
    jwks_fetches: int = 0
    down: bool = False
    last_claims: dict[str, Any] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- tokens -------------------------------------------------------------------------
    def claims(self, login_nonce: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": f"user-{secrets.token_hex(4)}",
            "aud": CLIENT_ID,
            "exp": now + 300,
            "iat": now,
            "nonce": login_nonce,
            "email": f"{secrets.token_hex(4)}@bad-provider.test",
            "email_verified": True,
            "name": "Bad Provider User",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not ...}

    def access_claims(self, audience: str = "api", **overrides: Any) -> dict[str, Any]:
        """A person's access token (Auth0's default profile: no nonce, `azp`, `scope`)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": f"user-{secrets.token_hex(4)}",
            "aud": [audience, f"{self.issuer}/userinfo"],
            "azp": CLIENT_ID,
            "exp": now + 300,
            "iat": now,
            "scope": "openid profile email",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not ...}

    def client_claims(self, client: str, audience: str = "api", **overrides: Any) -> dict[str, Any]:
        """A machine client's own token, as Auth0 issues it for the client-credentials grant."""
        return self.access_claims(
            audience,
            **{
                "sub": f"{client}@clients",
                "aud": audience,
                "azp": client,
                "gty": "client-credentials",
                "scope": "",
                **overrides,
            },
        )

    def sign(self, claims: dict[str, Any], *, how: str = "rs256", typ: str | None = "JWT") -> str:
        if how == "rs256":
            header = {"alg": "RS256", "kid": self.key.kid, **({"typ": typ} if typ else {})}
            payload = json.dumps(claims).encode()  # ASCII escapes: even lone surrogates go
            return jws.serialize_compact(header, payload, self.key)
        if how == "no-kid":
            return jwt.encode({"alg": "RS256"}, claims, self.key)
        if how == "no-kid-foreign-key":
            return jwt.encode({"alg": "RS256"}, claims, RSAKey.generate_key(2048))
        if how == "foreign-key":
            foreign = RSAKey.generate_key(2048, parameters={"kid": self.key.kid})
            return jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, foreign)
        if how == "unknown-kid":
            stranger = RSAKey.generate_key(2048, parameters={"kid": "never-published"})
            return jwt.encode({"alg": "RS256", "kid": "never-published"}, claims, stranger)
        if how == "none":
            header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
            return f"{header}.{b64url(json.dumps(claims).encode())}."
        if how == "hs256-public-key":
            header = b64url(json.dumps({"alg": "HS256", "kid": self.key.kid}).encode())
            payload = b64url(json.dumps(claims).encode())
            secret = self.key.as_pem(private=False)
            mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            return f"{header}.{payload}.{b64url(mac)}"
        raise ValueError(how)

    def issue_code(self, challenge: str, id_token: str) -> str:
        code = secrets.token_urlsafe(16)
        self.codes[code] = IssuedCode(challenge, id_token)
        return code

    # ---- HTTP ---------------------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.discovery_issuer or self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/logout",
        }

    def jwks(self) -> dict[str, Any]:
        self.jwks_fetches += 1
        keys = [key.as_dict(private=False) for key in (self.key, *self.extra_keys)]
        if self.publish_unparseable_key:
            keys.insert(0, {"kty": "RSA", "kid": "broken", "n": "!!not-base64!!", "e": "AQAB"})
        return {"keys": keys}

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        issued = self.codes.get(form.get("code", ""))
        if issued is None or issued.used:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        verifier = form.get("code_verifier", "")
        if b64url(hashlib.sha256(verifier.encode()).digest()) != issued.challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        issued.used = True
        parts = issued.id_token.split(".")
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            self.last_claims = payload if isinstance(payload, dict) else {}
        except ValueError:
            self.last_claims = {}
        return 200, {"access_token": "at-" + secrets.token_hex(8), "token_type": "Bearer",
                     "expires_in": 300, "id_token": issued.id_token}  # fmt: skip

    def userinfo(self) -> dict[str, Any]:
        profile = {
            k: v for k, v in self.last_claims.items() if k in ("email", "email_verified", "name")
        }
        sub = self.userinfo_sub or self.last_claims.get("sub", "")
        return {**profile, **self.userinfo_extra, "sub": sub}


@contextmanager
def running(provider: BadProvider) -> Iterator[BadProvider]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if provider.down:
                self._send(503, {"error": "down"})
                return
            path = urlsplit(self.path).path
            if path == "/.well-known/openid-configuration":
                self._send(200, provider.discovery())
            elif path == "/jwks":
                self._send(200, provider.jwks())
            elif path == "/userinfo":
                self._send(200, provider.userinfo())
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path == "/token":
                self._send(*provider.token(form))
            else:
                self._send(404, {"error": "not_found"})

    server = ThreadingHTTPServer(("127.0.0.1", provider.port), Handler)
    provider.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
