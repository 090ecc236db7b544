"""dora: record deployments and incidents, and report DORA metrics, from the command line."""

__version__ = "0.1.0"
