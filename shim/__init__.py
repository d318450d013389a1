"""nova-image-shim: the legacy Nova compute image API, served from Glance v2."""

__version__ = "0.1.0"
