"""The flags API's routers: features and OFREP for every caller, management for super-admins."""
