"""llama.cpp sampler chains, one per sequence."""

from __future__ import annotations

import secrets
from typing import Any

import llama_cpp

from deepwell.vocabulary import Sampling


def build_chain(sampling: Sampling) -> Any:
    """A sampler chain for these parameters; free it with ``free_chain``.

    Temperature 0 is greedy decoding; otherwise top-p, temperature, and a random draw
    seeded by ``sampling.seed`` (a fresh random seed when absent). A constraint is not
    part of the chain: the scheduler masks the logits before the chain samples.
    """
    params = llama_cpp.llama_sampler_chain_default_params()
    params.no_perf = True
    chain = llama_cpp.llama_sampler_chain_init(params)
    if sampling.temperature <= 0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    if sampling.top_p < 1.0:
        llama_cpp.llama_sampler_chain_add(
            chain, llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1)
        )
    seed = sampling.seed if sampling.seed is not None else secrets.randbits(32)
    temperature = llama_cpp.llama_sampler_init_temp(sampling.temperature)
    llama_cpp.llama_sampler_chain_add(chain, temperature)
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
    return chain


def free_chain(chain: Any) -> None:
    llama_cpp.llama_sampler_free(chain)
