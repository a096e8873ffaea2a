# The MLflow store and experiment, created once before logging jobs fan out.


rule init_tracking:
    localrule: True
    output:
        EXPERIMENT_MARKER,
    log:
        "results/logs/init_tracking.log",
    conda:
        "../../envs/mlnb.yaml"
    params:
        uri=TRACKING_URI,
        experiment=config["mlflow"]["experiment"],
    shell:
        "mlnb init-tracking --tracking-uri {params.uri:q} --experiment {params.experiment:q} "
        "--out {output} > {log} 2>&1"
