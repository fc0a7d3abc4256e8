"""Rendering of device and host configuration from the validated model (Jinja2, sandboxed)."""
