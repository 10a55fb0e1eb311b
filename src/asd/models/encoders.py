"""Frozen pretrained audio encoders, loaded ONLY from local paths (no downloads at run time).

An encoder maps one mono waveform at its own ``sample_rate`` to frame embeddings (frames x dims);
``encode`` does the same for a batch of equal-length waveforms (batch x frames x dims), which
fine-tuning (``model=finetune``) trains through.

* :class:`HuggingFaceEncoder`: any ``transformers`` audio model that ``AutoModel`` loads from a
  local directory (AST, WavLM, HuBERT, wav2vec 2.0, Whisper's encoder, ...), with the
  directory's feature extractor where it has one.
* :class:`BEATsEncoder`: BEATs from its official checkpoint file (``{"cfg": ..., "model": ...}``
  as Microsoft distributes it), run by the ``openbeats`` package's vendored ESPnet encoder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from asd.data.audio import resample
from asd.extras import require_extra


class EncoderWeightsError(FileNotFoundError):
    """Missing or incompatible pretrained weights; the message says what to download and where."""


def _require(path: str | Path, what: str, example: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise EncoderWeightsError(
            f"{path}: pretrained {what} not found. These machines cannot download weights: download "
            f"{example} once on a machine with internet access, copy it here, and set encoder.path=<path>"
        )
    return path


def require_one_channel(model: str, in_channels: int) -> None:
    """The encoders read one waveform: several channels (data.audio.channel=[0,1]) are a config error."""
    if in_channels != 1:
        raise ValueError(
            f"model={model} encodes one channel, data.audio.channel selects {in_channels}; "
            "choose one (DCASE 2026: data.audio.channel=0, the near microphone)"
        )


def at_encoder_rate(encoder: nn.Module, waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Waveforms at ``sample_rate`` resampled to the encoder's own rate, where they differ."""
    if encoder.sample_rate != sample_rate:
        return resample(waveforms, sample_rate, encoder.sample_rate)
    return waveforms


class HuggingFaceEncoder(nn.Module):
    """A ``transformers`` audio model from a local directory (``save_pretrained`` layout).

    ``layer`` selects a hidden state (``None``: the last), since middle layers often serve
    anomaly detection better than the last.
    """

    def __init__(self, path: str, layer: int | None = None):
        super().__init__()
        require_extra("pretrained", "encoder=hf (a transformers model)")
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        directory = _require(
            path,
            "Hugging Face model directory",
            "e.g. `huggingface-cli download MIT/ast-finetuned-audioset-10-10-0.4593 --local-dir <dir>`",
        )
        try:
            config = AutoConfig.from_pretrained(directory, local_files_only=True)
            self.model = AutoModel.from_pretrained(directory, local_files_only=True).eval()
        except (OSError, ValueError, KeyError) as err:
            raise EncoderWeightsError(f"{directory}: not a loadable transformers model directory ({err})") from err
        try:
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError, KeyError):
            self.feature_extractor = None  # models that take raw waveforms directly
        self.is_whisper = config.model_type == "whisper"
        self.layer = layer
        self.sample_rate = int(getattr(self.feature_extractor, "sampling_rate", 16000) or 16000)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.encode(waveform.unsqueeze(0))[0]

    def encode(self, waveforms: torch.Tensor) -> torch.Tensor:
        if self.feature_extractor is not None:
            # the extractor's own preprocessing (normalisation, AST's fbank) runs on numpy; the
            # waveforms themselves are never trained, so nothing needs their gradient
            inputs = self.feature_extractor(
                list(waveforms.detach().cpu().numpy()), sampling_rate=self.sample_rate, return_tensors="pt"
            )
            inputs = {k: v.to(waveforms.device) for k, v in inputs.items() if k in ("input_values", "input_features")}
        else:
            inputs = {"input_values": waveforms}
        module = self.model.encoder if self.is_whisper else self.model
        outputs = module(**inputs, output_hidden_states=self.layer is not None)
        return outputs.hidden_states[self.layer] if self.layer is not None else outputs.last_hidden_state


class BEATsEncoder(nn.Module):
    """BEATs from an official checkpoint file (``BEATs_iter3_plus_AS2M.pt`` and the like)."""

    sample_rate = 16000

    def __init__(self, path: str, layer: int | None = None):
        super().__init__()
        file = _require(
            path,
            "BEATs checkpoint",
            "e.g. BEATs_iter3_plus_AS2M.pt from https://github.com/microsoft/unilm/tree/master/beats",
        )
        try:
            checkpoint = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for non-checkpoint files
            raise EncoderWeightsError(f"{file}: not a readable torch checkpoint ({err})") from err
        if not isinstance(checkpoint, dict) or not {"cfg", "model"} <= checkpoint.keys():
            raise EncoderWeightsError(f"{file}: not an official BEATs checkpoint (expected the keys 'cfg' and 'model')")
        require_extra("beats", "encoder=beats (BEATs)")
        from openbeats.beats_encoder import BeatsEncoder

        self.encoder = BeatsEncoder(input_size=0, beats_config=dict(checkpoint["cfg"]), max_layer=layer)
        result = self.encoder.load_state_dict(checkpoint["model"], strict=False)
        missing = [k for k in result.missing_keys if "_pad" not in k]  # padding helpers are not in the checkpoint
        if missing:
            raise EncoderWeightsError(f"{file}: checkpoint does not fit the BEATs architecture; missing {missing[:5]}")
        self.encoder.eval()

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        lengths = torch.tensor([waveform.shape[-1]], device=waveform.device)
        frames, frame_lengths, _ = self.encoder(waveform.unsqueeze(0), lengths, waveform_input=True)
        return frames[0, : int(frame_lengths[0])]

    def encode(self, waveforms: torch.Tensor) -> torch.Tensor:
        lengths = torch.full((len(waveforms),), waveforms.shape[-1], device=waveforms.device)
        frames, _, _ = self.encoder(waveforms, lengths, waveform_input=True)
        return frames
