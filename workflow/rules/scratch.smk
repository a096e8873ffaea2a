# Training the from-scratch network (mlnb.scratch.network): the blog's logic gates, one job
# per gate over several seeds, then one report beside the blog's XOR run; and the
# same network on MNIST with mini-batches (numpy, or torch on train.device), checkpointed like the
# CNN to results/checkpoints/mlp/<backend>/, so a stopped job resumes where it stopped when rerun.

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
        figure=report(f"{GATES_DIR}/{{gate}}_curves.png", category="Logic gates"),
        truth_tables=f"{GATES_DIR}/{{gate}}_truth_tables.md",
    log:
        "results/logs/train/gates/{gate}.log",
    benchmark:
        "results/benchmarks/train/gates/{gate}.tsv"
    conda:
        "../../envs/mlnb.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        settings=GATES_SETTINGS,
        seed=config["seed"],
        out=lambda wildcards, output: Path(output.result).parent,
        tracking=lambda wildcards: tracking_args(
            f"gates-{wildcards.gate.lower()}", gates=GATES_SETTINGS, seed=json.dumps(config["seed"])
        ),
    shell:
        job_shell(
            "mlnb train-gates --gate {wildcards.gate} --seed {params.seed} --settings {params.settings:q} "
            "--out {params.out} {params.tracking} > {log} 2>&1",
            training=True,
        )


rule report_gates:
    input:
        EXPERIMENT_MARKER,
        results=expand(f"{GATES_DIR}/{{gate}}.json", gate=config["gates"]["names"]),
    output:
        report(f"{GATES_DIR}/report.md", category="Logic gates"),
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
        confusion=report(f"{MLP_DIR}/confusion.png", category="From-scratch MLP"),
        misclassified=report(f"{MLP_DIR}/misclassified.png", category="From-scratch MLP"),
        timing="results/benchmarks/train/mlp_timing.json",
    log:
        "results/logs/train/mlp.log",
    benchmark:
        "results/benchmarks/train/mlp.tsv"
    conda:
        "../../envs/mlnb.yaml"
    # numpy's batches of 100 x 784 gain nothing from a second BLAS thread (75,000 images/s either way
    # on 2 quiet cores) and lose beside other jobs (6,000-23,000 vs 26,000-44,000 with both cores busy)
    threads: config["train"]["threads"] if config["mlp"]["backend"] == "torch" else 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=config["train"]["gpu"] if config["mlp"]["backend"] == "torch" else 0,
        checkpoint_every=config["train"]["checkpoint_every"],
    params:
        settings=settings_json("mlp"),
        device=config["train"]["device"],
        seed=config["seed"],
        out=lambda wildcards, output: Path(output.result).parent,
        checkpoints=f"results/checkpoints/mlp/{config['mlp']['backend']}",
        tracking=tracking_args(
            f"mlp-{config['mlp']['backend']}",
            mlp=settings_json("mlp"),
            train=settings_json("train", "device"),
            seed=json.dumps(config["seed"]),
        ),
    shell:
        job_shell(
            "mlnb train-mlp --data {input.data} --device {params.device} --seed {params.seed} "
            "--settings {params.settings:q} --threads {threads} --checkpoint-every {resources.checkpoint_every} "
            "--out {params.out} --timing {output.timing} --checkpoint-dir {params.checkpoints} --rule train_mlp "
            "{params.tracking} > {log} 2>&1",
            training=True,
        )
