"""The OpenID Connect relying party (PRODUCT §5), on authlib for the OAuth exchange and
joserfc for the token checks.

Discovery and keys are cached; a token naming an unknown `kid`, or whose signature fails
(a provider that rotated its key and signs without `kid`), triggers one rate-limited JWKS
re-fetch before it is refused; keys that cannot be parsed are skipped.
Every check of PRODUCT §5 is made here and nowhere else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, InvalidKeyTypeError, JoseError
from joserfc.jwk import KeySet, import_key

from api.platform.config import Settings

logger = logging.getLogger("api.auth.oidc")

ALLOWED_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
LEEWAY_SECONDS = 60
MAX_IAT_AGE_SECONDS = 24 * 3600
ID_TOKEN_ONLY_CLAIMS = ("nonce", "at_hash", "c_hash")
"""Claims OpenID Connect defines for ID tokens only: a token carrying one is no access token."""
DISCOVERY_TTL_SECONDS = 3600.0
HTTP_TIMEOUT = httpx.Timeout(5.0, connect=3.0)


class TokenRejected(Exception):
    """An ID or access token failed a check; `reason` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ProviderUnavailable(Exception):
    """The OpenID Provider could not be reached or answered nonsense."""


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        segment = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, IndexError) as exc:
        raise TokenRejected("malformed_token", "The token is not a JWS compact token") from exc
    if not isinstance(header, dict):
        raise TokenRejected("malformed_token", "The token header is not an object")
    return header


def token_type(header: dict[str, Any]) -> str | None:
    """The JOSE `typ`, compared as RFC 7515 §4.1.9 says: case-insensitively, `application/`
    optional. `None` when the header has none."""
    typ = header.get("typ")
    if typ is None:
        return None
    if not isinstance(typ, str):
        raise TokenRejected("wrong_token_type", "The token's `typ` is not a string")
    return typ.lower().removeprefix("application/")


def _decode(token: str, keys: KeySet, kid: object) -> dict[str, Any]:
    """Verify with the key the token names; a token without `kid` may be signed by any
    published key (joserfc alone would refuse a set of several), so each is tried."""
    if kid is not None or len(keys.keys) <= 1:
        return dict(jwt.decode(token, keys, algorithms=list(ALLOWED_ALGORITHMS)).claims)
    for key in keys.keys:
        try:
            return dict(jwt.decode(token, key, algorithms=list(ALLOWED_ALGORITHMS)).claims)
        except (BadSignatureError, InvalidKeyTypeError):
            continue
    raise BadSignatureError()


class OidcProvider:
    """One configured provider: discovery, keys, the code exchange, token validation."""

    def __init__(
        self,
        settings: Settings,
        *,
        jwks_refetch_interval: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.jwks_refetch_interval = jwks_refetch_interval
        self._transport = transport
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = -1e9
        self._lock = asyncio.Lock()

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=HTTP_TIMEOUT, transport=self._transport)

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._http() as client:
                response = await client.get(url)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{url}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ProviderUnavailable(f"{url}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderUnavailable(f"{url}: not JSON") from exc
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"{url}: not a JSON object")
        return body

    async def metadata(self) -> ProviderMetadata:
        if self._metadata and time.monotonic() - self._metadata_at < DISCOVERY_TTL_SECONDS:
            return self._metadata
        async with self._lock:
            if self._metadata and time.monotonic() - self._metadata_at < DISCOVERY_TTL_SECONDS:
                return self._metadata
            issuer = self.settings.oidc_issuer
            document = await self._get_json(
                issuer.rstrip("/") + "/.well-known/openid-configuration"
            )
            if document.get("issuer") != issuer:
                raise ProviderUnavailable(
                    f"discovered issuer {document.get('issuer')!r} is not OIDC_ISSUER {issuer!r}"
                )
            try:
                metadata = ProviderMetadata(
                    issuer=issuer,
                    authorization_endpoint=str(document["authorization_endpoint"]),
                    token_endpoint=str(document["token_endpoint"]),
                    jwks_uri=str(document["jwks_uri"]),
                    userinfo_endpoint=document.get("userinfo_endpoint"),
                    end_session_endpoint=document.get("end_session_endpoint"),
                )
            except KeyError as exc:
                raise ProviderUnavailable(f"discovery document lacks {exc}") from exc
            self._metadata, self._metadata_at = metadata, time.monotonic()
            return metadata

    async def _fetch_keys(self) -> KeySet:
        metadata = await self.metadata()
        document = await self._get_json(metadata.jwks_uri)
        keys = []
        for entry in document.get("keys", []):
            try:
                keys.append(import_key(entry))
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                logger.warning("skipping unparseable JWKS key %r: %s", entry.get("kid"), exc)
        self._keys, self._keys_at = KeySet(keys), time.monotonic()
        return self._keys

    async def keys(self, *, refresh: bool = False) -> KeySet:
        if self._keys is not None and not refresh:
            return self._keys
        async with self._lock:
            recently = time.monotonic() - self._keys_at < self.jwks_refetch_interval
            if self._keys is not None and (not refresh or recently):
                return self._keys
        return await self._fetch_keys()

    async def verify_signature(self, token: str) -> dict[str, Any]:
        """Check the signature with an allow-listed algorithm; return the unverified claims."""
        header = _unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise TokenRejected("bad_algorithm", f"Algorithm {algorithm!r} is not accepted")
        for attempt in (False, True):
            keys = await self.keys(refresh=attempt)  # the re-fetch is rate-limited
            try:
                return _decode(token, keys, header.get("kid"))
            except InvalidKeyIdError:
                if attempt:
                    raise TokenRejected("unknown_key", "The token's key id is unknown") from None
            except BadSignatureError:
                if attempt:
                    raise TokenRejected("bad_signature", "The token signature is invalid") from None
            except (JoseError, ValueError) as exc:
                raise TokenRejected("malformed_token", f"The token cannot be read: {exc}") from None
        raise TokenRejected("unknown_key", "The token's key id is unknown")  # pragma: no cover

    async def validate_id_token(self, token: str, *, nonce: str) -> dict[str, Any]:
        claims = await self.verify_signature(token)
        if token_type(_unverified_header(token)) == "at+jwt":
            raise TokenRejected("wrong_token_type", "An access token is not an ID token")
        client_id = self.settings.oidc_client_id
        check_time_claims(claims)
        if claims.get("iss") != self.settings.oidc_issuer:
            raise TokenRejected("wrong_issuer", "The token was issued by another issuer")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if client_id not in audiences:
            raise TokenRejected("wrong_audience", "The token is not meant for this client")
        azp = claims.get("azp")
        if (azp is not None or len(audiences) > 1) and azp != client_id:
            raise TokenRejected("wrong_azp", "The token's authorized party is another client")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenRejected("missing_sub", "The token names no subject")
        if claims.get("nonce") != nonce:
            raise TokenRejected("nonce_mismatch", "The token's nonce does not match the login")
        return claims

    async def validate_access_token(self, token: str) -> dict[str, Any]:
        """Bearer tokens of API clients: signature, issuer, audience, expiry; no /userinfo.

        Only access tokens pass (RFC 9068 §4): `typ` is `at+jwt`, or `JWT` / absent as in
        Auth0's default token profile, where only the claims tell the two kinds apart; no
        claim that only ID tokens carry (`nonce`, `at_hash`, `c_hash`); and `aud` names
        OIDC_AUDIENCE, which configuration keeps distinct from the client id that ID tokens
        are addressed to."""
        audience = self.settings.oidc_audience
        if audience is None:
            raise TokenRejected("bearer_disabled", "Bearer tokens are not accepted here")
        claims = await self.verify_signature(token)
        if token_type(_unverified_header(token)) not in (None, "jwt", "at+jwt"):
            raise TokenRejected("wrong_token_type", "The token is not an access token")
        if any(name in claims for name in ID_TOKEN_ONLY_CLAIMS):
            raise TokenRejected("not_an_access_token", "An ID token is not an access token")
        check_time_claims(claims, require_iat=False)
        if claims.get("iss") != self.settings.oidc_issuer:
            raise TokenRejected("wrong_issuer", "The token was issued by another issuer")
        audiences = claims.get("aud")
        if audience not in (audiences if isinstance(audiences, list) else [audiences]):
            raise TokenRejected("wrong_audience", "The token is not meant for this API")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenRejected("missing_sub", "The token names no subject")
        return claims

    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        metadata = await self.metadata()
        client = AsyncOAuth2Client(
            client_id=self.settings.oidc_client_id,
            redirect_uri=redirect_uri(self.settings),
            scope="openid email profile",
            code_challenge_method="S256",
        )
        url, _ = client.create_authorization_url(
            metadata.authorization_endpoint,
            state=state,
            nonce=nonce,
            code_verifier=code_verifier,
        )
        return str(url)

    async def exchange_code(self, code: str, code_verifier: str) -> dict[str, Any]:
        metadata = await self.metadata()
        client = AsyncOAuth2Client(
            client_id=self.settings.oidc_client_id,
            client_secret=self.settings.oidc_client_secret,
            redirect_uri=redirect_uri(self.settings),
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT,
            transport=self._transport,
        )
        try:
            async with client:
                token = await client.fetch_token(
                    metadata.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"token endpoint: {type(exc).__name__}") from exc
        except Exception as exc:  # authlib raises OAuthError and friends for error bodies
            raise TokenRejected("code_rejected", f"The provider refused the code: {exc}") from exc
        if not isinstance(token.get("id_token"), str):
            raise TokenRejected("missing_id_token", "The provider returned no ID token")
        return dict(token)

    async def userinfo(self, access_token: str) -> dict[str, Any] | None:
        metadata = await self.metadata()
        if not metadata.userinfo_endpoint or not access_token:
            return None
        try:
            async with self._http() as client:
                response = await client.get(
                    metadata.userinfo_endpoint,
                    headers={"Authorization": f"Bearer {access_token}"},
                )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"userinfo: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise TokenRejected("userinfo_refused", f"UserInfo answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise TokenRejected("userinfo_refused", "UserInfo answered no JSON") from None
        return body if isinstance(body, dict) else None


def check_time_claims(claims: dict[str, Any], *, require_iat: bool = True) -> None:
    now = time.time()
    expires = claims.get("exp")
    if not isinstance(expires, int | float):
        raise TokenRejected("missing_exp", "The token has no expiry")
    if expires < now - LEEWAY_SECONDS:
        raise TokenRejected("expired", "The token has expired")
    issued = claims.get("iat")
    if issued is None and not require_iat:
        return
    if not isinstance(issued, int | float):
        raise TokenRejected("missing_iat", "The token has no issue time")
    if issued > now + LEEWAY_SECONDS or issued < now - MAX_IAT_AGE_SECONDS:
        raise TokenRejected("bad_iat", "The token's issue time is not plausible")


def redirect_uri(settings: Settings) -> str:
    """Built from configuration, never from the request's Host header."""
    return f"{settings.public_url}/api/v1/auth/callback"


_providers: dict[int, OidcProvider] = {}


def provider_for(settings: Settings) -> OidcProvider:
    """One provider object (and its caches) per settings object."""
    key = id(settings)
    if key not in _providers:
        _providers[key] = OidcProvider(settings)
    return _providers[key]
