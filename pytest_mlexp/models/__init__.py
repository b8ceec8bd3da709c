"""MLflow models: logged by experiments with their own flavor, registered at session end.

``flavors`` picks MLflow's flavor for an object's type, ``logged`` logs it
(``mlflow_run.log_model``) and links it to the run's metrics, ``plugin`` does
that linking when each run ends, and ``registry`` registers the best cell's
model when the session passed.
"""
