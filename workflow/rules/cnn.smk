# CNN stage.
#
# The MNIST CNN ladder (07-cnn-tensorflow): one rule per variant in
# config cnn.variants (train_cnn_<variant>), each training on the prepared
# MNIST .npz; report_ladder puts them in one table. Checkpoints go
# to results/checkpoints/cnn/<variant>/, outside the outputs, so a stopped job
# (Snakemake, Slurm) resumes where it stopped when it is run again.

CNN_DIR = "results/train/cnn"
CNN_TIMING_DIR = "results/benchmarks/train/cnn"
CNN_VARIANTS = list(config["cnn"]["variants"])
CNN_TARGETS = ["results/reports/cnn_ladder.md"] if CNN_VARIANTS else []
# What one variant's job uses: its own definition and the shared cnn keys (not the other variants,
# nor the blog's figures), so an edit reruns exactly the variants it changes.
CNN_SETTINGS = {
    variant: json.dumps(
        {
            "variants": {variant: definition},
            "eval_batch": config["cnn"]["eval_batch"],
            "target_accuracy": config["cnn"]["target_accuracy"],
        },
        sort_keys=True,
    )
    for variant, definition in config["cnn"]["variants"].items()
}
CNN_RULES = {variant: f"train_cnn_{variant.replace('-', '_')}" for variant in CNN_VARIANTS}


for cnn_variant in CNN_VARIANTS:

    rule:
        name:
            CNN_RULES[cnn_variant]
        input:
            EXPERIMENT_MARKER,
            data="results/data/mnist/mnist.npz",
        output:
            result=f"{CNN_DIR}/{cnn_variant}/result.json",
            model=f"{CNN_DIR}/{cnn_variant}/model.pt",
            timing=f"{CNN_TIMING_DIR}/{cnn_variant}_timing.json",
        log:
            f"results/logs/train/cnn/{cnn_variant}.log",
        benchmark:
            f"{CNN_TIMING_DIR}/{cnn_variant}.tsv"
        conda:
            "../../envs/mlnb.yaml"
        threads: TRAIN_JOB_THREADS
        resources:
            mem_mb=4000 * TRAIN_PROCESSES,
            runtime=120,
            gpu=TRAIN_JOB_GPUS,
            nodes=1,  # torchrun --standalone: every process on one machine (Slurm --nodes=1)
            launcher=TRAIN_LAUNCHER,
            checkpoint_every=config["train"]["checkpoint_every"],
        params:
            variant=cnn_variant,
            settings=CNN_SETTINGS[cnn_variant],
            train=TRAIN_SETTINGS,
            seed=config["seed"],
            out=lambda wildcards, output: Path(output.result).parent,
            checkpoints=f"results/checkpoints/cnn/{cnn_variant}",
            rule=CNN_RULES[cnn_variant],
            tracking=tracking_args(
                f"cnn-{cnn_variant}",
                cnn=CNN_SETTINGS[cnn_variant],
                train=TRAIN_SETTINGS,
                seed=json.dumps(config["seed"]),
            ),
        shell:
            job_shell(
                "{resources.launcher}mlnb train-cnn --data {input.data} --variant {params.variant} "
                "--seed {params.seed} --settings {params.settings:q} --train-settings {params.train:q} "
                "--threads {threads} --checkpoint-every {resources.checkpoint_every} --out {params.out} "
                "--timing {output.timing} --checkpoint-dir {params.checkpoints} --rule {params.rule} "
                "{params.tracking} > {log} 2>&1",
                training=True,
            )


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
