"""Talking to the gateway: the signed HTTP client and the local workerd process."""
