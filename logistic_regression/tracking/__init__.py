"""MLflow at the edge of a run, one module per concern.

    runs            the store, a run's lifecycle, params, metrics, tags, the dataset
    store           the store checked before use (answering, not locked), bounded
    models          logged models: create, save (in the background), READY, register
    artifact_state  `kit.artifacts` and what `sync` still owes a run
    sweeps          a sweep's parent and children
    baselines       one baseline per experiment, and the comparison with it

Every MLflow call a run, a sweep or `sync` makes goes through here, through MLflow's
public API only. The commands beside training (inspect and best read runs; import and
reproduce also create runs and tags) use `MlflowClient` at their own edge.
"""
