"""Commands around the pipeline (not stages): compose params, check metrics, reproduce a run."""
