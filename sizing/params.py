"""Parameter accounting: the tensors a transformers model class holds for a config, by role.

The accounting lists every weight tensor of the language model as a ``Tensor`` (canonical module
name, element count, role) rather than summing closed formulas, because three consumers need the
breakdown: active parameters (routed experts scale by k/E), what stays 16-bit in quantized
checkpoints (roles in ``UNQUANTIZED_ROLES``), and checkpoint exclude-lists (matched on names).

Names are checkpoint-agnostic (``layers.3.self_attn.q_proj``); ``sizing.quantization`` matches
exclude patterns against them after stripping wrapper prefixes (``model.``, ``backbone.``...).
Counts equal ``model.parameters()`` of transformers 5.x on the meta device (see
tests/oracle/param_counts.csv). Buffers are not parameters: DeepSeek-style router
``e_score_correction_bias`` is a buffer in transformers, so it has role ``buffer``: excluded from
counts but priced in checkpoint bytes (stored as fp32 in real checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Roles. Linear weights that quantizers convert: attn, mlp, shared, experts, mixer.
EMBED, LM_HEAD, NORM, BIAS, ROUTER, ATTN, MLP, SHARED, EXPERTS, MIXER, STATE, BUFFER = (
    "embed", "lm_head", "norm", "bias", "router", "attn", "mlp", "shared", "experts", "mixer", "state", "buffer",
)
QUANTIZABLE_ROLES = frozenset({ATTN, MLP, SHARED, EXPERTS, MIXER})
UNQUANTIZED_ROLES = frozenset({EMBED, LM_HEAD, NORM, BIAS, ROUTER, STATE})


@dataclass(frozen=True)
class Tensor:
    """One weight (or a stack of routed experts: ``experts`` > 0 is the number stacked)."""

    name: str
    numel: int
    role: str
    experts: int = 0


@dataclass
class Accounting:
    """The language model's tensors plus the MTP and vision parts reported apart."""

    tensors: list[Tensor] = field(default_factory=list)
    mtp: int = 0
    vision: int = 0
    experts_per_token: int = 0
    num_experts: int = 0
    num_shared_experts: int = 0
    num_moe_layers: int = 0

    def add(self, name: str, numel: int, role: str, experts: int = 0) -> None:
        if numel:
            self.tensors.append(Tensor(name, int(numel), role, experts))

    def linear(self, name: str, d_in: int, d_out: int, role: str, bias: bool = False) -> None:
        self.add(f"{name}.weight", d_in * d_out, role)
        if bias:
            self.add(f"{name}.bias", d_out, BIAS)

    def norm(self, name: str, size: int, bias: bool = False) -> None:
        self.add(f"{name}.weight", size, NORM)
        if bias:
            self.add(f"{name}.bias", size, NORM)

    def expert_stack(self, name: str, count: int, per_expert: int, role: str = EXPERTS) -> None:
        self.add(name, count * per_expert, role, experts=count)

    @property
    def total(self) -> int:
        return sum(t.numel for t in self.tensors if t.role != BUFFER)

    @property
    def active(self) -> int:
        """Per-token reads: each routed-expert stack contributes k of its E experts."""
        total = 0
        for t in self.tensors:
            if t.role == BUFFER:
                continue
            if t.experts:
                total += t.numel // t.experts * min(self.experts_per_token, t.experts)
            else:
                total += t.numel
        return total

    def sum_roles(self, roles: frozenset[str] | set[str]) -> int:
        return sum(t.numel for t in self.tensors if t.role in roles)


def gated_mlp(acc: Accounting, prefix: str, hidden: int, inter: int, role: str, *, gated: bool = True, bias: bool = False) -> None:
    """SwiGLU/GeGLU (gate, up, down) or a plain two-matrix MLP (up, down)."""
    if gated:
        acc.linear(f"{prefix}.gate_proj", hidden, inter, role, bias)
    acc.linear(f"{prefix}.up_proj", hidden, inter, role, bias)
    acc.linear(f"{prefix}.down_proj", inter, hidden, role, bias)


def routed_experts(acc: Accounting, prefix: str, hidden: int, inter: int, count: int, *, gated: bool = True, bias: bool = False) -> None:
    """``count`` experts, each a (gated) MLP of width ``inter``; biases are per expert too."""
    mats = 3 if gated else 2
    acc.expert_stack(f"{prefix}.experts", count, mats * hidden * inter)
    if bias:
        acc.expert_stack(f"{prefix}.experts.bias", count, (2 if gated else 1) * inter + hidden, role=BIAS)


def embeddings(acc: Accounting, vocab: int, hidden: int, tied: bool, *, embed_name: str = "embed_tokens") -> None:
    acc.add(f"{embed_name}.weight", vocab * hidden, EMBED)
    if not tied:
        acc.add("lm_head.weight", vocab * hidden, LM_HEAD)
