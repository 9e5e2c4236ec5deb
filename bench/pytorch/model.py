"""The gptc model (GPT-2 Medium speedrun, 2025-04-22 record, with n_emb input embeddings
x00..x0{n_emb-1}) in PyTorch, written like the speedrun script, for benchmarks. Section
numbers S-x.y are those of the model specification that gptc implements.

Precision modes (the `dtype` argument of GPT):
  bf16      the speedrun's mixed precision (S-10.1). Embeddings and block matrices are bf16
            parameters with bf16 gradients. Block matrices: Muon keeps an fp32 master copy,
            updates it in fp32 and writes its upper 16 bits (truncation toward zero) back
            into the bf16 parameter, as the script does; at initialisation the bf16 value is
            the round-to-nearest of the fp32 draw. Embeddings: plain bf16 storage, Adam states
            bf16 too (torch's Adam keeps states in the parameter dtype; fused on CUDA, whose
            math is fp32). lm_head, scalars and their Adam states are fp32; lm_head is cast
            to bf16 for the matmul; logits, soft cap and loss are fp32. rms_norm and rotary
            compute in fp32 and round to bf16 (rotary tables from float64 angles rounded once,
            as S-3 recommends, where the script rounds its angles in fp32). Attention is
            FlexAttention with the block mask of S-5.2/5.3 when available (flex_ok), else the
            dense path below in fp32. NS5 runs in bf16.
  f32, f64  no casts at all, attention with a dense [T, T] mask expanded from the same block
            lists (for correctness checks on a CPU; f64 reproduces the golden data).
Only torch and the standard library are used; torch >= 1.13 for the dense paths, FlexAttention
needs torch >= 2.5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

try:  # torch >= 2.5
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
except ImportError:
    BlockMask = flex_attention = None

# ---- topology of the 16-layer model (S-4.1) ----------------------------------------------
LAYERS = 16
NO_ATTN = 7                                            # layer without attention
LONG_LAYERS = (0, 4, 11, 15)                           # long window; the others short
VALUE_EMBED_OF = {0: 0, 1: 1, 2: 2, 13: 0, 14: 1, 15: 2}
SKIP_FROM = {9: 6, 10: 4, 11: 2}                       # before layer i add skip[j] * out[j]
NS_COEFFS = ((4.0848, -6.8946, 2.9270), (3.9505, -6.3029, 2.6377), (3.7418, -5.5913, 2.3037),
             (2.8769, -3.1427, 1.2046), (2.8366, -3.0525, 1.2012))
RMS_EPS = 2.0 ** -23                                   # FLT_EPSILON, also in f64 (S-3)


@dataclass
class Config:
    vocab: int = 50257
    eot: int = 50256
    dim: int = 1024
    heads: int = 8
    head_dim: int = 128
    n_emb: int = 1
    seq_len: int = 65536              # tokens per step (one rank)
    block: int = 128                  # attention block, tokens
    window_max: int = 27              # longest window, blocks
    steps: int = 5960
    cooldown: float = 0.7
    attn_scale: float = 0.12
    logit_cap: float = 15.0
    lr_head: float = 1 / 320
    lr_embed: float = 0.3
    lr_scalar: float = 0.015
    lr_muon: float = 0.025
    muon_wd: float = 0.01
    mlp_wd_mul: float = 2.0
    momentum_warmup: int = 300
    adam_betas: tuple = (0.8, 0.95)
    adam_eps: float = 1e-10

    def __post_init__(self):
        assert self.heads * self.head_dim == self.dim, "heads * head_dim must equal dim (S-11.1)"
        assert self.head_dim % 4 == 0 and 1 <= self.n_emb <= 5 and 0 <= self.eot < self.vocab

    @property
    def vocab_pad(self) -> int:
        return next_multiple(self.vocab, 128)


# the presets of models/gpt2m.gptc (vocabulary and the rest from its config block)
PRESETS = {
    "medium": dict(dim=1024, heads=8, head_dim=128, seq_len=65536, block=128),
    "small": dict(dim=256, heads=4, head_dim=64, seq_len=1024, block=128, steps=1000),
    "tiny": dict(dim=64, heads=2, head_dim=32, seq_len=256, block=16, steps=300),
}


def preset(name: str, **over) -> Config:
    return Config(**{**PRESETS[name], **over})


# ---- schedules (S-6, S-9.4) ---------------------------------------------------------------
def next_multiple(v: float, n: int) -> int:
    """Smallest k*n >= v with integer k >= 1, compared in double (so next_multiple(0, n) = n)."""
    k = max(1, math.ceil(v / n))
    while k * n < v:
        k += 1
    while k > 1 and (k - 1) * n >= v:
        k -= 1
    return k * n


def window_blocks(step: int, cfg: Config) -> tuple:
    """(long, short) window in blocks at a step. x ** 3 is C pow(), as the spec requires."""
    x = step / cfg.steps
    f = (4 * x ** 3 - 6 * x ** 2) + 3 * x
    long = next_multiple(cfg.window_max * cfg.block * f, cfg.block) // cfg.block
    return long, long // 2


def lr_factor(step: int, cfg: Config) -> float:
    x = step / cfg.steps
    return 1.0 if x < 1 - cfg.cooldown else (1 - x) / cfg.cooldown


def muon_momentum(step: int, cfg: Config) -> float:
    phi = min(step / cfg.momentum_warmup, 1)
    return (1 - phi) * 0.85 + phi * 0.95


# ---- primitives (S-3) ---------------------------------------------------------------------
def rms_norm(x):
    """No gain, eps 2^-23; bf16 input is normalised in fp32 and rounded back (S-10.1)."""
    xf = x.float() if x.dtype == torch.bfloat16 else x
    return (xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + RMS_EPS)).to(x.dtype)


def rotary_tables(T: int, head_dim: int, dtype, device=None):
    """cos, sin [T, head_dim/2]: angles t * 1024^(-j/(n-1)), n = head_dim/4, then n zero
    frequencies (half-truncated rotary). Evaluated in float64 and rounded once."""
    n = head_dim // 4
    expo = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
    freq = torch.cat([1024.0 ** -expo, torch.zeros(n, dtype=torch.float64)])
    theta = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
    return theta.cos().to(dtype=dtype, device=device), theta.sin().to(dtype=dtype, device=device)


def rotary(x, cos, sin):
    """x [T, H, D], halves a, b: a' = a cos + b sin, b' = b cos - a sin (rotation by -theta)."""
    xf = x.float() if x.dtype == torch.bfloat16 else x
    a, b = xf.chunk(2, dim=-1)
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.cat([a * c + b * s, b * c - a * s], dim=-1).to(x.dtype)


def softcap(z, c: float):
    return c * z * torch.rsqrt(z * z + c * c)


# ---- attention mask (S-5) -----------------------------------------------------------------
def doc_ids(tokens, eot: int):
    """Inclusive prefix count of eot: an eot opens the next document (S-5.1)."""
    return (tokens == eot).to(torch.int32).cumsum(0)


def block_lists(docs, B: int):
    """S-5.2: per query block the partial and the full key blocks, each as (count [N],
    indices [N, N] int32) with the selected blocks first, nearest (highest index) first."""
    N = docs.numel() // B
    lo, hi = docs.view(N, B)[:, 0], docs.view(N, B)[:, -1]
    i = torch.arange(N, device=docs.device)
    touch = (i[:, None] >= i[None, :]) & (lo[:, None] <= hi[None, :]) & (hi[:, None] >= lo[None, :])
    whole = (i[:, None] > i[None, :]) & (lo[:, None] == hi[None, :]) & (hi[:, None] == lo[None, :])

    def ordered(sel):  # stable ascending sort of the 0/1 row, reversed: selected first
        idx = torch.sort(sel.to(torch.int32), dim=-1, stable=True).indices.flip(-1)
        return sel.sum(-1, dtype=torch.int32), idx.to(torch.int32).contiguous()

    return ordered(touch & ~whole) + ordered(whole)


def kept_counts(p_num, f_num, w):
    """S-5.3 clamps for a window of w blocks (w may be 0): numbers of partial, full blocks kept
    from the front of each list. A negative full count keeps nothing; made explicit here."""
    w = torch.as_tensor(w, dtype=torch.int32, device=p_num.device)
    kp = torch.minimum(p_num, torch.clamp_min(w - f_num, 1))
    kf = torch.clamp_min(torch.minimum(f_num, w - 1), 0)
    return kp.to(torch.int32), kf.to(torch.int32)


def dense_mask(docs, B: int, lists, w):
    """[T, T] bool, True where query row may attend key column, expanded from the block lists."""
    p_num, p_idx, f_num, f_idx = lists
    kp, kf = kept_counts(p_num, f_num, w)
    N, T = p_num.numel(), docs.numel()
    r = torch.arange(N, device=docs.device)[None, :]

    def kept(idx, k):  # each row of idx is a permutation, so the scatter writes every cell once
        return torch.zeros(N, N, dtype=torch.bool, device=docs.device).scatter_(1, idx.long(), r < k[:, None])

    def grow(m):
        return m.repeat_interleave(B, 0).repeat_interleave(B, 1)

    pos = torch.arange(T, device=docs.device)
    dc = (pos[:, None] >= pos[None, :]) & (docs[:, None] == docs[None, :])
    return grow(kept(f_idx, kf)) | (grow(kept(p_idx, kp)) & dc)


def flex_block_mask(docs, B: int, lists, w):
    """The same mask as a FlexAttention BlockMask: the kept partial blocks apply mask_mod, the
    kept full blocks skip it, other blocks are skipped. mask_mod is the document-causal rule
    and the window term of S-5.4; inside kept partial blocks the window term is always true
    (S-5.4), so the kernels compute the script's mask; it is there for code paths that
    evaluate mask_mod on every element (eager flex_attention ignores the block lists)."""
    p_num, p_idx, f_num, f_idx = lists
    kp, kf = kept_counts(p_num, f_num, w)
    wmax = torch.clamp_min(torch.as_tensor(w, dtype=torch.int32, device=docs.device), 1)

    def document_causal_window(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (docs[q_idx] == docs[kv_idx]) & (q_idx // B - kv_idx // B < wmax)

    return BlockMask.from_kv_blocks(kp[None, None].contiguous(), p_idx[None, None],
                                    kf[None, None].contiguous(), f_idx[None, None],
                                    BLOCK_SIZE=B, mask_mod=document_causal_window)


def check_flex(device, T=4096, B=128, H=2, D=64, doc_len=300, seed=0):
    """Largest |compiled FlexAttention - dense attention| (fp32, random q, k, v and documents)
    over windows 0, 1, 3, 8, 27: checks the block lists and their BlockMask on a GPU."""
    g = torch.Generator().manual_seed(seed)
    docs = doc_ids((torch.rand(T, generator=g) < 1 / doc_len).to(torch.int32), 1).to(device)
    lists = block_lists(docs, B)
    q, k, v = (torch.randn(T, H, D, generator=g).to(device) for _ in range(3))
    fa = torch.compile(flex_attention, dynamic=False)
    worst = 0.0
    for w in (0, 1, 3, 8, 27):
        y = fa(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
               block_mask=flex_block_mask(docs, B, lists, w), scale=0.12)[0].transpose(0, 1)
        s = 0.12 * torch.einsum("qhd,khd->hqk", q, k)
        s = s.masked_fill(~dense_mask(docs, B, lists, w)[None], float("-inf"))
        ref = torch.einsum("hqk,khd->qhd", torch.softmax(s, dim=-1), v)
        worst = max(worst, (y - ref).abs().max().item())
    return worst


def attention_pairs(tokens, eot: int, B: int, w: int) -> int:
    """Number of allowed (query, key) pairs of the mask, from its closed form (S-5.4): keys
    k <= q of q's document at most max(w, 1) - 1 blocks before q's block. O(T), no T x T."""
    pos = torch.arange(tokens.numel(), device=tokens.device)
    start = torch.where(tokens == eot, pos, torch.zeros_like(pos)).cummax(0).values  # q's document
    first = torch.maximum(start, (pos // B - max(w, 1) + 1).clamp_min(0) * B)
    return int((pos - first + 1).sum())


def model_flops(cfg: Config, pairs_long: int, pairs_short: int) -> float:
    """Model FLOPs of one training step (forward + backward, no recomputation):
    * matmuls: 2 FLOPs per multiply-add forward, 4 backward (input and weight gradients), so
      6 * N * T with N the matmul weights: the Muon matrices (qkvo, fc, proj) and lm_head
      (all Vp rows). Embedding lookups are not matmuls; norms, rotary, lambda mixes, soft cap
      and loss are O(T * d) elementwise work; all are left out (< 0.1 %).
    * attention: per attention layer and allowed pair, q.k and p.v cost 2 * D FLOPs each per
      head forward, 4 * d over the heads; the backward (dq, dk, dv, dp) twice that: 12 * d.
      Pairs are counted exactly (attention_pairs), so documents shorter than the window and
      the window itself are accounted for; layers 0, 4, 11, 15 use the long window, the 11
      other attention layers the short one."""
    d = cfg.dim
    n_mat = (LAYERS - 1) * 4 * d * d + LAYERS * 2 * 4 * d * d + cfg.vocab_pad * d
    short_layers = LAYERS - 1 - len(LONG_LAYERS)
    return 6.0 * n_mat * cfg.seq_len + 12.0 * d * (len(LONG_LAYERS) * pairs_long + short_layers * pairs_short)


def flex_ok(cfg: Config, device) -> bool:
    """FlexAttention by default: on CUDA, with torch >= 2.5, and a block that is a multiple of
    128 (the kernels' tiles must divide the block; the tiny preset's 16 would not)."""
    return flex_attention is not None and torch.device(device).type == "cuda" and cfg.block % 128 == 0


# ---- model (S-2, S-4) ---------------------------------------------------------------------
class Attn(nn.Module):
    def __init__(self, cfg, dtype, device):
        super().__init__()
        self.qkvo = nn.Parameter(torch.empty(4, cfg.dim, cfg.dim, dtype=dtype, device=device))


class MLP(nn.Module):
    def __init__(self, cfg, dtype, device):
        super().__init__()
        self.fc = nn.Parameter(torch.empty(4 * cfg.dim, cfg.dim, dtype=dtype, device=device))
        self.proj = nn.Parameter(torch.empty(cfg.dim, 4 * cfg.dim, dtype=dtype, device=device))


class Block(nn.Module):
    def __init__(self, cfg, i, dtype, device):
        super().__init__()
        self.attn = Attn(cfg, dtype, device) if i != NO_ATTN else None
        self.mlp = MLP(cfg, dtype, device)


class GPT(nn.Module):
    """Parameters named as in S-2.1 by spec_params(). Created in fp32 (bf16 mode) or in
    `dtype` with the script's initialisation; in bf16 mode the fp32 draws of the block
    matrices are kept in self.masters for Muon (take_masters())."""

    def __init__(self, cfg: Config, dtype=torch.float32, device="cpu", attention="auto", seed=0):
        super().__init__()
        self.cfg, self.dtype = cfg, dtype
        self.mixed = dtype == torch.bfloat16
        pdt = torch.float32 if self.mixed else dtype  # dtype of the draws and of fp32-only tensors
        V, d, L = cfg.vocab, cfg.dim, LAYERS
        self.embed = nn.ModuleList(nn.Embedding(V, d, dtype=pdt, device=device) for _ in range(cfg.n_emb))
        self.value_embed = nn.ModuleList(nn.Embedding(V, d, dtype=pdt, device=device) for _ in range(3))
        self.blocks = nn.ModuleList(Block(cfg, i, pdt, device) for i in range(L))
        self.lm_head = nn.Parameter(torch.zeros(cfg.vocab_pad, d, dtype=pdt, device=device))
        self.skip_weights = nn.Parameter(torch.ones(L, dtype=pdt, device=device))
        lam = torch.zeros(L, 1 + cfg.n_emb, dtype=pdt, device=device)
        lam[:, 0] = 1
        self.lambdas = nn.Parameter(lam)
        self.sa_lambdas = nn.Parameter(torch.full((L, 2), 0.5, dtype=pdt, device=device))
        self.reset_parameters(torch.Generator(device=device).manual_seed(seed))
        self.masters = {}
        if self.mixed:
            for name, p in self.spec_params().items():
                if name.startswith("blocks."):
                    self.masters[name] = p.detach().clone()
                if name.startswith(("blocks.", "embed.", "value_embed.")):
                    p.data = p.data.to(torch.bfloat16)  # round to nearest
        if attention == "auto":
            attention = "flex" if flex_ok(cfg, device) else "dense"
        assert attention in ("flex", "dense") and (attention == "dense" or flex_attention is not None)
        self.attention = attention
        tdt = torch.float32 if self.mixed else dtype
        cos, sin = rotary_tables(cfg.seq_len, cfg.head_dim, tdt, device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    @torch.no_grad()
    def reset_parameters(self, gen):
        """S-2.1 initialisation (unseeded in the script; seeded here for reproducible runs)."""
        a = math.sqrt(3) * 0.5 / math.sqrt(self.cfg.dim)
        for e in list(self.embed) + list(self.value_embed):
            e.weight.normal_(0, 1, generator=gen)
        for b in self.blocks:
            if b.attn is not None:
                b.attn.qkvo.uniform_(-a, a, generator=gen)
                b.attn.qkvo[3].zero_()
            b.mlp.fc.uniform_(-a, a, generator=gen)
            b.mlp.proj.zero_()

    def spec_params(self) -> dict:
        """name -> parameter, names and order of S-2.1 / the golden files."""
        P = {f"embed.{k}": e.weight for k, e in enumerate(self.embed)}
        P.update({f"value_embed.{j}": e.weight for j, e in enumerate(self.value_embed)})
        for i, b in enumerate(self.blocks):
            if b.attn is not None:
                P[f"blocks.{i}.attn.qkvo"] = b.attn.qkvo
            P[f"blocks.{i}.mlp.fc"] = b.mlp.fc
            P[f"blocks.{i}.mlp.proj"] = b.mlp.proj
        P.update(lm_head=self.lm_head, skip_weights=self.skip_weights, lambdas=self.lambdas,
                 sa_lambdas=self.sa_lambdas)
        return P

    def take_masters(self) -> dict:
        m, self.masters = self.masters, {}
        return m

    def _attend(self, q, k, v, mask):
        """q, k, v [T, H, D] -> [T, H, D]; mask is a BlockMask or a dense [T, T] bool."""
        if self.attention == "flex":
            y = flex_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
                               block_mask=mask, scale=self.cfg.attn_scale)
            return y[0].transpose(0, 1)
        cd = torch.float32 if q.dtype == torch.bfloat16 else q.dtype
        s = self.cfg.attn_scale * torch.einsum("qhd,khd->hqk", q.to(cd), k.to(cd))
        p = torch.softmax(s.masked_fill(~mask[None], float("-inf")), dim=-1)
        return torch.einsum("hqk,khd->qhd", p, v.to(cd)).to(v.dtype)

    def _attn(self, i, h, ve, mask, cos, sin):
        cfg, T = self.cfg, h.size(0)
        w = self.blocks[i].attn.qkvo
        q, k, v = F.linear(h, w[:3].flatten(0, 1)).view(T, 3, cfg.heads, cfg.head_dim).unbind(1)
        q, k = rotary(rms_norm(q), cos, sin), rotary(rms_norm(k), cos, sin)
        sa = self.sa_lambdas[i]
        v = sa[0] * rms_norm(v)            # a 0-dim fp32 scalar times bf16 stays bf16
        if ve is not None:
            v = v + sa[1] * ve.view_as(v)
        y = self._attend(q, k, v, mask).reshape(T, cfg.dim)
        return F.linear(y, w[3])

    def forward(self, inputs, targets, window, eval_chunks=False, acts=None):
        """Mean loss of one sequence. window: long window in blocks (int or 0-dim tensor), the
        short one is window // 2. eval_chunks: the 4-chunk validation loss (S-4.5)."""
        cfg, T = self.cfg, inputs.numel()
        docs = doc_ids(inputs, cfg.eot)
        lists = block_lists(docs, cfg.block)
        make = flex_block_mask if self.attention == "flex" else dense_mask
        masks = {"L": make(docs, cfg.block, lists, window), "S": make(docs, cfg.block, lists, window // 2)}
        if T <= self.cos.size(0):
            cos, sin = self.cos[:T], self.sin[:T]
        else:
            cos, sin = rotary_tables(T, cfg.head_dim, self.cos.dtype, inputs.device)

        x0 = [rms_norm(e(inputs)) for e in self.embed]
        ve = [e(inputs) for e in self.value_embed]
        lam = self.lambdas
        x, outs = x0[0], []                # the stream starts as x00 itself
        for i in range(LAYERS):
            if i in SKIP_FROM:
                x = x + self.skip_weights[SKIP_FROM[i]] * outs[SKIP_FROM[i]]
            h = lam[i, 0] * x
            for k in range(cfg.n_emb):     # left to right, term 0 first
                h = h + lam[i, k + 1] * x0[k]
            if i != NO_ATTN:               # attention gets h itself, no norm
                h = h + self._attn(i, h, ve[VALUE_EMBED_OF[i]] if i in VALUE_EMBED_OF else None,
                                   masks["L" if i in LONG_LAYERS else "S"], cos, sin)
            m = self.blocks[i].mlp
            h = h + F.linear(F.relu(F.linear(rms_norm(h), m.fc)).square(), m.proj)
            x = h
            outs.append(x)
        xf = rms_norm(x)
        if acts is not None:
            acts.update({f"x0.{k}": t for k, t in enumerate(x0)})
            acts.update({f"resid.{i}": t for i, t in enumerate(outs)}, final_norm=xf)

        def loss_of(rows, tgt):
            z = F.linear(rows, self.lm_head.to(rows.dtype))   # bf16 matmul in mixed mode
            if z.dtype == torch.bfloat16:
                z = z.float()
            lg = softcap(z, cfg.logit_cap)
            if acts is not None:
                acts["logits"] = lg
            return F.cross_entropy(lg, tgt.long())

        if not eval_chunks:
            return loss_of(xf, targets)
        c = T // 4
        return sum(loss_of(xf[j * c:(j + 1) * c], targets[j * c:(j + 1) * c]) for j in range(4)) / 4


# ---- optimizers (S-9) ---------------------------------------------------------------------
def newton_schulz5(G):
    """Quintic Newton-Schulz on the last two axes, batched over the leading ones, in G's dtype."""
    X = G
    tall = G.size(-2) > G.size(-1)
    if tall:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for a, b, c in NS_COEFFS:
        A = X @ X.mT
        X = a * X + (b * A + c * (A @ A)) @ X
    return X.mT if tall else X


def upper_bf16(x32):
    """The upper 16 bits of fp32 values as bf16 (truncation toward zero), exact."""
    return (x32.view(torch.int32) & -65536).view(torch.float32).to(torch.bfloat16)


class Muon:
    """S-9.3 on every block matrix. NS5 runs in `ns_dtype` (bf16 in mixed mode) on all the
    matrices of one shape at once: a qkvo tensor is 4 matrices, so the 15 qkvo, 16 fc and 16
    proj tensors make three batched NS5 calls. bf16 parameters are updated through an fp32
    master (S-10.1); the momentum buffer is fp32 (or the parameter dtype in f64 mode)."""

    def __init__(self, named: dict, cfg: Config, masters=None, ns_dtype=None, compile_ns=False):
        self.cfg, self.ns_dtype = cfg, ns_dtype
        self.ns = torch.compile(newton_schulz5, dynamic=False) if compile_ns else newton_schulz5
        self.groups = {}
        for name, p in named.items():
            master = None
            if p.dtype == torch.bfloat16:
                master = (masters or {}).get(name)
                master = (p.detach().float() if master is None else master.float()).contiguous()
            mult = cfg.mlp_wd_mul if ".mlp." in name else 1.0
            buf = torch.zeros_like(master if master is not None else p, memory_format=torch.contiguous_format)
            self.groups.setdefault(tuple(p.shape[-2:]), []).append((p, master, buf, mult))

    @torch.no_grad()
    def step(self, lr: float, mu: float):
        wd = self.cfg.muon_wd
        for (rows, cols), group in self.groups.items():
            blends = []
            for p, master, buf, mult in group:
                g = p.grad.to(buf.dtype)
                buf.mul_(mu).add_(g, alpha=1 - mu)
                blends.append((mu * buf + (1 - mu) * g).view(-1, rows, cols))   # Nesterov blend
            X = torch.cat(blends)
            U = self.ns(X.to(self.ns_dtype) if self.ns_dtype is not None else X)
            lr_eff = lr * math.sqrt(max(1.0, rows / cols))
            n = 0
            for p, master, buf, mult in group:
                w = master if master is not None else p
                cnt = w.numel() // (rows * cols)
                u = U[n:n + cnt].view(w.shape).to(w.dtype)
                n += cnt
                w.mul_(1 - lr * wd * mult).add_(u, alpha=-lr_eff)   # decay first, then the update
                if master is not None:
                    p.copy_(upper_bf16(w))


class Optimizers:
    """Adam groups head / embed / scalar (S-9.2, torch's Adam: its formula is the spec's,
    fused on CUDA) and Muon; step(s) applies the schedules of S-9.4 for step s."""

    def __init__(self, model: GPT, cfg: Config, compile_ns=False):
        P = model.spec_params()
        emb = [p for n, p in P.items() if n.startswith(("embed.", "value_embed."))]
        sca = [P["skip_weights"], P["lambdas"], P["sa_lambdas"]]
        groups = [dict(params=[P["lm_head"]], lr=cfg.lr_head, base_lr=cfg.lr_head),
                  dict(params=emb, lr=cfg.lr_embed, base_lr=cfg.lr_embed),
                  dict(params=sca, lr=cfg.lr_scalar, base_lr=cfg.lr_scalar)]
        kw = dict(betas=cfg.adam_betas, eps=cfg.adam_eps, weight_decay=0.0)
        self.adam = None
        if P["lm_head"].is_cuda:
            try:
                self.adam = torch.optim.Adam(groups, fused=True, **kw)
            except (TypeError, RuntimeError, ValueError):
                pass
        if self.adam is None:
            self.adam = torch.optim.Adam(groups, **kw)
        mats = {n: p for n, p in P.items() if n.startswith("blocks.")}
        self.muon = Muon(mats, cfg, model.take_masters(),
                         torch.bfloat16 if model.mixed else None, compile_ns)
        self.cfg = cfg

    def step(self, s: int):
        f = lr_factor(s, self.cfg)
        for g in self.adam.param_groups:
            g["lr"] = g["base_lr"] * f
        self.adam.step()
        self.muon.step(self.cfg.lr_muon * f, muon_momentum(s, self.cfg))
