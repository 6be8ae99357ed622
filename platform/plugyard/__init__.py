"""Plugyard control plane: tenants, plugins, routes and deployments pushed to the gateway."""

__version__ = "0.1.0"
