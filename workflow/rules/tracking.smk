# The MLflow store and experiment, created once before logging jobs fan out
# (jobs only look the experiment up: creating a SQLite store races).
#
# The rule's output is a marker recording the experiment, not the store itself:
# Snakemake deletes a rule's outputs before it reruns the rule, and the store
# holds every run the user has logged. A moved project keeps its store; the
# next lookup points the experiment at the artifacts beside it (mlnb.tracking).


rule init_tracking:
    localrule: True
    output:
        EXPERIMENT_MARKER,
    log:
        "results/logs/init_tracking.log",
    conda:
        "../../envs/mlnb.yaml"
    params:
        # What the user configured (null = the store under the working directory), not
        # the absolute URI the command gets, so moving the project plans no rerun.
        store=config["mlflow"]["tracking_uri"] or "default",
        experiment=config["mlflow"]["experiment"],
    # mlflow.timeout is operational: read when the command is formatted, not a param.
    shell:
        "mlnb init-tracking --tracking-uri {TRACKING_URI:q} --experiment {params.experiment:q} "
        "--timeout {config[mlflow][timeout]} --out {output} > {log} 2>&1"
