from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import runpy
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from threadpoolctl import threadpool_limits

from asd.data.synthetic import generate
from asd.train import config_dir

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest runs two worker processes (pyproject's addopts): one thread each, for them and for the
    # commands they start, or the two contend for the same cores
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    # numpy's BLAS read its thread count when torch imported numpy, before the line above: two threads
    # per worker, four busy threads on two cores in the kNN and covariance products
    threadpool_limits(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``beats`` need openbeats (asd[beats]), which pins torch to 2.11 through torchaudio:
    the dev install leaves it out, and they run where it is installed (README, "Tests")."""
    if importlib.util.find_spec("openbeats") is None:
        for item in items:
            if item.get_closest_marker("beats"):
                item.add_marker(pytest.mark.skip(reason="needs asd[beats] (openbeats), see README 'Tests'"))


#: A MobileFaceNet small enough for CPU tests, as command-line overrides.
TINY_MFN_OVERRIDES = ["model.width=8", "model.channels=16", "model.final_channels=32", "model.embedding_dim=16"]


def build_tiny_wav2vec2(directory):
    """A randomly initialised two-layer wav2vec 2.0 in a transformers model directory."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16),
        conv_stride=(10, 8),  # 80 samples a frame: 2,000 frames for a 10-s clip keep attention cheap
        conv_kernel=(10, 8),
        num_feat_extract_layers=2,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    torch.manual_seed(0)
    Wav2Vec2Model(config).save_pretrained(directory)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(directory)


def build_tiny_beats_checkpoint(path):
    """A randomly initialised two-layer BEATs in the official checkpoint layout; returns the reference encoder."""
    from openbeats.beats_encoder import BeatsEncoder

    cfg = {
        "encoder_layers": 2,
        "encoder_embed_dim": 32,
        "encoder_ffn_embed_dim": 64,
        "encoder_attention_heads": 2,
        "embed_dim": 32,
        "input_patch_size": 16,
        "relative_position_embedding": True,
        "num_buckets": 32,
        "max_distance": 64,
        "gru_rel_pos": True,
        "layer_norm_first": False,
        "deep_norm": True,
    }
    torch.manual_seed(0)
    model = BeatsEncoder(input_size=0, beats_config=cfg)
    torch.save({"cfg": cfg, "model": {k: v for k, v in model.state_dict().items() if "_pad" not in k}}, path)
    return model


@pytest.fixture(scope="session")
def tiny_wav2vec2(tmp_path_factory) -> Path:
    """The directory of a tiny wav2vec 2.0 (encoder=hf encoder.path=<it>), built once per test session."""
    directory = tmp_path_factory.mktemp("w2v")
    build_tiny_wav2vec2(directory)
    return directory


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """The embedded synthetic dataset, generated once per test session."""
    return generate(tmp_path_factory.mktemp("synthetic") / "synthetic", seed=0)


@pytest.fixture(scope="session")
def synthetic_2020_root(tmp_path_factory) -> Path:
    """The embedded synthetic dataset in DCASE 2020's naming (no domains), generated once per session."""
    return generate(tmp_path_factory.mktemp("synthetic_2020") / "synthetic_2020", seed=0, year=2020)


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> Path:
    """One feature cache for the session's runs on the synthetic dataset: its entries are keyed by the
    settings and each file, so runs with other settings miss it as they would their own."""
    return tmp_path_factory.mktemp("feature_cache")


def provide_synthetic_data(home: Path, synthetic_root: Path, feature_cache: Path) -> None:
    """Give a command run with ``ASD_ROOT=home`` the session's synthetic dataset (home/data/synthetic)
    and feature cache (home/data/cache/features), where the default paths look for them."""
    (home / "data" / "cache").mkdir(parents=True)
    (home / "data" / "synthetic").symlink_to(synthetic_root)
    (home / "data" / "cache" / "features").symlink_to(feature_cache)


@pytest.fixture
def make_cfg(tmp_path, synthetic_root, feature_cache):
    """Compose the training config as `python -m asd.train <overrides>` would, writing under tmp_path."""

    def _make(*overrides: str, views: bool = False) -> DictConfig:
        """The training config with these overrides, writing under the test's folder; ``views``: keep the
        TensorBoard views (figures, images, projector: a second per run), which one test checks."""
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides), return_hydra_config=False)
        with open_dict(cfg):
            cfg.paths.root_dir = str(tmp_path)
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.cache_dir = str(tmp_path / "cache")
            if cfg.data.synthetic.seed is not None and not any(o.startswith("data.root=") for o in overrides):
                cfg.data.root = str(synthetic_root)
                cfg.paths.cache_dir = str(feature_cache)
            cfg.callbacks.progress_bar.refresh_rate = 0
            if not views:
                cfg.callbacks.tensorboard_views = None
        Path(cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
        return cfg

    return _make


def run_module_in_process(
    module: str, arguments: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess:
    """``python -m <module> <arguments>`` run as ``python -m`` runs it (``runpy``, ``sys.argv``, the
    working directory and environment set), in this interpreter: a fresh ``python`` spends most of a
    short command importing torch and Lightning, and the CLI tests run dozens of commands. Returns
    what a subprocess would (exit status, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd, saved_env = sys.argv, os.getcwd(), dict(os.environ)
    root_logger = logging.getLogger()
    saved_handlers, saved_level = root_logger.handlers[:], root_logger.level
    returncode = 0
    try:
        sys.argv = [module, *arguments]
        os.chdir(cwd)
        os.environ.update(env)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*found in sys.modules", category=RuntimeWarning)
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            except SystemExit as exit_:
                if isinstance(exit_.code, str):  # sys.exit("message"): the interpreter prints it, status 1
                    stderr.write(exit_.code + "\n")
                returncode = 1 if isinstance(exit_.code, str) else (exit_.code or 0)
            except BaseException:
                traceback.print_exc(file=stderr)
                returncode = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        # Hydra points the root logger at this run's folder and the captured streams: put it back.
        for handler in root_logger.handlers[:]:
            if handler not in saved_handlers:
                root_logger.removeHandler(handler)
                handler.close()
        root_logger.handlers[:] = saved_handlers
        root_logger.setLevel(saved_level)
    return subprocess.CompletedProcess([module, *arguments], returncode, stdout.getvalue(), stderr.getvalue())


@pytest.fixture
def run_cli(tmp_path, synthetic_root, feature_cache):
    """Run ``python -m asd.train|asd.score|asd.report …`` as a user would, with ASD_ROOT=tmp_path
    (logs under tmp_path/logs) and the session's synthetic dataset and feature cache under tmp_path/data; in this
    interpreter (:func:`run_module_in_process`), or with ``process=True`` in a new one (commands that
    start processes of their own, signals)."""
    provide_synthetic_data(tmp_path, synthetic_root, feature_cache)
    env = {"ASD_ROOT": str(tmp_path)}

    def _run(module: str, *arguments: str, process: bool = False) -> subprocess.CompletedProcess:
        if not process:
            return run_module_in_process(module, list(arguments), tmp_path, env)
        command = [sys.executable, "-m", module, *arguments]
        return subprocess.run(
            command, cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
        )

    return _run
