"""Our classifier recipes beside ASDKit's own code (its recipe ``dis_spec_scac_trainable``), on the same
synthetic data, in one table: the twin of ``benchmarks/versus_baseline.py``.

    ASDKIT_MIRROR=<git copy of TakuyaFujimura/dcase-asd-toolkit> OMP_NUM_THREADS=1 \\
    python benchmarks/versus_asdkit.py --seeds 0,1,2 --work runs/versus_asdkit

For each training seed, runs ASDKit end to end (``../shared/tools/run_asdkit.sh``: its own code, one
model on all machine types, kNN with SMOTE) and each of our recipes (``python -m asd.train
experiment=<name>``, default ``multibranch_sc_adacos_knn``, ASDKit's recipe as our options) on the same
files, then prints per seed the official score of every system, mean ± standard deviation, the
difference from ASDKit, the wall time per seed and per training epoch, the score per machine type, and
each type's gap from ASDKit with a family-wise permutation p over the runs (``versus_baseline.machine_gaps``).
Finished runs under ``--work`` are read, not run again (``<work>/asdkit/s<seed>/`` with ``timing.json``,
``<work>/ours/<experiment>/s<seed>/``), so a comparison can be resumed. Run both sides with the same
threads (``OMP_NUM_THREADS``), one run at a time. ``--asdkit-recipe`` runs another of ASDKit's recipes (in
``<work>/asdkit_<recipe>/``) and has ``--check-steps`` build it: e.g. ``dis_multispec_scac_trainable`` beside
``--experiments multibranch_multispec_sc_adacos_knn``. ``--record`` / ``--recorded`` keep the compared runs'
scores in a CSV and print the tables from it (``versus_baseline.py``); the benchmark profile's record is
``experiments/versus_asdkit.csv``.

``--check-network`` builds ASDKit's network (its code, in its own environment) and ours, loads
ASDKit's weights into ours and prints the largest difference of the two embeddings of the same clips:
the components are the same where it is at float rounding.

``--check-step`` runs one training step of each program (float64; ``--check-dtype float32`` for the dtype
both programs train in) from the same weights on the same clips, mixed up as ASDKit's mixup drew it, and
prints the two losses, the largest relative gradient difference and the largest weight difference after
the optimiser's step, beside the same two differences of ASDKit's step on another number of threads
against itself: the size of rounding alone.

``--check-steps N`` runs N training steps of both (float64) on the first N batches of our recipe's own
training order of the data's clips (``--check-batch-size`` clips each, the recipe's 64 by default), from
the same weights, mixed up as ASDKit's mixup drew it, ASDKit's side its own LightningModule built from its
own recipe files: each step's two losses and the largest difference of any weight or batch-norm statistic.
One epoch of steps shows what one step cannot: the optimiser's state (Adam's betas), the running statistics.

``--check-init SEEDS`` builds ASDKit's network and SC-AdaCos head and our recipe's module at SEEDS seeds each
and compares every tensor's initial values, pooled over the seeds, by the Kolmogorov–Smirnov test: with the
training shown one function of its draws (``--check-steps``), the initial weights are one of those draws.

``--check-backend <ASDKit run>`` scores the embeddings ASDKit extracted in one of its runs (a seed folder
under ``--work``'s ``asdkit/``) with our recipe's back-end and prints, per machine type, the largest
difference from ASDKit's own kNN + SMOTE scores of them, and both official scores. ASDKit's distance is
the Euclidean one of unit vectors, halved: sqrt(2 (1 - cos)) / 2 of our cosine distance, the same order.

``--check-trained <ASDKit run>`` loads the network ASDKit trained in one of its runs (its last checkpoint)
into our module and runs our side of everything after training on the same data (our reading of the clips,
our embedding, our recipe's back-end, our evaluation): its official score beside ASDKit's own of that
network. Equal, a gap between the programs lies in the training.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pandas as pd
from versus_baseline import (
    PROFILES,
    comparison_parser,
    comparison_plan,
    our_scores,
    planned_runs,
    print_comparison,
    print_recorded,
    record_results,
    recorded_data,
    run_once,
    run_ours,
)

SHARED_TOOL = Path(__file__).resolve().parents[2] / "shared" / "tools" / "run_asdkit.sh"
ASDKIT_RECIPE = "dis_spec_scac_trainable"  # the recipe every comparison and the calibration hold ours against


def asdkit_system(recipe: str) -> str:
    """A table's name for ASDKit's own runs of ``recipe``."""
    return f"ASDKit: {recipe}"


ASDKIT = asdkit_system(ASDKIT_RECIPE)
ASDKIT_SCORE = re.compile(r"^ASDKIT official_score=([0-9.]+)", re.MULTILINE)


def run_asdkit(
    tool: Path,
    root: Path,
    machines: list[str],
    seed: int,
    work: Path,
    epochs: int | None,
    recipe: str = ASDKIT_RECIPE,
) -> Path:
    """ASDKit's own run of ``recipe`` at ``seed``, in ``work/asdkit/`` for ``dis_spec_scac_trainable`` and in
    ``work/asdkit_<recipe>/`` for any other of its recipes (the tool refuses one it does not know)."""
    out = work / ("asdkit" if recipe == ASDKIT_RECIPE else f"asdkit_{recipe}") / f"s{seed}"
    command = ["bash", str(tool), str(root), ",".join(machines), str(out), str(seed)]
    return run_once(command + ([str(epochs)] if epochs else []), out, {"RECIPE": recipe})


def asdkit_scores(out: Path) -> dict:
    """{"official": %, "machines": {machine: %}, "seconds": s, "epoch_seconds": s} of one ASDKit run."""
    log = (out.parent / f"{out.name}.log").read_text()
    official = ASDKIT_SCORE.findall(log)
    if not official:
        sys.exit(f"{out.parent / (out.name + '.log')}: no 'ASDKIT official_score=' line (did the run finish?)")
    per_machine = pd.read_csv(out / "official_scores.csv")
    timing = json.loads((out / "timing.json").read_text())
    return {
        "official": 100 * float(official[-1]),
        "machines": {m: 100 * v for m, v in zip(per_machine["machine"], per_machine["official"])},
        "seconds": float((out.parent / f"{out.name}.time").read_text()),
        "epoch_seconds": timing["train_s"] / timing["epochs"],
    }


def epoch_seconds(run_dir: Path) -> float:
    """Mean wall seconds per training epoch of one of our runs: between the epochs' ``train/loss``
    entries in its TensorBoard log (so the first epoch's start, data loading, is not counted)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    times = []
    for folder in sorted({p.parent for p in run_dir.glob("tensorboard/**/events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(folder)).Reload()
        if "train/loss" in accumulator.Tags()["scalars"]:
            times += [event.wall_time for event in accumulator.Scalars("train/loss")]
    if len(times) < 2:
        sys.exit(f"{run_dir}: fewer than two epochs in its TensorBoard log, no time per epoch")
    times.sort()
    return (times[-1] - times[0]) / (len(times) - 1)


ASDKIT_NETWORK = """
from asdkit.models.multiresnet import MultiResNet
stft = dict(sr=16000, n_fft=1024, hop_length=512, n_mels=None, power=1.0, f_min=200.0, f_max=8000.0, temporal_norm=False)
def network():
    return MultiResNet(sec=12, sr=16000, use_fft=True, stft_cfg_list=[stft],
        fft_network_cfg=dict(tgt_class="asdkit.models.multiresnet.fft_encoder_networks.Conv1dEncoderLayer", aggregate="mlp"),
        stft_network_cfg=dict(tgt_class="asdkit.models.multiresnet.stft_encoder_networks.Conv2dEncoderLayer",
                              resnet_additional_layer="SEBlock", aggregate="mlp"))
"""
NETWORK_CHECK = (
    "import sys, torch\n"
    + ASDKIT_NETWORK
    + """torch.manual_seed(0)
net = network()
clips = 0.1 * torch.randn(4, 192000)
net.train()
for _ in range(2):
    net(clips)  # running statistics of the batch norms away from their start
net.eval()
torch.save({"names": list(net.state_dict()), "tensors": list(net.state_dict().values()), "clips": clips,
            "embeddings": net(clips)}, sys.argv[1])
"""
)
# the recipe's network and SC-AdaCos head (16 trainable centres a class) as each seed builds them
INIT_CHECK = (
    "import sys, torch\n"
    + ASDKIT_NETWORK
    + """from asdkit.losses import SCAdaCos
states = []
for seed in range(int(sys.argv[2])):
    torch.manual_seed(seed)
    net = network()
    head = SCAdaCos(embed_size=256, n_classes=int(sys.argv[3]), n_subclusters=16, trainable=True, dynamic=False)
    states.append({"names": list(net.state_dict()), "tensors": list(net.state_dict().values()), "W": head.W.detach()})
torch.save(states, sys.argv[1])
"""
)


# argv: where the result goes, the dtype every tensor is made in (float64 by default: float32 rounding differs
# even between two runs of ASDKit itself on different numbers of threads)
STEP_CHECK = (
    "import sys, torch\ntorch.set_default_dtype(getattr(torch, sys.argv[2]))\n"
    + NETWORK_CHECK.split("clips = ")[0]
    + """from asdkit.augmentations import Mixup
from asdkit.losses import SCAdaCos
head = SCAdaCos(embed_size=256, n_classes=3, n_subclusters=16, trainable=True, dynamic=False)
clips, labels = 0.1 * torch.randn(6, 192000), torch.tensor([0, 1, 2, 0, 1, 2])
start = {"names": list(net.state_dict()), "tensors": [t.clone() for t in net.state_dict().values()], "W": head.W.detach().clone()}
net.train()
optimizer = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=1e-3)  # its optim_cfg
mixup = Mixup(prob=0.5).train()  # its recipe's augmentation
torch.manual_seed(8)  # float64: mixes clips 0, 1, 2 (with 1, 4, 3; shares 0.78, 0.57, 0.11), not 3, 4, 5
batch = mixup({"wave": clips, "onehot_main": torch.nn.functional.one_hot(labels, 3).to(clips.dtype)})
torch.manual_seed(8)  # Mixup's draws again, in its order: shares, partners, whether mixed
draws = {"lam": torch.rand(6), "perm": torch.randperm(6), "dec_uniform": torch.rand(6)}
loss = head(net(batch["wave"]), batch["onehot_main"])
loss.backward()
grads = {"names": [n for n, p in net.named_parameters()], "tensors": [p.grad.clone() for p in net.parameters()]}
optimizer.step()
torch.save({**start, "clips": clips, "labels": labels, "draws": draws, "loss": loss.item(), "grads": grads, "W_grad": head.W.grad,
            "after": [t.clone() for t in net.state_dict().values()], "W_after": head.W.detach().clone()}, sys.argv[1])
"""
)


def asdkit_order(names: list[str]) -> list[int]:
    """ASDKit's state-dict entries in the order of ours: the same tensors, but ASDKit registers a
    residual block's shortcut before its residual path and keeps the STFT window as a weight."""
    keep = [i for i, n in enumerate(names) if not n.endswith("stft.window")]
    block = re.compile(r"^(.*\.layers\.\d+\.\d+)\.(skip_connect)?")
    order, shortcuts, current = [], [], None
    for i in keep:
        match = block.match(names[i])
        name = match.group(1) if match else None
        if name != current:
            order += shortcuts
            shortcuts, current = [], name
        (shortcuts if match and match.group(2) else order).append(i)
    return order + shortcuts


def asdkit_result(
    python: Path, source: Path, code: str, args: tuple = (), threads: int | None = None, quiet: bool = True
):
    """``code`` run in ASDKit's environment (``python``, its ``source`` on the path; on ``threads`` CPU threads
    where given), its first argument a file for its result, then ``args``: that result, loaded. ``quiet``:
    ASDKit's output kept back."""
    import torch

    env = {**os.environ, "PYTHONPATH": str(source)}
    if threads is not None:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as folder:
        dump = Path(folder) / "asdkit.pt"
        command = [str(python), "-c", code, str(dump), *(str(a) for a in args)]
        subprocess.run(command, check=True, env=env, capture_output=quiet)
        return torch.load(dump)


def check_network(python: Path, source: Path) -> float:
    from asd.models.multibranch import MultiBranchNetwork

    theirs = asdkit_result(python, source, NETWORK_CHECK)
    ours = MultiBranchNetwork(192000)
    names = list(ours.state_dict())
    tensors = [theirs["tensors"][i] for i in asdkit_order(theirs["names"])]
    ours.load_state_dict(dict(zip(names, tensors, strict=True)))
    difference = (ours.eval()(theirs["clips"]) - theirs["embeddings"]).abs().max().item()
    print(f"parameters: ours {sum(p.numel() for p in ours.parameters())}, ASDKit's weights loaded into ours")
    print(
        f"max |embedding ours - embedding ASDKit| = {difference:.2e} (embeddings up to {theirs['embeddings'].abs().max():.2f})"
    )
    return difference


def check_init(python: Path, source: Path, experiment: str, seeds: int) -> float:
    """The two programs' initial weights in distribution: ASDKit's network and SC-AdaCos head (its code, its
    environment) and our ``experiment``'s module, each built at ``seeds`` seeds; every tensor's values pooled over
    the seeds, compared by the two-sample Kolmogorov–Smirnov test. Prints the tensors of the smallest p
    beside how many p under 0.05 the tensor count gives by chance; returns the smallest p."""
    import hydra
    import scipy.stats
    import torch
    from hydra import compose, initialize_config_dir

    from asd.backends.base import build_backend
    from asd.train import config_dir

    classes = [str(c) for c in range(20)]  # the benchmark profile's count; any count compares the same way
    theirs = asdkit_result(python, source, INIT_CHECK, (seeds, len(classes)), quiet=False)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
    ours = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        module = hydra.utils.instantiate(cfg.model, backend=build_backend(cfg.backend), class_names=classes)
        ours.append([*module.network.state_dict().values(), module.head.weight.detach()])
    names = [*module.network.state_dict(), "head.weight"]
    order = asdkit_order(theirs[0]["names"])
    # ASDKit's tensors in our order; its centres are columns, ours rows
    asdkit = [[state["tensors"][i] for i in order] + [state["W"].T] for state in theirs]
    p_values = {}
    for index, name in enumerate(names):
        mine = torch.cat([state[index].flatten() for state in ours]).double().numpy()
        its = torch.cat([state[index].flatten() for state in asdkit]).double().numpy()
        if mine.std() == its.std() == 0:  # a constant start (batch-norm running statistics): equal or not
            p_values[name] = float(mine[0] == its[0])
            continue
        p_values[name] = scipy.stats.ks_2samp(mine, its).pvalue
    print(f"{len(names)} tensors, {seeds} seeds a side; the five smallest Kolmogorov–Smirnov p:")
    for name in sorted(p_values, key=p_values.get)[:5]:
        print(f"  {name}: p {p_values[name]:.3g}")
    below = sum(p < 0.05 for p in p_values.values())
    print(f"p < 0.05 at {below} of {len(names)} tensors (by chance alone about {0.05 * len(names):.0f})")
    return min(p_values.values())


ASDKIT_KNN_SMOTE = "AS-Knn-1-1-0.2-2-cosine-main"  # its score column for k = 1, SMOTE ratio 0.2, 2 neighbours
#: where an ASDKit run leaves one machine type's per-clip test scores (a glob under the run's folder)
ASDKIT_TEST_SCORES = "work/results/**/output/*/{machine}/test_score.csv"


def check_backend(asdkit_run: Path, experiment: str) -> float:
    import numpy as np
    from hydra import compose, initialize_config_dir

    from asd.backends.base import build_backend
    from asd.evaluation.metrics import official_score, section_metrics
    from asd.train import config_dir
    from asd.vocabulary import section_key

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        backend_config = compose("train", overrides=[f"experiment={experiment}"]).backend
    folders = sorted({p.parent for p in asdkit_run.glob(ASDKIT_TEST_SCORES.format(machine="*"))})
    if not folders:
        sys.exit(f"{asdkit_run}: no ASDKit outputs ({ASDKIT_TEST_SCORES.format(machine='<machine>')})")
    theirs_metrics, ours_metrics, largest = [], [], 0.0
    for folder in folders:
        train, test = np.load(folder / "train_extract.npz"), np.load(folder / "test_extract.npz")
        theirs = pd.read_csv(folder / "test_score.csv")
        if list(theirs["path"]) != list(test["path"]):
            sys.exit(f"{folder}: test_score.csv and test_extract.npz list different clips")
        backend = build_backend(backend_config)
        domains = ["target" if t else "source" for t in train["is_target"]]
        # ASDKit's sections, as our section keys: a back-end that pools a type's sections reads the type
        train_keys, test_keys = ([section_key(folder.name, f"{s:02d}") for s in x["section"]] for x in (train, test))
        backend.fit([row[None] for row in train["embed"]], domains, train_keys)
        ours = backend.score([row[None] for row in test["embed"]], test_keys)
        difference = np.abs(np.sqrt(2 * np.maximum(ours, 0)) / 2 - theirs[ASDKIT_KNN_SMOTE].to_numpy()).max()
        largest = max(largest, difference)
        labels, no_decisions = 1 - test["is_normal"], np.zeros(len(ours), int)
        ours_metrics.append(section_metrics(labels, ours, test["is_target"], no_decisions, folder.name))
        theirs_metrics.append(section_metrics(labels, theirs[ASDKIT_KNN_SMOTE], test["is_target"], no_decisions))
        print(f"{folder.name}: {len(train['embed'])} training clips, max |ours - ASDKit| = {difference:.1e}")
    print(
        f"official score on ASDKit's embeddings: ASDKit's back-end {100 * official_score(theirs_metrics):.2f}, "
        f"ours ({experiment}) {100 * official_score(ours_metrics):.2f}"
    )
    return largest


#: where an ASDKit run leaves its trained network's last weights
ASDKIT_LAST_CHECKPOINT = "work/results/**/model/all/checkpoints/last.ckpt"


def check_trained(asdkit_run: Path, experiment: str, root: Path) -> float:
    """ASDKit's trained network (the last checkpoint of one of its runs) loaded into our module and run
    through our side of everything after training, on the run's data ``root``: our reading of the clips,
    our module's embedding (tiled from the start, in eval mode), our recipe's back-end and our
    evaluation. Prints its official score beside ASDKit's own of the same network; returns ours (%)."""
    import torch
    from hydra import compose, initialize_config_dir

    from asd.backends.base import build_backend
    from asd.data.audio import load_audio
    from asd.data.index import index_machine, list_machines
    from asd.evaluation.metrics import year_official_score
    from asd.evaluation.results import section_results
    from asd.models.multibranch import MultiBranchModule
    from asd.train import config_dir
    from asd.vocabulary import section_key

    checkpoints = sorted(asdkit_run.glob(ASDKIT_LAST_CHECKPOINT))
    if len(checkpoints) != 1:
        sys.exit(f"{asdkit_run}: expected one {ASDKIT_LAST_CHECKPOINT}, found {len(checkpoints)}")
    saved = torch.load(checkpoints[0], map_location="cpu", weights_only=False)["state_dict"]
    names = [n for n in saved if n.startswith("extractor.")]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        backend_config = compose("train", overrides=[f"experiment={experiment}"]).backend
    module = MultiBranchModule(build_backend(backend_config)).eval()
    ours = list(module.network.state_dict())
    module.network.load_state_dict(dict(zip(ours, [saved[names[i]] for i in asdkit_order(names)], strict=True)))

    def embed(clips) -> list:
        with torch.no_grad():
            return [row.numpy() for row in module.representations({"waveform": [load_audio(c.path) for c in clips]})]

    def keys(clips) -> list[str]:
        return [section_key(c.info.machine, c.info.section_id) for c in clips]

    machines = list_machines(root, "dev")
    if not machines:
        sys.exit(f"{root}: no dev_data/raw/<machine type> folders (--data-root: the data the ASDKit run read)")
    sections = []
    for machine in machines:
        clips = index_machine(root, "dev", machine)
        train = [c for c in clips if c.info.split == "train"]
        test = [c for c in clips if c.info.split == "test"]
        backend = build_backend(backend_config)
        backend.fit(embed(train), [c.info.domain for c in train], keys(train))
        scores = backend.score(embed(test), keys(test))
        # decisions 0: the official score does not read them
        sections += section_results([c.info for c in test], {i: (s, 0, 0) for i, s in enumerate(scores)}, True).values()
        print(f"{machine}: {len(train)} training clips, {len(test)} test clips embedded", flush=True)
    score = 100 * year_official_score(sections, 2024)
    theirs = asdkit_scores(asdkit_run)["official"]
    print(f"ASDKit's trained network: official score through our pipeline {score:.2f}, ASDKit's own {theirs:.2f}")
    return score


@contextlib.contextmanager
def asdkit_mixup_draws(draws: dict):
    """Our training step's random draws made ASDKit's (``draws``: its Mixup's ``lam``, ``perm`` and
    ``dec_uniform``), in the order our step draws them: where each clip starts (0: ASDKit's side is
    handed clips tiled from the start), whether it is mixed (uniforms below the probability), its
    share, its partner."""
    import torch

    with (
        mock.patch("torch.randint", return_value=torch.tensor(0)),
        mock.patch("torch.rand", side_effect=[draws["dec_uniform"], draws["lam"]]),
        mock.patch("torch.randperm", return_value=draws["perm"]),
    ):
        yield


def largest_relative_difference(ours: list, theirs: list) -> float:
    """The largest relative difference |a - b| / |b| of paired gradients; a squeeze-excitation gate can
    have no gradient at all in one step: zero in both is no difference."""
    return max(
        float((a - b).norm() / b.norm().clamp_min(1e-300)) if b.norm() > 0 else float(a.norm() > 0)
        for a, b in zip(ours, theirs, strict=True)
    )


def check_step(python: Path, source: Path, dtype: str = "float64") -> float:
    """One training step of both programs, in ``dtype``, from the same weights on the same clips and
    classes (ASDKit: its network, its mixup (probability 0.5), its SC-AdaCos with trainable centres at a
    fixed scale, AdamW as its recipe configures it; ours: the recipe's module, its mixup given ASDKit's
    draws — which clips are mixed, their shares and partners): the loss, every gradient and every weight
    after the optimiser's step, side by side, and as the yardstick of rounding the same step of ASDKit on
    another number of threads against itself. Returns the largest relative gradient difference."""
    import torch

    from asd.backends import KNNBackend
    from asd.models.multibranch import MultiBranchModule

    threads = torch.get_num_threads()
    other_threads = 1 if threads > 1 else 2
    theirs = asdkit_result(python, source, STEP_CHECK, (dtype,), threads)
    itself = asdkit_result(python, source, STEP_CHECK, (dtype,), other_threads)
    order = asdkit_order(theirs["names"])
    torch.set_default_dtype(getattr(torch, dtype))  # as ASDKit's side: every tensor made on the way too
    module = MultiBranchModule(KNNBackend(), class_names=["a", "b", "c"], mixup_probability=0.5)
    names = list(module.network.state_dict())
    module.network.load_state_dict(dict(zip(names, [theirs["tensors"][i] for i in order], strict=True)))
    with torch.no_grad():
        module.head.weight.copy_(theirs["W"].T)  # ASDKit's centres are columns, ours rows, in the same order
    module.train()
    module.log = lambda *args, **kwargs: None
    optimizer = module.configure_optimizers()
    draws = theirs["draws"]
    with asdkit_mixup_draws(draws):
        loss = module.training_step({"waveform": list(theirs["clips"]), "label": theirs["labels"]}, 0)
    loss.backward()
    mixed = (draws["dec_uniform"] < 0.5).nonzero().flatten().tolist()
    their_grads = dict(zip(theirs["grads"]["names"], theirs["grads"]["tensors"]))
    their_grad_names = [n for n in (theirs["names"][i] for i in order) if n in their_grads]
    ours_grads = [p.grad for p in module.network.parameters()] + [module.head.weight.grad]
    grad_error = largest_relative_difference(
        ours_grads, [their_grads[n] for n in their_grad_names] + [theirs["W_grad"].T]
    )
    rounding = largest_relative_difference(
        itself["grads"]["tensors"] + [itself["W_grad"]], theirs["grads"]["tensors"] + [theirs["W_grad"]]
    )
    optimizer.step()
    after = [theirs["after"][i] for i in order] + [theirs["W_after"].T]
    ours_after = list(module.network.state_dict().values()) + [module.head.weight.detach()]
    weight_difference = max(float((a - b).abs().max()) for a, b in zip(ours_after, after, strict=True))
    weight_rounding = max(
        float((a - b).abs().max())
        for a, b in zip(itself["after"] + [itself["W_after"]], theirs["after"] + [theirs["W_after"]], strict=True)
    )
    other = f"ASDKit against itself on {other_threads} thread(s)"
    print(
        f"{dtype}, {threads} thread(s): loss ours {loss.item():.7f}, ASDKit {theirs['loss']:.7f} (clips {mixed} of 6 mixed)"
    )
    print(
        f"gradients: largest relative difference of a parameter's gradient {grad_error:.1e} ({len(ours_grads)} parameters);"
        f" {other}: {rounding:.1e}"
    )
    print(
        f"after one AdamW step (lr 1e-3): max |weight ours - weight ASDKit| = {weight_difference:.1e}; {other}:"
        f" {weight_rounding:.1e}"
    )
    return grad_error


# ASDKit's own LightningModule of its recipe, built from its own config files (the recipe's frontend file,
# then the recipe's settings over it), trained for as many steps as batches given (argv: the batches, where
# its result goes, its source folder, the recipe)
STEPS_CHECK = """
import json, sys, torch
from pathlib import Path
from omegaconf import OmegaConf
from asdkit.utils.common import instantiate_tgt
from asdkit.augmentations import Mixup
torch.set_default_dtype(torch.float64)
given = torch.load(sys.argv[1])
config = Path(sys.argv[3]) / "config" / "train"
labels = Path(sys.argv[2]).parent / "main.json"  # its label file: only the number of classes is read here
labels.write_text(json.dumps({"path2idx_dict": {str(i): i for i in range(given["classes"])}, "num_class": given["classes"]}))
recipe = OmegaConf.load(config / "experiments" / f"{sys.argv[4]}.yaml")
(frontend,) = [entry["override /frontend"] for entry in recipe.defaults if "override /frontend" in entry]
settings = OmegaConf.merge(
    {"datamodule": {"sec": given["seconds"], "sr": 16000}, "label_dict_path": {"main": str(labels)}},
    {"frontend": OmegaConf.load(config / "frontend" / f"{frontend}.yaml")},
    {"frontend": recipe.frontend},
)
torch.manual_seed(0)
model = instantiate_tgt(OmegaConf.to_container(settings.frontend, resolve=True))
assert [type(a) for a in model.augmentations] == [Mixup]
model.log = lambda *args, **kwargs: None  # no Lightning trainer to log to
start = {k: v.clone() for k, v in model.state_dict().items()}
optimizer = model.configure_optimizers()
model.train()
losses, draws, states = [], [], []
for step, (waves, classes) in enumerate(zip(given["waves"], given["labels"])):
    batch = {"wave": waves, "onehot_main": torch.nn.functional.one_hot(classes, given["classes"]).double()}
    torch.manual_seed(1000 + step)
    loss = model.training_step(batch, step)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    torch.manual_seed(1000 + step)  # Mixup's draws again, in its order: shares, partners, whether mixed
    draws.append({"lam": torch.rand(len(waves)), "perm": torch.randperm(len(waves)), "dec_uniform": torch.rand(len(waves))})
    losses.append(loss.item())
    states.append({k: v.clone() for k, v in model.state_dict().items()})
torch.save({"start": start, "losses": losses, "draws": draws, "states": states}, sys.argv[2])
"""


def check_steps(
    python: Path,
    source: Path,
    experiment: str,
    profile: str,
    root: Path,
    steps: int,
    batch_size: int,
    recipe: str = ASDKIT_RECIPE,
) -> float:
    """``steps`` training steps of both programs in float64, from the same weights, on the same batches
    of real training clips (the first of our recipe's own training order on ``root``, with its classes),
    each mixed up as ASDKit's mixup drew it: ASDKit's side is its own LightningModule of its ``recipe``
    (``BasicDisPLModel``, built from its config files: its network, mixup, SC-AdaCos and AdamW as the
    recipe sets them), ours the ``experiment``'s module as ``asd.train`` builds it. Beyond ``--check-step`` (one
    step, our reconstruction of ASDKit's, random clips): the optimiser's state over steps (Adam's first
    step is lr times the gradient's sign, its betas unseen), the batch norms' running statistics, real
    clips and classes. Prints each step's two losses and largest weight difference; returns the last."""
    if steps < 1 or batch_size < 2:
        sys.exit(f"--check-steps {steps}, --check-batch-size {batch_size}: at least one step of two clips")
    recipes = source / "config" / "train" / "experiments"
    if not (recipes / f"{recipe}.yaml").is_file():
        sys.exit(f"--asdkit-recipe {recipe}: no such recipe in ASDKit's source ({recipes})")
    import hydra
    import torch
    from hydra import compose, initialize_config_dir

    from asd.backends.base import build_backend
    from asd.data.index import list_machines
    from asd.train import config_dir, datamodule_settings

    data, machine = PROFILES[profile]
    overrides = [f"experiment={experiment}", f"data={data}", f"machine={machine}", f"data.root={root}"]
    overrides += [f"machine.types=[{','.join(list_machines(root, 'dev'))}]", f"data.clip_batch_size={batch_size}"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    datamodule = hydra.utils.instantiate(
        datamodule_settings(cfg.data),
        machines=list(cfg.machine.types),
        input=hydra.utils.get_class(cfg.model._target_).data_input,
        validation_split=0.0,
    )
    datamodule.setup("fit")
    torch.set_default_dtype(torch.float64)  # before the module: its weights, and every tensor of its steps
    module = hydra.utils.instantiate(cfg.model, backend=build_backend(cfg.backend), class_names=datamodule.class_names)
    batches = [batch for _, batch in zip(range(steps), datamodule.train_dataloader())]
    if len(batches) < steps:
        sys.exit(f"{root}: {len(batches)} batches of {batch_size} training clips, fewer than --check-steps {steps}")
    given = {
        "waves": [module.fixed_length(b["waveform"], random_start=False).double() for b in batches],
        "labels": [b["label"] for b in batches],
        "classes": len(datamodule.class_names),
        "seconds": cfg.model.clip_seconds,
    }
    with tempfile.TemporaryDirectory() as folder:
        torch.save(given, Path(folder) / "batches.pt")
        env = {**os.environ, "PYTHONPATH": str(source)}
        command = [str(python), "-c", STEPS_CHECK, *(str(Path(folder) / f) for f in ("batches.pt", "asdkit.pt"))]
        subprocess.run([*command, str(source), recipe], check=True, env=env)
        theirs = torch.load(Path(folder) / "asdkit.pt")
    names = [n for n in theirs["start"] if n.startswith("extractor.")]
    order = [names[i] for i in asdkit_order([n.removeprefix("extractor.") for n in names])]

    def ours_from(state: dict) -> list:  # ASDKit's tensors in our order; its centres are columns, ours rows
        return [state[n] for n in order] + [state["head_dict.main.W"].T]

    module.network.load_state_dict(dict(zip(module.network.state_dict(), ours_from(theirs["start"])[:-1], strict=True)))
    with torch.no_grad():
        module.head.weight.copy_(theirs["start"]["head_dict.main.W"].T)
    module.train()
    module.log = lambda *args, **kwargs: None
    optimizer = module.configure_optimizers()
    difference = 0.0
    for step, (batch, draws) in enumerate(zip(batches, theirs["draws"])):
        with asdkit_mixup_draws(draws):
            loss = module.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ours = {f"network.{n}": t for n, t in module.network.state_dict().items()} | {"head.weight": module.head.weight}
        differences = {
            n: float((a.detach() - b).abs().max())
            for (n, a), b in zip(ours.items(), ours_from(theirs["states"][step]), strict=True)
        }
        largest = max(differences, key=differences.get)
        difference = differences[largest]
        print(
            f"step {step + 1:3d}: loss ours {loss.item():.9f}, ASDKit {theirs['losses'][step]:.9f}; "
            f"max |weight or buffer ours - ASDKit| {difference:.1e} ({largest}, its largest |value| "
            f"{float(ours[largest].detach().abs().max()):.2g})",
            flush=True,
        )
    return difference


def main(argv: list[str] | None = None) -> None:
    parser = comparison_parser(__doc__.split("\n\n")[0], "multibranch_sc_adacos_knn", "0,1,2")
    parser.add_argument("--epochs", type=int, help="training epochs of both sides (default: each recipe's, 16)")
    parser.add_argument("--asdkit-tool", type=Path, default=SHARED_TOOL)
    parser.add_argument(
        "--asdkit-recipe",
        default=ASDKIT_RECIPE,
        help=f"ASDKit's recipe run beside ours and built by --check-steps (default {ASDKIT_RECIPE}; e.g."
        " dis_multispec_scac_trainable beside --experiments multibranch_multispec_sc_adacos_knn)",
    )
    parser.add_argument("--check-network", action="store_true", help="compare the two networks, then stop")
    parser.add_argument("--check-step", action="store_true", help="compare one training step of both, then stop")
    parser.add_argument(
        "--check-dtype", choices=("float64", "float32"), default="float64", help="--check-step's dtype (float64)"
    )
    parser.add_argument(
        "--check-steps", type=int, metavar="N", help="compare N training steps of both on the data's clips, then stop"
    )
    parser.add_argument(
        "--check-init", type=int, metavar="SEEDS", help="compare both initial weights over SEEDS seeds, then stop"
    )
    parser.add_argument(
        "--check-batch-size", type=int, default=64, help="--check-steps' clips a batch (the recipe's 64)"
    )
    parser.add_argument(
        "--check-backend", type=Path, metavar="ASDKIT_RUN", help="our back-end on an ASDKit run's embeddings, then stop"
    )
    parser.add_argument(
        "--check-trained", type=Path, metavar="ASDKIT_RUN", help="an ASDKit run's trained network through our pipeline"
    )
    venv = Path(os.environ.get("ASDKIT_VENV", "/tmp/asdkit-venv"))
    parser.add_argument("--asdkit-python", type=Path, default=venv / "bin" / "python")
    parser.add_argument("--asdkit-source", type=Path, default=Path(os.environ.get("ASDKIT_SRC", "/tmp/asdkit/src")))
    args = parser.parse_args(argv)
    experiment = args.experiments.split(",")[0]  # what a check compares: the first recipe
    if (args.check_network or args.check_step or args.check_init) and args.asdkit_recipe != ASDKIT_RECIPE:
        parser.error(
            f"--check-network, --check-step and --check-init build {ASDKIT_RECIPE}'s network only; use --check-steps"
        )
    if args.check_init is not None and args.check_init < 2:
        parser.error(f"--check-init {args.check_init}: at least two seeds a side")
    if args.check_network:
        check_network(args.asdkit_python, args.asdkit_source)
        return
    if args.check_dtype != "float64" and not args.check_step:
        parser.error(f"--check-dtype {args.check_dtype} is --check-step's: give --check-step too")
    if args.check_step:
        check_step(args.asdkit_python, args.asdkit_source, args.check_dtype)
        return
    if args.check_init is not None:
        check_init(args.asdkit_python, args.asdkit_source, experiment, args.check_init)
        return
    if args.check_steps is not None:
        root = comparison_plan(args)[2]
        check_steps(
            args.asdkit_python,
            args.asdkit_source,
            experiment,
            args.profile,
            root,
            args.check_steps,
            args.check_batch_size,
            args.asdkit_recipe,
        )
        return
    if args.check_backend:
        check_backend(args.check_backend, experiment)
        return
    if args.check_trained:
        # the data the ASDKit run read, as it is: --data-root, or the profile's generated copy
        root = args.data_root or comparison_plan(args)[2]
        check_trained(args.check_trained, experiment, root)
        return
    if args.recorded:
        experiments = planned_runs(args)[1]
        print_recorded(parser, args, [asdkit_system(args.asdkit_recipe), *(f"ours: {e}" for e in experiments)])
        return
    if args.work is None:
        parser.error("--work is required")
    seeds, experiments, root, machines = comparison_plan(args)
    if not args.asdkit_tool.is_file():
        sys.exit(f"{args.asdkit_tool}: ASDKit's runner is missing (--asdkit-tool)")
    overrides = (f"trainer.max_epochs={args.epochs}",) if args.epochs else ()
    asdkit = asdkit_system(args.asdkit_recipe)
    results: dict[str, dict[int, dict]] = {asdkit: {}, **{f"ours: {e}": {} for e in experiments}}
    for seed in seeds:
        results[asdkit][seed] = asdkit_scores(
            run_asdkit(args.asdkit_tool, root, machines, seed, args.work, args.epochs, args.asdkit_recipe)
        )
        for experiment in experiments:
            run_dir = run_ours(experiment, PROFILES[args.profile], root, args.data_seed, seed, args.work, overrides)
            results[f"ours: {experiment}"][seed] = {**our_scores(run_dir), "epoch_seconds": epoch_seconds(run_dir)}
        print(f"seed {seed} done", flush=True)
    if args.record:
        record_results(args.record, recorded_data(args), results, f"runs under {args.work.resolve()}")
    print_comparison(results, seeds, machines, asdkit, args, root)


if __name__ == "__main__":
    main()
