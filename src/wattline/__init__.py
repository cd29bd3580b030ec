"""Wattline: energy telemetry you can trust and bill on."""

__version__ = "0.1.0"
