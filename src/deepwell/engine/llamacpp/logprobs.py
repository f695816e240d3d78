"""Log-probabilities of sampled tokens, from the logits llama.cpp computed."""

from __future__ import annotations

from typing import Any

import llama_cpp
import numpy as np

from deepwell.engine.llamacpp.model import LlamaModel
from deepwell.vocabulary import TokenLogprob, TopLogprob


def token_logprob(
    model: LlamaModel, ctx: Any, batch_index: int, token: int, top: int
) -> TokenLogprob:
    """``token``'s log-probability under the model's distribution at ``batch_index``,
    with the ``top`` most likely tokens (call on the thread that owns ``ctx``)."""
    pointer = llama_cpp.llama_get_logits_ith(ctx, batch_index)
    logits = np.ctypeslib.as_array(pointer, shape=(model.n_vocab,))
    peak = float(logits.max())
    log_total = peak + float(np.log(np.exp(logits - peak).sum()))
    best: list[TopLogprob] = []
    if top > 0:
        ids = np.argpartition(logits, -top)[-top:]
        ids = ids[np.argsort(-logits[ids], kind="stable")]
        best = [_top(model, int(i), float(logits[i]) - log_total) for i in ids]
    chosen = _top(model, token, float(logits[token]) - log_total)
    return TokenLogprob(chosen.token, chosen.logprob, chosen.bytes, tuple(best))


def _top(model: LlamaModel, token: int, logprob: float) -> TopLogprob:
    raw = model.piece(token)
    return TopLogprob(raw.decode("utf-8", errors="replace"), logprob, tuple(raw))
