"""The development start command (`make run`): everything a newcomer needs on loopback.

Embedded Postgres, the release step, a local OpenID Provider with a login form
(oidc-provider-mock on :8001), demo data, and the API on http://127.0.0.1:8000. Defaults
apply only where the environment says nothing, so any piece can point at real
infrastructure by exporting the variable (set OIDC_ISSUER and no provider is started).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx

DEV_PORT = 8000
PROVIDER_PORT = 8001
DEV_DEFAULTS = {
    "APP_ENV": "development",
    "PUBLIC_URL": f"http://127.0.0.1:{DEV_PORT}",
    "OIDC_CLIENT_ID": "marketedge-dev",
    "OIDC_CLIENT_SECRET": "marketedge-dev-secret",
    "OIDC_AUDIENCE": "marketedge-api",
    "HOST": "127.0.0.1",
    "PORT": str(DEV_PORT),
}


def start_provider() -> subprocess.Popen[bytes]:
    from api.ops.demo import PROVIDER_USERS

    issuer = f"http://127.0.0.1:{PROVIDER_PORT}"
    claims = [json.dumps(user) for user in PROVIDER_USERS]
    command = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1"]
    command += ["--port", str(PROVIDER_PORT)]
    for item in claims:
        command += ["--user-claims", item]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).is_success:
                os.environ["OIDC_ISSUER"] = issuer
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    sys.exit(f"the development OpenID Provider did not start on port {PROVIDER_PORT}")


def main() -> None:
    for name, value in DEV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    provider = None if os.environ.get("OIDC_ISSUER") else start_provider()
    try:
        for step in (["api.ops.release"], ["api.ops.demo"]):
            if subprocess.run([sys.executable, "-m", *step], check=False).returncode != 0:
                sys.exit(f"{step[0]} failed")
        from api.ops.demo import USERS

        public = os.environ["PUBLIC_URL"]
        people = "\n".join(
            f"    {sub:<6} {email:<28} {'super-admin' if admin else role}"
            for sub, email, _, admin, role, _ in USERS
        )
        print(
            f"\nMarketEdge API on {public}\n"
            f"  1. open {public}/ and press 'Log in'\n"
            f"  2. on the development provider's form type one of these subjects:\n{people}\n"
            f"  API docs: {public}/schema   admin (super-admins): {public}/admin/\n",
            flush=True,
        )
        from api.ops.serve import main as serve

        # uvicorn re-raises SIGTERM once it has shut down; as SystemExit it lets the
        # provider below be stopped too, instead of killing this process on the spot.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        serve()
    finally:
        if provider is not None:
            provider.terminate()


if __name__ == "__main__":
    main()
