"""Tracking: everything MLflow — run logging, the registry and promotion, the pyfunc model, batch prediction.

One service owns its MLflow client (tracking and registry URIs explicit, no process-wide state);
the pipeline reaches it through one Dagster resource, the applications build it from Settings.
Imports the domain (maskops) and MLflow; never Dagster or Great Expectations.
"""

from tracking.service import InputTable, LoggedModel, TrackedRun, TrackingService, pinned

__all__ = ["InputTable", "LoggedModel", "TrackedRun", "TrackingService", "pinned"]
