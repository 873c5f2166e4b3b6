#!/usr/bin/env python3
"""Independent PyTorch (float64) reference for the moemu model, written from docs/model.md only.

Usage:
  reference.py DUMP_DIR                        compare a moemu dump with this model; prints ONE JSON object
  reference.py --make-fixture DIR [--seed N] [--perturb [NAME]]
                                               write a dump of a small random model computed by this model
                                               (--perturb: one gradient deliberately wrong)
  reference.py --self-test                     gradient checks, selection checks, fixture round trip

Exit codes: 0 ok, 1 self-test failure, 2 unreadable input (message on stderr).
Needs only python3 + torch (Debian python3-torch 1.13): safetensors is read/written by the tiny code below.
"""

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)


class DumpError(Exception):
    """Unreadable or inconsistent input: reported on stderr with exit code 2."""


# ----------------------------------------------------------------------------------------------------------
# safetensors: u64 LE header length, JSON header {name: {dtype, shape, data_offsets}}, raw little-endian bytes

ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
ST_NAMES = {v: k for k, v in ST_DTYPES.items()}
assert sys.byteorder == "little", "this reader assumes a little-endian host"


def read_safetensors(path):
    """-> (dict name -> tensor (native dtype, contiguous), metadata dict)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise DumpError(f"cannot read {path}: {exc}")
    if len(data) < 8:
        raise DumpError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise DumpError(f"{path}: header length {n} exceeds file size {len(data)}")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DumpError(f"{path}: bad JSON header: {exc}")
    if not isinstance(header, dict):
        raise DumpError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        try:
            dtype = ST_DTYPES[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DumpError(f"{path}: bad header entry for {name!r}: {exc}")
        numel = math.prod(shape)
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        if end - begin != nbytes or begin < 0 or base + end > len(data):
            raise DumpError(f"{path}: {name!r}: data_offsets {begin},{end} do not fit dtype/shape/file")
        if numel == 0:
            out[name] = torch.empty(shape, dtype=dtype)
        else:
            out[name] = torch.frombuffer(bytearray(data[base + begin:base + end]), dtype=dtype).reshape(shape)
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> tensor (dtype in ST_DTYPES). Header padded with spaces to 8 bytes."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        raw = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(hj)))
        fh.write(hj)
        for b in blobs:
            fh.write(b)


# ----------------------------------------------------------------------------------------------------------
# config (the "model" object of config.json, camelCase names as in docs/model.md)

@dataclass
class Config:
    vocabSize: int
    hidden: int
    heads: int
    layers: int
    denseLayers: int
    ffnHidden: int = 0
    experts: int = 0
    sharedExperts: int = 0
    expertHidden: int = 0
    topK: int = 0
    groups: int = 1
    topGroups: int = 1
    routeScale: float = 2.5
    seqLen: int = 0
    ropeTheta: float = 10000.0
    normEps: float = 1e-6
    mtpDepth: int = 0
    mtpWeight: float = 0.0
    balanceWeight: float = 0.0

    @property
    def has_moe(self):
        return self.layers > self.denseLayers

    @property
    def head_dim(self):
        return self.hidden // self.heads

    @staticmethod
    def from_json(model):
        """Every key this model actually needs must be present (missing ones -> DumpError naming them)."""
        if not isinstance(model, dict):
            raise DumpError("config.json: 'model' is missing or not an object")
        need = ["vocabSize", "hidden", "heads", "layers", "denseLayers", "seqLen", "ropeTheta", "normEps", "mtpDepth"]
        layers, dense, mtp = model.get("layers"), model.get("denseLayers"), model.get("mtpDepth")
        has_moe = isinstance(layers, int) and isinstance(dense, int) and layers > dense
        uses_dense = (isinstance(dense, int) and dense > 0) or (not has_moe and isinstance(mtp, int) and mtp > 0)
        if uses_dense:
            need += ["ffnHidden"]
        if has_moe:
            need += ["experts", "sharedExperts", "expertHidden", "topK", "groups", "topGroups", "routeScale",
                     "balanceWeight"]
        if isinstance(mtp, int) and mtp > 0:
            need += ["mtpWeight"]
        missing = [k for k in need if k not in model]
        if missing:
            raise DumpError("config.json: model key(s) missing: " + ", ".join(missing))
        ints = {"vocabSize", "hidden", "heads", "layers", "denseLayers", "ffnHidden", "experts", "sharedExperts",
                "expertHidden", "topK", "groups", "topGroups", "seqLen", "mtpDepth"}
        kw = {}
        for k in need:
            v = model[k]
            if k in ints:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 0:
                    raise DumpError(f"config.json: model.{k} = {v!r} is not a non-negative integer")
                kw[k] = int(v)
            else:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise DumpError(f"config.json: model.{k} = {v!r} is not a number")
                kw[k] = float(v)
        cfg = Config(**kw)
        cfg.validate()
        return cfg

    def validate(self):
        def bad(msg):
            raise DumpError("config.json: " + msg)
        if self.heads < 1 or self.hidden % self.heads:
            bad(f"hidden {self.hidden} not divisible by heads {self.heads}")
        if self.head_dim % 2:
            bad(f"head dim {self.head_dim} is odd (RoPE needs pairs)")
        if self.denseLayers > self.layers:
            bad(f"denseLayers {self.denseLayers} > layers {self.layers}")
        if self.mtpDepth not in (0, 1):
            bad(f"mtpDepth {self.mtpDepth} not supported (docs/model.md defines depth 0 or 1)")
        if self.seqLen < 1:
            bad("seqLen must be >= 1")
        if self.has_moe:
            E, G, M, K = self.experts, self.groups, self.topGroups, self.topK
            if E < 1 or G < 1 or E % G:
                bad(f"experts {E} not divisible by groups {G}")
            if not 1 <= M <= G:
                bad(f"topGroups {M} not in 1..groups {G}")
            if not 1 <= K <= M * (E // G):
                bad(f"topK {K} not in 1..topGroups*experts/groups = {M * (E // G)}")


# ----------------------------------------------------------------------------------------------------------
# model

def linear(x, w):
    """x [..., in], w [out, in] -> [..., out]"""
    return x @ w.t()


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):  # [..., dim]
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Linear(nn.Module):
    """Bias-free linear, weight [out, in]."""

    def __init__(self, din, dout):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dout, din))

    def forward(self, x):
        return linear(x, self.weight)


def rope_tables(T, hd, theta):
    """-> cos, sin [T, hd/2]; positions 0..T-1, freq_j = theta ** (-2j/hd) in float64."""
    freqs = [theta ** (-2 * j / hd) for j in range(hd // 2)]
    ang = [[t * f for f in freqs] for t in range(T)]
    cos = torch.tensor([[math.cos(a) for a in row] for row in ang])
    sin = torch.tensor([[math.sin(a) for a in row] for row in ang])
    return cos, sin


def apply_rope(x, cos, sin):
    """x [B, T, nh, hd]; rotates interleaved pairs (x[2j], x[2j+1]) by angle t*freq_j."""
    x0, x1 = x[..., 0::2], x[..., 1::2]              # [B, T, nh, hd/2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    y0 = x0 * c - x1 * s
    y1 = x0 * s + x1 * c
    return torch.stack((y0, y1), dim=-1).flatten(-2)  # [B, T, nh, hd], pairs interleaved again


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg.hidden
        self.nh, self.hd = cfg.heads, cfg.head_dim
        self.wq, self.wk, self.wv, self.wo = Linear(d, d), Linear(d, d), Linear(d, d), Linear(d, d)

    def forward(self, x, rope):  # x [B, T, d]
        B, T, d = x.shape
        q = self.wq(x).view(B, T, self.nh, self.hd)
        k = self.wk(x).view(B, T, self.nh, self.hd)
        v = self.wv(x).view(B, T, self.nh, self.hd)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))                 # [B, nh, T, hd]
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.hd)            # [B, nh, T, T]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)              # u > t
        p = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        o = (p @ v).transpose(1, 2).reshape(B, T, d)                     # heads concatenated
        return self.wo(o)


class FFN(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x); w1, w3 [hidden, d], w2 [d, hidden]."""

    def __init__(self, d, hidden):
        super().__init__()
        self.w1, self.w3, self.w2 = Linear(d, hidden), Linear(d, hidden), Linear(hidden, d)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def stable_topk_indices(x, k):
    """Indices of the k largest entries along the last dim, ties -> lower index (torch.topk does not promise that)."""
    return torch.sort(-x, dim=-1, stable=True).indices[..., :k]


def select_experts(sel, K, G, M):
    """Group-limited top-K. sel [N, E] (biased scores, no grad) -> (idx [N, K] long, diagnostics dict)."""
    N, E = sel.shape
    per = E // G
    allowed = sel
    group_margin = None
    if M < G:
        gk = max(1, K // M)
        top_in_group = -torch.sort(-sel.view(N, G, per), dim=-1, stable=True).values[..., :gk]  # [N, G, gk] desc
        gscore = top_in_group.sum(-1)                                                       # [N, G]
        keep = stable_topk_indices(gscore, M)                                                # [N, M]
        keep_mask = torch.zeros(N, G, dtype=torch.bool).scatter(1, keep, True)
        allowed = sel.masked_fill(~keep_mask.repeat_interleave(per, dim=1), float("-inf"))  # [N, E]
        gs = -torch.sort(-gscore, dim=-1, stable=True).values
        group_margin = gs[:, M - 1] - gs[:, M]                                               # [N]
    idx = stable_topk_indices(allowed, K)                                                    # [N, K]
    al = -torch.sort(-allowed, dim=-1, stable=True).values
    expert_margin = al[:, K - 1] - al[:, K] if K < E else torch.full((N,), float("inf"))     # [N] (inf: no rival)
    return idx, {"expert_margin": expert_margin, "group_margin": group_margin}


def select_experts_naive(row, K, G, M):
    """Same rule, one token, pure Python (used to double-check select_experts). row: list of E floats."""
    E = len(row)
    per = E // G
    allowed = list(range(E))
    if M < G:
        gk = max(1, K // M)
        score = [sum(sorted(row[g * per:(g + 1) * per], reverse=True)[:gk]) for g in range(G)]
        kept = sorted(sorted(range(G), key=lambda g: (-score[g], g))[:M])
        allowed = [e for g in kept for e in range(g * per, (g + 1) * per)]
    return sorted(allowed, key=lambda e: (-row[e], e))[:K]


class Gate(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.K, self.G, self.M, self.scale = cfg.topK, cfg.groups, cfg.topGroups, cfg.routeScale
        self.weight = nn.Parameter(torch.zeros(cfg.experts, cfg.hidden))   # [E, d]
        self.register_buffer("bias", torch.zeros(cfg.experts))              # [E], selection only, no gradient

    def forward(self, u, fixed_idx=None):  # u [N, d]
        s = torch.sigmoid(linear(u, self.weight))                            # [N, E] affinities
        with torch.no_grad():
            sel = s.detach() + self.bias                                     # [N, E] used ONLY to choose
            idx, diag = select_experts(sel, self.K, self.G, self.M)
        if fixed_idx is not None:
            idx = fixed_idx
        s_sel = s.gather(1, idx)                                             # [N, K]
        g = self.scale * s_sel / s_sel.sum(-1, keepdim=True)                 # [N, K] gate weights, unbiased s
        return s, idx, g, sel, diag


def balance_term(s, idx, B, T, K):
    """Σ_b Σ_i f_i P_i for one MoE layer (α and /B applied by the model). s [B*T, E] (grad), idx [B*T, K]."""
    E = s.shape[1]
    with torch.no_grad():
        chosen = torch.zeros_like(s).scatter(1, idx, 1.0)                    # [N, E] 1[i ∈ S_t]
        f = (E / (K * T)) * chosen.view(B, T, E).sum(1)                     # [B, E]
    P = (s / s.sum(-1, keepdim=True)).view(B, T, E).sum(1) / T               # [B, E]
    return (f * P).sum()


class MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.K = cfg.topK
        self.gate = Gate(cfg)
        if cfg.sharedExperts > 0:
            self.shared = FFN(cfg.hidden, cfg.sharedExperts * cfg.expertHidden)
        self.experts = nn.ModuleList(FFN(cfg.hidden, cfg.expertHidden) for _ in range(cfg.experts))
        self.fixed_idx = None     # set by the gradient checks to freeze the selection
        self.balance = None       # Σ_b Σ_i f_i P_i of the last forward
        self.route = None         # diagnostics of the last forward

    def forward(self, u):  # u [B, T, d] (normed)
        B, T, d = u.shape
        x = u.reshape(B * T, d)                                              # [N, d]
        s, idx, g, sel, diag = self.gate(x, self.fixed_idx)
        y = self.shared(x) if hasattr(self, "shared") else torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            rows, slot = (idx == e).nonzero(as_tuple=True)                  # tokens that chose expert e
            if rows.numel():
                y = y.index_add(0, rows, g[rows, slot].unsqueeze(1) * expert(x[rows]))
        self.balance = balance_term(s, idx, B, T, self.K)
        self.route = {"sel": sel, "idx": idx, "diag": diag, "s": s.detach()}
        return y.view(B, T, d)


class Block(nn.Module):
    def __init__(self, cfg, moe):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden, cfg.normEps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.hidden, cfg.normEps)
        self.ffn = MoE(cfg) if moe else FFN(cfg.hidden, cfg.ffnHidden)

    def forward(self, h, rope):  # [B, T, d]
        h = h + self.attn(self.attn_norm(h), rope)
        return h + self.ffn(self.ffn_norm(h))


class MTP(nn.Module):
    """Depth-1 multi-token prediction module (shares embedding and head with the main model)."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg.hidden
        self.hnorm, self.enorm = RMSNorm(d, cfg.normEps), RMSNorm(d, cfg.normEps)
        self.proj = Linear(2 * d, d)                                         # weight [d, 2d]
        self.block = Block(cfg, moe=cfg.has_moe)
        self.norm = RMSNorm(d, cfg.normEps)

    def forward(self, h, e, rope):  # h, e [B, T, d]
        c = torch.cat((self.hnorm(h), self.enorm(e)), dim=-1)               # [B, T, 2d]
        return self.norm(self.block(self.proj(c), rope))                     # normed m [B, T, d]


def cross_entropy_sum(z, y):
    """Σ_tokens logsumexp(z) − z[y]; z [B, T, V], y [B, T]."""
    return (torch.logsumexp(z, dim=-1) - z.gather(-1, y.unsqueeze(-1)).squeeze(-1)).sum()


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Module()
        self.embed.weight = nn.Parameter(torch.zeros(cfg.vocabSize, cfg.hidden))   # [V, d]
        self.layers = nn.ModuleList(Block(cfg, moe=i >= cfg.denseLayers) for i in range(cfg.layers))
        self.norm = RMSNorm(cfg.hidden, cfg.normEps)
        self.head = Linear(cfg.hidden, cfg.vocabSize)                               # [V, d]
        if cfg.mtpDepth:
            self.mtp = nn.ModuleList([MTP(cfg)])

    def moe_layers(self):
        """name prefix -> MoE module, MTP block included."""
        return {name: m for name, m in self.named_modules() if isinstance(m, MoE)}

    def forward(self, tokens):  # tokens [B, >= T+1+mtpDepth] long
        cfg, T = self.cfg, self.cfg.seqLen
        B = tokens.shape[0]
        rope = rope_tables(T, cfg.head_dim, cfg.ropeTheta)
        h = self.embed.weight[tokens[:, 0:T]]                                       # [B, T, d]
        for block in self.layers:
            h = block(h, rope)
        logits = self.head(self.norm(h))                                            # [B, T, V]
        out = {"logits": logits}
        out["loss_main"] = cross_entropy_sum(logits, tokens[:, 1:T + 1]) / (B * T)
        if cfg.mtpDepth:
            e = self.embed.weight[tokens[:, 1:T + 1]]                               # [B, T, d]
            out["logits_mtp"] = self.head(self.mtp[0](h, e, rope))                  # [B, T, V]
            out["loss_mtp"] = cross_entropy_sum(out["logits_mtp"], tokens[:, 2:T + 2]) / (B * T)
        else:
            out["loss_mtp"] = torch.zeros(())
        bal = [m.balance for m in self.moe_layers().values()]
        out["loss_balance"] = cfg.balanceWeight * sum(bal) / B if bal else torch.zeros(())
        out["loss"] = out["loss_main"] + cfg.mtpWeight * out["loss_mtp"] + out["loss_balance"]
        return out


# ----------------------------------------------------------------------------------------------------------
# comparison

def crit(x, y):
    """1 − 2Σxy/Σ(x²+y²) in float64; 0 when both are all-zero."""
    x, y = x.detach().double().flatten(), y.detach().double().flatten()
    den = (x * x + y * y).sum().item()
    if den == 0.0:
        return 0.0
    return 1.0 - 2.0 * (x * y).sum().item() / den


def json_float(v):
    """JSON has no NaN/Infinity: non-finite values become strings (which compare false in JS)."""
    v = float(v)
    return v if math.isfinite(v) else str(v)


def routing_report(model, cfg):
    rep = {}
    for name, m in model.moe_layers().items():
        r = m.route
        sel, idx, diag = r["sel"], r["idx"], r["diag"]
        N, E = sel.shape
        rows = sel.tolist()
        mism = sum(sorted(select_experts_naive(row, cfg.topK, cfg.groups, cfg.topGroups)) != sorted(ix)
                   for row, ix in zip(rows, idx.tolist()))
        plain = stable_topk_indices(sel, cfg.topK).sort(-1).values            # no group limit
        unbiased, _ = select_experts(r["s"], cfg.topK, cfg.groups, cfg.topGroups)
        mine = idx.sort(-1).values
        em, gm = diag["expert_margin"], diag["group_margin"]
        rep[name] = {
            "tokens": N,
            "selections_checked": N * cfg.topK,
            "naive_mismatches": mism,
            "expert_counts": torch.zeros(E).index_add(0, idx.flatten(), torch.ones(idx.numel())).long().tolist(),
            "min_expert_margin": json_float(em.min().item()),
            "min_group_margin": json_float(gm.min().item()) if gm is not None else None,
            "tokens_changed_by_group_limit": int((plain != mine).any(-1).sum()),
            "tokens_changed_by_bias": int((unbiased.sort(-1).values != mine).any(-1).sum()),
        }
    return rep


def load_dump(d):
    """-> cfg, config json, weights, tokens (long), outputs, grads (float64 where float)."""
    path = os.path.join(d, "config.json")
    try:
        with open(path) as fh:
            conf = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise DumpError(f"cannot read {path}: {exc}")
    if not isinstance(conf, dict):
        raise DumpError(f"{path}: not a JSON object")
    cfg = Config.from_json(conf.get("model"))
    weights, _ = read_safetensors(os.path.join(d, "weights.safetensors"))
    batch, _ = read_safetensors(os.path.join(d, "batch.safetensors"))
    outputs, _ = read_safetensors(os.path.join(d, "outputs.safetensors"))
    grads, _ = read_safetensors(os.path.join(d, "grads.safetensors"))
    if "tokens" not in batch:
        raise DumpError("batch.safetensors: no 'tokens' tensor")
    tokens = batch["tokens"]
    if tokens.dtype.is_floating_point or tokens.dtype == torch.bool or tokens.dim() != 2:
        raise DumpError(f"batch.safetensors: tokens must be an integer [B, T+2] tensor, got {tokens.dtype} "
                        f"{list(tokens.shape)}")
    tokens = tokens.long()
    need = cfg.seqLen + 1 + cfg.mtpDepth
    if tokens.shape[1] < need or tokens.shape[0] < 1:
        raise DumpError(f"batch.safetensors: tokens {list(tokens.shape)} too short (need [B>=1, >= {need}])")
    if tokens.min() < 0 or tokens.max() >= cfg.vocabSize:
        raise DumpError(f"batch.safetensors: token ids outside [0, {cfg.vocabSize})")
    f64 = lambda ts: {k: (v.double() if v.dtype.is_floating_point else v) for k, v in ts.items()}
    return cfg, conf, f64(weights), tokens, f64(outputs), f64(grads)


def build_model(cfg, weights):
    """Model with the dump's weights; missing/misshaped weights -> DumpError; returns (model, extra names)."""
    model = Model(cfg)
    state = model.state_dict()
    absent = [k for k in state if k not in weights]
    if absent:
        raise DumpError(f"weights.safetensors: missing {len(absent)} tensor(s): " + ", ".join(absent[:10]))
    for k, v in state.items():
        if list(weights[k].shape) != list(v.shape):
            raise DumpError(f"weights.safetensors: {k} has shape {list(weights[k].shape)}, expected {list(v.shape)}")
        if not weights[k].dtype.is_floating_point:
            raise DumpError(f"weights.safetensors: {k} is not a float tensor")
    model.load_state_dict({k: weights[k] for k in state})
    return model, sorted(k for k in weights if k not in state)


def compare(dump_dir):
    """The normal mode: the JSON-able comparison of a dump with this model."""
    cfg, conf, weights, tokens, outputs, grads = load_dump(dump_dir)
    model, extra_weights = build_model(cfg, weights)
    out = model(tokens)
    out["loss"].backward()

    missing, warnings, shape_mismatch = [], [], []
    if conf.get("precision", "fp64") != "fp64":
        warnings.append(f"precision is {conf.get('precision')!r}: moemu is not float64, expect larger crit")
    T = cfg.seqLen
    if tokens.shape[1] != T + 2:
        warnings.append(f"tokens have {tokens.shape[1]} columns, docs say T+2 = {T + 2}")
    bs = (conf.get("training") or {}).get("batchSize")
    if bs is not None and bs != tokens.shape[0]:
        warnings.append(f"training.batchSize {bs} != tokens rows {tokens.shape[0]} (B taken from tokens)")
    missing += [f"weights:{k}" for k in extra_weights]

    losses = {}
    for k in ("loss", "loss_main", "loss_mtp", "loss_balance"):
        mine = json_float(out[k].item())
        if k in outputs:
            losses[k] = [json_float(outputs[k].flatten()[0].item()) if outputs[k].numel() == 1 else None, mine]
            if outputs[k].numel() != 1:
                shape_mismatch.append(k)
        else:
            losses[k] = [None, mine]
            missing.append(k)

    tensors = {}

    def put(key, theirs, mine):
        if list(theirs.shape) != list(mine.shape):
            shape_mismatch.append(f"{key}: moemu {list(theirs.shape)} vs torch {list(mine.shape)}")
            tensors[key] = 2.0                                          # the largest possible crit
            return
        c = crit(theirs, mine)
        tensors[key] = c if math.isfinite(c) else 2.0

    for k in ("logits", "logits_mtp"):
        if k in outputs and k in out:
            put(k, outputs[k], out[k])
        elif k in outputs or k in out:
            missing.append(k)
    for k in outputs:
        if k not in ("logits", "logits_mtp", "loss", "loss_main", "loss_mtp", "loss_balance"):
            missing.append(k)

    params = dict(model.named_parameters())
    for k in sorted(set(params) | set(grads)):
        if k in params and k in grads:
            g = params[k].grad if params[k].grad is not None else torch.zeros_like(params[k])
            put("grad:" + k, grads[k], g)
        else:
            missing.append("grad:" + k)

    return {
        "ok": True,
        "loss": losses,
        "tensors": tensors,
        "routing": routing_report(model, cfg),
        "missing": missing,
        "shape_mismatch": shape_mismatch,
        "warnings": warnings,
        "info": {"B": int(tokens.shape[0]), "T": T, "precision": conf.get("precision"),
                 "parameters": len(params), "torch": torch.__version__},
    }


# ----------------------------------------------------------------------------------------------------------
# fixture: a dump of a small random model computed by this model

# topK 4 of 16 experts in 4 groups, 2 groups kept: gk = 2 as in DeepSeek-V3 (8 of 256, 4 of 8 groups), and the
# group limit changes selections (with gk = 1 and K <= M it never could: the top-K lie in the top-K groups).
FIXTURE_MODEL = dict(vocabSize=256, hidden=16, heads=2, layers=3, denseLayers=1, ffnHidden=24, experts=16,
                     sharedExperts=1, expertHidden=8, topK=4, groups=4, topGroups=2, routeScale=2.5, seqLen=8,
                     ropeTheta=10000.0, normEps=1e-6, mtpDepth=1, mtpWeight=0.3, balanceWeight=0.01)


def randomize(model, seed, std=0.2, bias_std=0.05, norm_jitter=0.1):
    """Matrices ~ N(0, std²); norm weights 1 + jitter (to exercise them); gate biases ~ N(0, bias_std²)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("gate.bias"):
                t.copy_(bias_std * torch.randn(t.shape, generator=gen))
            elif t.dim() == 1:
                t.copy_(1 + norm_jitter * torch.randn(t.shape, generator=gen))
            else:
                t.copy_(std * torch.randn(t.shape, generator=gen))


def make_fixture(d, seed=0, perturb=None, model_cfg=None, batch=3, dtype=torch.float64):
    cfg = Config(**(model_cfg or FIXTURE_MODEL))
    cfg.validate()
    model = Model(cfg)
    randomize(model, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, min(256, cfg.vocabSize), (batch, cfg.seqLen + 2), generator=gen)
    out = model(tokens)
    out["loss"].backward()
    grads = grads_of(model)
    if perturb:
        if perturb not in grads:
            raise DumpError(f"--perturb: no parameter {perturb!r}")
        g = grads[perturb]
        noise = torch.randn(g.shape, generator=torch.Generator().manual_seed(seed + 2))
        grads[perturb] = g + 0.1 * g.norm() / math.sqrt(g.numel()) * noise  # ~10% error
    os.makedirs(d, exist_ok=True)
    conf = {"format": "moemu-dump/1", "model": asdict(cfg),
            "training": {"batchSize": batch, "microBatches": 1},
            "precision": "fp64" if dtype == torch.float64 else "fp32", "seed": seed}
    with open(os.path.join(d, "config.json"), "w") as fh:
        json.dump(conf, fh, indent=2)
    write_safetensors(os.path.join(d, "weights.safetensors"), {k: v.to(dtype) for k, v in model.state_dict().items()})
    write_safetensors(os.path.join(d, "batch.safetensors"), {"tokens": tokens.int()})
    outs = {k: out[k].detach().to(dtype) for k in ("logits", "logits_mtp") if k in out}
    outs.update({k: out[k].detach().reshape(()).to(dtype) for k in ("loss", "loss_main", "loss_mtp", "loss_balance")})
    write_safetensors(os.path.join(d, "outputs.safetensors"), outs)
    write_safetensors(os.path.join(d, "grads.safetensors"), {k: v.to(dtype) for k, v in grads.items()})
    return model, out


# ----------------------------------------------------------------------------------------------------------
# self-test

def naive_forward(P, cfg, tokens):
    """A deliberately different (loop-per-sequence/token/head, pure-Python routing) forward of the same model.
    P: name -> tensor. Returns dict of logits, logits_mtp, losses."""
    T, d, nh, hd, eps = cfg.seqLen, cfg.hidden, cfg.heads, cfg.head_dim, cfg.normEps
    B = tokens.shape[0]
    tok = tokens.tolist()

    def lin(x, name):
        return torch.mv(P[name], x)

    def rms(x, name):
        return x * (1.0 / torch.sqrt(torch.dot(x, x) / x.numel() + eps)) * P[name]

    def swiglu(x, pre):
        a = lin(x, pre + "w1.weight")
        return lin(a / (1 + torch.exp(-a)) * lin(x, pre + "w3.weight"), pre + "w2.weight")

    def rot(v, t):
        out = []
        for j in range(hd // 2):
            a = t * cfg.ropeTheta ** (-2 * j / hd)
            out += [v[2 * j] * math.cos(a) - v[2 * j + 1] * math.sin(a), v[2 * j] * math.sin(a) + v[2 * j + 1] * math.cos(a)]
        return torch.stack(out)

    def attention(xs, pre):
        q = [lin(x, pre + "wq.weight") for x in xs]
        k = [lin(x, pre + "wk.weight") for x in xs]
        v = [lin(x, pre + "wv.weight") for x in xs]
        outs = []
        for t in range(T):
            heads = []
            for hh in range(nh):
                sl = slice(hh * hd, (hh + 1) * hd)
                qt = rot(q[t][sl], t)
                sc = torch.stack([torch.dot(qt, rot(k[u][sl], u)) / math.sqrt(hd) for u in range(t + 1)])
                w = torch.exp(sc - sc.max())
                w = w / w.sum()
                heads.append(sum(w[u] * v[u][sl] for u in range(t + 1)))
            outs.append(lin(torch.cat(heads), pre + "wo.weight"))
        return outs

    bal = [torch.zeros(())]

    def moe(us, pre):
        E, K = cfg.experts, cfg.topK
        counts = [0] * E
        Psum = torch.zeros(E)
        ys = []
        for u in us:
            s = 1 / (1 + torch.exp(-lin(u, pre + "gate.weight")))
            chosen = select_experts_naive((s.detach() + P[pre + "gate.bias"]).tolist(), K, cfg.groups, cfg.topGroups)
            denom = sum(s[j] for j in chosen)
            y = swiglu(u, pre + "shared.") if cfg.sharedExperts else torch.zeros(d)
            for i in chosen:
                y = y + cfg.routeScale * s[i] / denom * swiglu(u, pre + f"experts.{i}.")
                counts[i] += 1
            Psum = Psum + s / s.sum()
            ys.append(y)
        bal[0] = bal[0] + sum((E / (K * T)) * counts[i] * Psum[i] / T for i in range(E))
        return ys

    def block(hs, pre, is_moe):
        a = attention([rms(h, pre + "attn_norm.weight") for h in hs], pre + "attn.")
        hs = [h + x for h, x in zip(hs, a)]
        us = [rms(h, pre + "ffn_norm.weight") for h in hs]
        f = moe(us, pre + "ffn.") if is_moe else [swiglu(u, pre + "ffn.") for u in us]
        return [h + x for h, x in zip(hs, f)]

    def ce(z, y):
        m = z.max()
        return m + torch.log(torch.exp(z - m).sum()) - z[y]

    logits, logits_mtp, lm, lt = [], [], torch.zeros(()), torch.zeros(())
    for b in range(B):
        hs = [P["embed.weight"][tok[b][t]] for t in range(T)]
        for i in range(cfg.layers):
            hs = block(hs, f"layers.{i}.", i >= cfg.denseLayers)
        zs = [lin(rms(h, "norm.weight"), "head.weight") for h in hs]
        lm = lm + sum(ce(z, tok[b][t + 1]) for t, z in enumerate(zs))
        logits.append(torch.stack(zs))
        if cfg.mtpDepth:
            cs = [torch.cat([rms(h, "mtp.0.hnorm.weight"), rms(P["embed.weight"][tok[b][t + 1]], "mtp.0.enorm.weight")])
                  for t, h in enumerate(hs)]
            ms = block([lin(c, "mtp.0.proj.weight") for c in cs], "mtp.0.block.", cfg.has_moe)
            zs = [lin(rms(m, "mtp.0.norm.weight"), "head.weight") for m in ms]
            lt = lt + sum(ce(z, tok[b][t + 2]) for t, z in enumerate(zs))
            logits_mtp.append(torch.stack(zs))
    out = {"logits": torch.stack(logits), "loss_main": lm / (B * T), "loss_mtp": lt / (B * T),
           "loss_balance": cfg.balanceWeight * bal[0] / B}
    if cfg.mtpDepth:
        out["logits_mtp"] = torch.stack(logits_mtp)
    out["loss"] = out["loss_main"] + cfg.mtpWeight * out["loss_mtp"] + out["loss_balance"]
    return out


class SelfTest:
    def __init__(self):
        self.failures = 0

    def check(self, name, ok, detail=""):
        self.failures += not ok
        print(f"  [{'ok' if ok else 'FAIL'}] {name}" + (f"  ({detail})" if detail else ""), flush=True)


def small_cfg(**kw):
    base = dict(vocabSize=256, hidden=8, heads=2, layers=3, denseLayers=1, ffnHidden=12, experts=8, sharedExperts=1,
                expertHidden=4, topK=3, groups=4, topGroups=2, routeScale=2.5, seqLen=5, ropeTheta=10000.0,
                normEps=1e-6, mtpDepth=1, mtpWeight=0.3, balanceWeight=0.01)
    base.update(kw)
    cfg = Config(**base)
    cfg.validate()
    return cfg


def test_safetensors(st, tmp):
    ts = {"a": torch.randn(3, 4), "b": torch.randn(5).float(), "c": torch.arange(6, dtype=torch.int32).view(2, 3),
          "s": torch.tensor(1.25), "z": torch.zeros(0, 4)}
    p = os.path.join(tmp, "rt.safetensors")
    write_safetensors(p, ts, {"k": "v"})
    back, meta = read_safetensors(p)
    ok = meta == {"k": "v"} and set(back) == set(ts) and all(
        back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v) for k, v in ts.items())
    with open(p, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
    st.check("safetensors round trip (F64, F32, I32, scalar, empty; 8-byte aligned header)", ok and n % 8 == 0)


def test_selection(st):
    gen = torch.Generator().manual_seed(7)
    bad, total = 0, 0
    for E, G, M, K in [(8, 4, 2, 2), (8, 4, 2, 3), (12, 3, 2, 4), (16, 8, 3, 6), (8, 4, 4, 3), (8, 1, 1, 2),
                       (6, 6, 2, 1), (16, 4, 1, 4)]:
        for ties in (False, True):
            sel = torch.randn(200, E, generator=gen)
            if ties:   # values on a coarse grid so that ties (experts and groups) are frequent
                sel = torch.randint(0, 3, (200, E), generator=gen).double()
            idx, _ = select_experts(sel, K, G, M)
            for row, ix in zip(sel.tolist(), idx.tolist()):
                total += 1
                bad += select_experts_naive(row, K, G, M) != ix
    st.check("vectorised group-limited top-K == pure-Python rule (with many ties)", bad == 0, f"{total} tokens, {bad} differ")
    # hand-made cases: E=8, G=4 (pairs), M=2, K=2 -> gk=1
    cases = [
        ([0.0] * 8, [0, 1]),                                   # all tied: lowest groups, lowest experts
        ([0.1, 0.9, 0.5, 0.5, 0.8, 0.2, 0.7, 0.7], [1, 4]),    # group maxima .9 .5 .8 .7 -> groups 0, 2
        ([0.9, 0.9, 0.1, 0.0, 0.95, 0.0, 0.0, 0.0], [4, 0]),   # group 0 max .9, group 2 .95; top2 = 4, then tie 0/1 -> 0
        ([0.0, 0.6, 0.6, 0.0, 0.6, 0.0, 0.0, 0.6], [1, 2]),    # all group scores .6: groups 0, 1 kept
    ]
    ok = all(select_experts(torch.tensor([row]), 2, 4, 2)[0][0].tolist() == want for row, want in cases)
    # gk = 2 case: E=8, G=2 (4 each), M=1, K=2: group score = top-2 sum
    row = [1.0, 0.0, 0.0, 0.0, 0.9, 0.8, 0.0, 0.0]  # group0 1.0, group1 1.7 -> experts 4, 5
    ok = ok and select_experts(torch.tensor([row]), 2, 2, 1)[0][0].tolist() == [4, 5]
    st.check("hand-made selection cases (ties -> lower index, gk = floor(K/M) sum)", ok)


def grads_of(model):
    return {k: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for k, p in model.named_parameters()}


def test_naive(st):
    configs = [
        ("K3 G4 M2 (gk 1)", small_cfg()),
        ("K4 E12 G3 M2 (gk 2), no shared", small_cfg(experts=12, groups=3, topK=4, sharedExperts=0, layers=2)),
        ("M = G, S=2", small_cfg(groups=2, topGroups=2, sharedExperts=2)),
        ("all dense, dense MTP", small_cfg(layers=2, denseLayers=2)),
        ("no MTP", small_cfg(mtpDepth=0, layers=2, denseLayers=0)),
    ]
    for label, cfg in configs:
        model = Model(cfg)
        randomize(model, 11)
        tokens = torch.randint(0, 256, (2, cfg.seqLen + 2), generator=torch.Generator().manual_seed(3))
        out = model(tokens)
        out["loss"].backward()
        mine = grads_of(model)
        P = {k: v.detach().clone().requires_grad_(k in mine) for k, v in model.state_dict().items()}
        ref = naive_forward(P, cfg, tokens)
        ref["loss"].backward()
        worst = 0.0
        for k in ("logits", "logits_mtp"):
            if k in out:
                worst = max(worst, crit(out[k], ref[k]))
        loss_err = max(abs(out[k].item() - ref[k].item()) for k in ("loss", "loss_main", "loss_mtp", "loss_balance"))
        gworst, gname = 0.0, ""
        for k, g in mine.items():
            c = crit(g, P[k].grad if P[k].grad is not None else torch.zeros_like(g))
            if abs(c) > abs(gworst):
                gworst, gname = c, k
        bal = out["loss_balance"].item()
        ok = abs(worst) < 1e-12 and loss_err < 1e-13 and abs(gworst) < 1e-12
        st.check(f"batched model == naive loop model, values and autograd grads [{label}]", ok,
                 f"logits crit {worst:.1e}, |Δloss| {loss_err:.1e}, worst grad crit {gworst:.1e} {gname}, L_bal {bal:.3e}")


def freeze_routing(model, tokens):
    """Run once and pin every MoE layer's selection (so finite differences see a smooth function)."""
    with torch.no_grad():
        model(tokens)
    for m in model.moe_layers().values():
        m.fixed_idx = m.route["idx"].clone()


def gradcheck(fn, inputs, **kw):
    return torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-8, rtol=1e-6, raise_exception=False, **kw)


def test_gradcheck(st):
    from torch.nn.utils.stateless import functional_call
    gen = torch.Generator().manual_seed(5)
    cfg = small_cfg(seqLen=4)
    rnd = lambda *s: torch.randn(*s, generator=gen).requires_grad_()

    norm = RMSNorm(8, 1e-6)
    ok = gradcheck(lambda x, w: functional_call(norm, {"weight": w}, (x,)), (rnd(3, 8), rnd(8)))
    st.check("gradcheck rmsnorm (x, weight)", ok)

    att = Attention(cfg)
    rope = rope_tables(cfg.seqLen, cfg.head_dim, cfg.ropeTheta)
    ok = gradcheck(lambda x, wq, wk, wv, wo: functional_call(att, {"wq.weight": wq, "wk.weight": wk, "wv.weight": wv,
                                                                 "wo.weight": wo}, (x, rope)),
                   (rnd(2, 4, 8), rnd(8, 8), rnd(8, 8), rnd(8, 8), rnd(8, 8)))
    st.check("gradcheck causal RoPE attention (x, wq, wk, wv, wo)", ok)

    moe = MoE(cfg)
    randomize(moe, 9)
    u0 = rnd(2, 4, 8)
    with torch.no_grad():
        moe(u0)
    moe.fixed_idx = moe.route["idx"].clone()
    names = ["gate.weight", "experts.3.w1.weight", "experts.5.w2.weight", "shared.w3.weight"]
    ws = [dict(moe.named_parameters())[n].detach().clone().requires_grad_() for n in names]

    def moe_fn(u, *w):
        y = functional_call(moe, dict(zip(names, w)), (u,))
        return y, moe.balance
    ok = gradcheck(moe_fn, (u0, *ws))
    st.check("gradcheck MoE layer output + balance term, fixed selection (u, gate, experts, shared)", ok)

    logits = rnd(8, 8)
    idx, _ = select_experts(torch.sigmoid(logits).detach(), 2, 4, 2)
    ok = gradcheck(lambda z: balance_term(torch.sigmoid(z), idx, 2, 4, 2), (logits,))
    st.check("gradcheck sequence-wise balance loss (f fixed, P differentiated)", ok)

    model = Model(cfg)
    randomize(model, 13)
    tokens = torch.randint(0, 256, (2, cfg.seqLen + 2), generator=gen)
    model(tokens)["loss"].backward()
    live = grads_of(model)
    model.zero_grad()
    freeze_routing(model, tokens)
    model(tokens)["loss"].backward()
    frozen = grads_of(model)
    st.check("grads with live routing == grads with pinned routing (no gradient through selection)",
             all(torch.equal(live[k], frozen[k]) for k in live) and
             all(b.grad is None and not b.requires_grad for n, b in model.named_buffers()))
    # every parameter at once: central differences of L along random directions v vs. the autograd grad · v
    # (a bounded stand-in for gradcheck's fast mode, which falls back to a full Jacobian when it fails)
    params = dict(model.named_parameters())
    worst = 0.0
    with torch.no_grad():
        for trial in range(4):
            v = {n: torch.randn(p.shape, generator=gen) for n, p in params.items()}
            norm_v = math.sqrt(sum((t * t).sum().item() for t in v.values()))
            v = {n: t / norm_v for n, t in v.items()}                                  # unit direction
            eps = 1e-5
            lp = functional_call(model, {n: p + eps * v[n] for n, p in params.items()}, (tokens,))["loss"].item()
            lm = functional_call(model, {n: p - eps * v[n] for n, p in params.items()}, (tokens,))["loss"].item()
            fd = (lp - lm) / (2 * eps)
            an = sum((frozen[n] * v[n]).sum().item() for n in params)
            worst = max(worst, abs(fd - an) / max(abs(an), 1e-12))
    st.check("directional finite differences of L wrt all parameters, pinned routing", worst < 1e-7,
             f"4 random directions, worst relative error {worst:.1e}")
    names = ["layers.0.attn_norm.weight", "layers.1.ffn.gate.weight", "mtp.0.enorm.weight", "norm.weight"]
    params = dict(model.named_parameters())
    ws = [params[n].detach().clone().requires_grad_() for n in names]
    ok = gradcheck(lambda *w: functional_call(model, dict(zip(names, w)), (tokens,))["loss"], ws)
    st.check("gradcheck full loss L (main + MTP + balance) wrt 4 parameters elementwise, pinned routing", ok)


def test_fixture(st, tmp):
    good, bad = os.path.join(tmp, "good"), os.path.join(tmp, "bad")
    target = "layers.1.ffn.gate.weight"
    make_fixture(good, seed=1)
    make_fixture(bad, seed=1, perturb=target)
    rep = compare(good)
    worst = max(abs(v) for v in rep["tensors"].values())
    loss_ok = all(a == b for a, b in rep["loss"].values())
    n_grads = sum(k.startswith("grad:") for k in rep["tensors"])
    r = rep["routing"]["layers.1.ffn"]
    st.check("fixture vs itself: every crit ~ 0, losses identical, nothing missing", worst < 1e-14 and loss_ok and
             not rep["missing"] and n_grads == rep["info"]["parameters"],
             f"{len(rep['tensors'])} tensors, worst |crit| {worst:.1e}")
    st.check("fixture routing: group limit and bias change selections, naive selection agrees",
             r["tokens_changed_by_group_limit"] > 0 and r["tokens_changed_by_bias"] > 0 and r["naive_mismatches"] == 0,
             f"layers.1.ffn: {r['tokens_changed_by_group_limit']} tokens changed by group limit, "
             f"{r['tokens_changed_by_bias']} by bias, of {r['tokens']}")
    rep = compare(bad)
    others = max(abs(v) for k, v in rep["tensors"].items() if k != "grad:" + target)
    st.check("perturbed fixture: large crit on the perturbed gradient only",
             rep["tensors"]["grad:" + target] > 1e-4 and others < 1e-14,
             f"crit {rep['tensors']['grad:' + target]:.2e}, others <= {others:.1e}")
    # float32 dump (non-fp64 precision) is read and upcast
    f32 = os.path.join(tmp, "f32")
    make_fixture(f32, seed=1, dtype=torch.float32)
    rep = compare(f32)
    worst = max(rep["tensors"].values())
    st.check("F32 dump is read (crit at float32 rounding level)", 0 < worst < 1e-6, f"worst crit {worst:.1e}")
    # missing names on one side
    g, _ = read_safetensors(os.path.join(good, "grads.safetensors"))
    g.pop("head.weight")
    g["layers.1.ffn.gate.bias"] = torch.zeros(FIXTURE_MODEL["experts"])
    write_safetensors(os.path.join(bad, "grads.safetensors"), g)
    rep = compare(bad)
    st.check("names on one side only are listed in 'missing'",
             sorted(rep["missing"]) == ["grad:head.weight", "grad:layers.1.ffn.gate.bias"], str(rep["missing"]))
    # CLI: one JSON object, exit 0; garbage -> exit 2
    me = os.path.abspath(__file__)
    p = subprocess.run([sys.executable, me, good], capture_output=True, text=True)
    try:
        obj = json.loads(p.stdout)
        cli_ok = p.returncode == 0 and obj["ok"] is True
    except json.JSONDecodeError:
        cli_ok = False
    st.check("CLI on fixture: exit 0 and stdout is one JSON object", cli_ok)
    os.remove(os.path.join(bad, "weights.safetensors"))
    p2 = subprocess.run([sys.executable, me, bad], capture_output=True, text=True)
    st.check("CLI on unreadable dump: exit 2 with message on stderr", p2.returncode == 2 and p2.stderr.strip() != "",
             p2.stderr.strip()[:100])
    with open(os.path.join(good, "config.json")) as fh:
        conf = json.load(fh)
    del conf["model"]["topGroups"]
    with open(os.path.join(good, "config.json"), "w") as fh:
        json.dump(conf, fh)
    try:
        compare(good)
        st.check("missing config key -> error naming it", False)
    except DumpError as exc:
        st.check("missing config key -> error naming it", "topGroups" in str(exc), str(exc))


def self_test():
    t0 = time.time()
    st = SelfTest()
    with tempfile.TemporaryDirectory() as tmp:
        for title, fn in [("safetensors", lambda: test_safetensors(st, tmp)),
                          ("expert selection", lambda: test_selection(st)),
                          ("independent naive implementation", lambda: test_naive(st)),
                          ("finite differences (float64 central, eps 1e-6)", lambda: test_gradcheck(st)),
                          ("fixture round trip", lambda: test_fixture(st, tmp))]:
            t1 = time.time()
            print(title + ":", flush=True)
            fn()
            print(f"  ({time.time() - t1:.1f} s)", flush=True)
    print(f"self-test: {'FAILED (' + str(st.failures) + ')' if st.failures else 'all passed'} in {time.time() - t0:.1f} s")
    return 1 if st.failures else 0


# ----------------------------------------------------------------------------------------------------------

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump", nargs="?", help="moemu dump directory to compare")
    ap.add_argument("--make-fixture", metavar="DIR", help="write a dump of a small random model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--perturb", nargs="?", const="layers.1.ffn.experts.0.w1.weight", default=None, metavar="NAME",
                    help="with --make-fixture: write a wrong gradient for NAME")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.self_test:
            return self_test()
        if args.make_fixture:
            make_fixture(args.make_fixture, seed=args.seed, perturb=args.perturb)
            print(json.dumps({"ok": True, "fixture": args.make_fixture, "perturbed": args.perturb}))
            return 0
        if not args.dump:
            ap.error("give a DUMP_DIR, --make-fixture DIR or --self-test")
        print(json.dumps(compare(args.dump), allow_nan=False))   # non-finite values were made strings
        return 0
    except DumpError as exc:
        print(f"reference.py: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
