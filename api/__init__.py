"""MarketEdge Platform API: identity, organisations and feature flags."""

import warnings

# authlib 1.9 warns on importing its httpx integration, which is its documented async client.
warnings.filterwarnings("ignore", message=".*httpx module is deprecated.*")
warnings.filterwarnings("ignore", message=".*authlib.jose module is deprecated.*")
