# The MLflow store and experiment, created once before logging jobs fan out
# (jobs only look the experiment up: creating a SQLite store races).
#
# The rule's output is a marker recording the experiment, not the store itself:
# Snakemake deletes a rule's outputs before it reruns the rule, and the store
# holds every run the user has logged. A moved project keeps its store; the
# next lookup points the experiment at the artifacts beside it (mlnb.tracking).


rule init_tracking:
    output:
        EXPERIMENT_MARKER,
    log:
        "results/logs/init_tracking.log",
    localrule: True
    conda:
        "../../envs/mlnb.yaml"
    resources:
        # operational: a resource, so changing it reruns nothing (as text: Snakemake truncates a float resource)
        mlflow_timeout=str(config["mlflow"]["timeout"]),
    params:
        # What the user configured (null = "default": the store under the working directory, which
        # the command resolves), not an absolute path, so moving the project plans no rerun.
        store=config["mlflow"]["tracking_uri"] or "default",
        experiment=config["mlflow"]["experiment"],
    shell:
        "mlnb init-tracking --tracking-uri {params.store:q} --experiment {params.experiment:q} "
        "--timeout {resources.mlflow_timeout} --out {output} > {log} 2>&1"
