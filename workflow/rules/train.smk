# Training stage.
#
# The MNIST CNN ladder (07-cnn-tensorflow): one rule per variant in
# config cnn.variants (train_cnn_<variant>), each training on the prepared
# MNIST .npz; report_ladder (report.smk) puts them in one table. Checkpoints go
# to results/checkpoints/cnn/<variant>/, outside the outputs, so a stopped job
# (Snakemake, Slurm) resumes where it stopped when it is run again.

CNN_DIR = "results/train/cnn"
CNN_TIMING_DIR = "results/benchmarks/train/cnn"
CNN_VARIANTS = list(config["cnn"]["variants"])
CNN_TARGETS = ["results/reports/cnn_ladder.md"] if CNN_VARIANTS else []
# What a training job uses of the train section (not threads, gpu, checkpoint_every: how it runs).
TRAIN_SETTINGS = settings_json("train")
# How often a job checkpoints never changes what it makes: a flag formatted into the shell
# command, not a param (a deliberate lint, like fetch's retries).
TRAIN_OPERATIONAL = f"--checkpoint-every {config['train']['checkpoint_every']}"


def cnn_settings(variant):
    """What one variant's job uses: its own definition and the shared cnn keys (not the other variants,
    nor the blog's figures), so an edit reruns exactly the variants it changes."""
    cnn = config["cnn"]
    used = {"variants": {variant: cnn["variants"][variant]}, "eval_batch": cnn["eval_batch"],
            "target_accuracy": cnn["target_accuracy"]}
    return json.dumps(used, sort_keys=True)


def cnn_rule(variant):
    return f"train_cnn_{variant.replace('-', '_')}"


for cnn_variant in CNN_VARIANTS:

    rule:
        name:
            cnn_rule(cnn_variant)
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
        threads: config["train"]["threads"]
        resources:
            mem_mb=4000,
            runtime=120,
            gpu=config["train"]["gpu"],
        conda:
            "../../envs/mlnb.yaml"
        params:
            variant=cnn_variant,
            settings=cnn_settings(cnn_variant),
            train=TRAIN_SETTINGS,
            seed=config["seed"],
            out=lambda wildcards, output: Path(output.result).parent,
            checkpoints=f"results/checkpoints/cnn/{cnn_variant}",
            rule=cnn_rule(cnn_variant),
            tracking=tracking_args(f"cnn-{cnn_variant}", cnn=cnn_settings(cnn_variant), train=TRAIN_SETTINGS,
                                   seed=json.dumps(config["seed"])),
        shell:
            job_shell(
                "mlnb train-cnn --data {input.data} --variant {params.variant} --seed {params.seed} "
                "--settings {params.settings:q} --train-settings {params.train:q} --threads {threads} "
                "{TRAIN_OPERATIONAL} --out {params.out} --timing {output.timing} "
                "--checkpoint-dir {params.checkpoints} --rule {params.rule} {params.tracking} > {log} 2>&1"
            )

# The from-scratch network (mlnb.models.backprop): the blog's logic gates, one job
# per gate over several seeds, then one report beside the blog's XOR run; and the
# same network on MNIST with mini-batches (numpy, or torch on train.device).

GATES_DIR = "results/train/gates"
MLP_DIR = "results/train/mlp"
GATES_TARGETS = [f"{GATES_DIR}/report.md"]
MLP_TARGETS = [f"{MLP_DIR}/result.json"]
# What a gate job uses: every gates key but the list of gates (adding a gate reruns no other).
GATES_SETTINGS = settings_json("gates", *(key for key in config["gates"] if key != "names"))


wildcard_constraints:
    gate="|".join(config["gates"]["names"]),


rule train_gates:
    input:
        EXPERIMENT_MARKER,
    output:
        result=f"{GATES_DIR}/{{gate}}.json",
        curves=f"{GATES_DIR}/{{gate}}_curves.npz",
        figure=f"{GATES_DIR}/{{gate}}_curves.png",
        truth_tables=f"{GATES_DIR}/{{gate}}_truth_tables.md",
    log:
        "results/logs/train/gates/{gate}.log",
    benchmark:
        "results/benchmarks/train/gates/{gate}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../../envs/mlnb.yaml"
    params:
        settings=GATES_SETTINGS,
        seed=config["seed"],
        out=lambda wildcards, output: Path(output.result).parent,
        tracking=lambda wildcards: tracking_args(f"gates-{wildcards.gate.lower()}", gates=GATES_SETTINGS,
                                                 seed=json.dumps(config["seed"])),
    shell:
        job_shell(
            "mlnb train-gates --gate {wildcards.gate} --seed {params.seed} --settings {params.settings:q} "
            "--out {params.out} {params.tracking} > {log} 2>&1"
        )


rule report_gates:
    input:
        EXPERIMENT_MARKER,
        results=expand(f"{GATES_DIR}/{{gate}}.json", gate=config["gates"]["names"]),
    output:
        f"{GATES_DIR}/report.md",
    log:
        "results/logs/train/gates/report.log",
    conda:
        "../../envs/mlnb.yaml"
    params:
        tracking=tracking_args("gates-report", gates=GATES_SETTINGS),
    shell:
        job_shell("mlnb report-gates {input.results} --out {output} {params.tracking} > {log} 2>&1")


rule train_mlp:
    input:
        EXPERIMENT_MARKER,
        data="results/data/mnist/mnist.npz",
    output:
        result=f"{MLP_DIR}/result.json",
        model=f"{MLP_DIR}/model.npz",
        confusion=f"{MLP_DIR}/confusion.png",
        misclassified=f"{MLP_DIR}/misclassified.png",
    log:
        "results/logs/train/mlp.log",
    benchmark:
        "results/benchmarks/train/mlp.tsv"
    threads: config["train"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=config["train"]["gpu"] if config["mlp"]["backend"] == "torch" else 0,
    conda:
        "../../envs/mlnb.yaml"
    params:
        settings=settings_json("mlp"),
        device=config["train"]["device"],
        seed=config["seed"],
        out=lambda wildcards, output: Path(output.result).parent,
        tracking=tracking_args(f"mlp-{config['mlp']['backend']}", mlp=settings_json("mlp"),
                               train=settings_json("train", "device"), seed=json.dumps(config["seed"])),
    shell:
        job_shell(
            "mlnb train-mlp --data {input.data} --device {params.device} --seed {params.seed} --settings {params.settings:q} "
            "--out {params.out} {params.tracking} > {log} 2>&1"
        )
