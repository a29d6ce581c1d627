"""Training: module and Trainer from config, the fit and its callbacks, resume, publish,
cross-validation and sweeps."""
