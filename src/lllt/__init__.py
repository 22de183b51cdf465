"""lllt: host stack for photobiomodulation (low-level light therapy) caps."""

__version__ = "0.1.0"
