# Reports over stages: the CNN ladder beside the blog's accuracies.


rule report_ladder:
    input:
        EXPERIMENT_MARKER,
        results=expand(f"{CNN_DIR}/{{variant}}/result.json", variant=CNN_VARIANTS),
        timing=expand(f"{CNN_TIMING_DIR}/{{variant}}_timing.json", variant=CNN_VARIANTS),
    output:
        report("results/reports/cnn_ladder.md", category="MNIST CNN ladder"),
    log:
        "results/logs/report/cnn_ladder.log",
    conda:
        "../../envs/mlnb.yaml"
    params:
        blog=json.dumps(config["cnn"]["blog_accuracy"], sort_keys=True),
        timing=lambda wildcards, input: " ".join(f"--timing {path}" for path in input.timing),
        tracking=tracking_args("cnn-ladder", blog=json.dumps(config["cnn"]["blog_accuracy"], sort_keys=True)),
    shell:
        job_shell(
            "mlnb report-ladder {input.results} --blog {params.blog:q} {params.timing} --out {output} "
            "{params.tracking} > {log} 2>&1"
        )
