"""Helpers shared by the scripts that run llama.cpp (llama-cpp-python) beside tokenswift."""
import os


def default_model():
    """The default model where scripts/fetch-model.sh puts it."""
    cache = os.environ.get("TS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tokenswift")
    return os.path.join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def last_logits(llama_cpp, llm):
    """The logits row of the last evaluated token, read from llama.cpp's context."""
    import numpy as np
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))
