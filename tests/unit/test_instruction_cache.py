"""Encoded instructions are cached on disk, exactly, and a bad cache file is re-encoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wmpo_cli.models.policy import text


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WMPO_CACHE_DIR", str(tmp_path))
    text._encode_cached.cache_clear()
    yield tmp_path / "instructions"
    text._encode_cached.cache_clear()


def test_encoding_is_written_once_and_read_back_exactly(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = text.encode_instruction("stack the red block on the green block", 8)
    path = text.cache_path("stack the red block on the green block", 8)
    assert path.parent == fresh_cache and path.exists()
    assert first.shape == (8, text.TEXT_WIDTH) and first.abs().sum() > 0

    def no_minilm(instruction: str, max_tokens: int) -> torch.Tensor:
        raise AssertionError("MiniLM must not run when the cache holds the instruction")

    monkeypatch.setattr(text, "_encode_with_minilm", no_minilm)
    text._encode_cached.cache_clear()
    again = text.encode_instruction("stack the red block on the green block", 8)
    assert torch.equal(first, again)
    # Another token budget is another key.
    assert text.cache_path("stack the red block on the green block", 16) != path


def test_a_corrupt_or_mis_shaped_cache_file_is_re_encoded(fresh_cache: Path) -> None:
    reference = text.encode_instruction("lift the cube", 8)
    path = text.cache_path("lift the cube", 8)
    for bad in (b"not numpy", None):
        if bad is None:
            np.save(path, np.zeros((3, 3), dtype=np.float32))
        else:
            path.write_bytes(bad)
        text._encode_cached.cache_clear()
        assert torch.equal(text.encode_instruction("lift the cube", 8), reference)
        assert np.load(path).shape == (8, text.TEXT_WIDTH)


def test_callers_cannot_corrupt_the_in_memory_cache(fresh_cache: Path) -> None:
    states = text.encode_instruction("lift the cube", 8)
    states.zero_()
    assert text.encode_instruction("lift the cube", 8).abs().sum() > 0
