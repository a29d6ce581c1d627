"""System metrics (CPU, memory, disk, network, GPU) sampled while training, logged to the run by
MLflow's own monitor: the MLflow UI's System metrics tab."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from reprovision.tracking.run import PipelineRun


@contextlib.contextmanager
def system_metrics(run: PipelineRun | None, every_s: float, resumed: bool) -> Iterator[None]:
    """Sample every `every_s` seconds for the block (nothing where `run` is None: not the first
    process); a resumed run continues the steps it logged before."""
    if run is None:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    # Its start and stop are INFO lines about itself, not about this run.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    monitor = SystemMetricsMonitor(
        run.run_id, sampling_interval=every_s, resume_logging=resumed, tracking_uri=run.info["tracking_uri"]
    )
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
        # The monitor publishes a sample one interval after taking it, and drops it if training
        # ended first: one more at the end, so even a short run shows where it stood.
        try:
            monitor.collect_metrics()
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()
        except Exception as e:  # the run's numbers matter more than its system metrics
            logging.getLogger(__name__).warning("system metrics: the last sample was not logged (%s)", e)
