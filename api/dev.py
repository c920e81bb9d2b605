"""The development start command: embedded Postgres, release step, API on 127.0.0.1:8000.

Defaults below apply only where the environment says nothing, so a developer can point any
piece at real infrastructure by exporting the variable.
"""

from __future__ import annotations

import os
import subprocess
import sys

DEV_PORT = 8000
DEV_DEFAULTS = {
    "APP_ENV": "development",
    "PUBLIC_URL": f"http://127.0.0.1:{DEV_PORT}",
    "OIDC_ISSUER": "http://127.0.0.1:8001",
    "OIDC_CLIENT_ID": "marketedge-dev",
    "OIDC_CLIENT_SECRET": "marketedge-dev-secret",
    "HOST": "127.0.0.1",
    "PORT": str(DEV_PORT),
}


def main() -> None:
    for name, value in DEV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    release = subprocess.run([sys.executable, "-m", "api.release"], check=False)
    if release.returncode != 0:
        sys.exit(release.returncode)
    from api.serve import main as serve

    print(f"\nMarketEdge API on {os.environ['PUBLIC_URL']}  (docs: /schema)\n", flush=True)
    serve()


if __name__ == "__main__":
    main()
