"""Where events go besides the local store: a Datadog-compatible DORA Metrics API."""
