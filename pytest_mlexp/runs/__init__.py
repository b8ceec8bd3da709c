"""The runs of tracked items: the session object, ``ExperimentRun``, markers, outcomes, summary."""
