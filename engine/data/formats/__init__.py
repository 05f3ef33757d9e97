"""One adapter per preference-data format."""
