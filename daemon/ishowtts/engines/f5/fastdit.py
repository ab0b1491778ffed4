"""Our forward pass over the weights of an upstream DiT, shaped for fixed-step sampling.

Same mathematics as upstream's ``DiT.forward`` with classifier-free guidance packed, arranged so
that per-step work is only what depends on the noisy state:
- the text embedding and the condition/text part of the input projection are computed once a
  request (they do not change between steps);
- the time embedding and every layer's AdaLN modulation depend only on the step's time, so they
  are tables computed once per step schedule (in fp32, then cast);
- the position embedding's grouped convolutions are one Triton kernel each on CUDA (bias and
  Mish fused; ``convkernel``), one batched matmul elsewhere;
- q/k/v are one matmul; RoPE angles stay fp32 whatever the model precision (upstream casts them
  to the model dtype, which costs up to 0.4 rad of angle at 900 frames in fp16);
- one transformer block is one function, so ``torch.compile`` traces it once for all layers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import convkernel, fused
from .attention import ATTENTION, prefer
from .rope import rope_heads_major, rope_kernel, rope_kernel_launched, rope_rows
from .upstream import UpstreamModule

# Upstream's empirically pruned step schedules (t = index / 32), used when the count matches.
EPSS = {
    5: [0, 2, 4, 8, 16, 32],
    6: [0, 2, 4, 6, 8, 16, 32],
    7: [0, 2, 4, 6, 8, 16, 24, 32],
    10: [0, 2, 4, 6, 8, 12, 16, 20, 24, 28, 32],
    12: [0, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32],
    16: [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32],
}


def sway_map(t: Tensor, sway: float) -> Tensor:
    """F5's sway sampling: negative ``sway`` spends more steps near t = 0."""
    return t + sway * (torch.cos(torch.pi / 2 * t) - 1 + t)


def timesteps(steps: int, sway: float | None, pruned: bool = True) -> Tensor:
    """The ``steps + 1`` time points in fp32 (on the CPU), sway applied."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if pruned and steps in EPSS:
        t = 1 / 32 * torch.tensor(EPSS[steps], dtype=torch.float32)
    else:
        t = torch.linspace(0, 1, steps + 1, dtype=torch.float32)
    return t if sway is None else sway_map(t, sway)


# Fusions a FastDiT may use (``fuse``): "residual": each block's last residual is added by the
# next block in the kernel of its LayerNorm; "gelu": the feed-forward GELU in the GEMM epilogue
# (``fused.linear_gelu``, CUDA); "rows": RoPE in the frames-major layout (``rope_rows``);
# "rope": that rotation as one Triton kernel (``fused.rope_qk``; implies "rows").
# Default: every one the device runs.
FUSIONS = frozenset({"residual", "gelu", "rows", "rope"})


def available_fusions(device: torch.device) -> frozenset[str]:
    return frozenset({"residual", "rows"}) | fused.available(device)


def _dynamic(*dims: tuple[Tensor | None, int]) -> None:
    """Mark these dimensions (the sequence length) symbolic for torch.compile: one compiled
    graph serves every shape bucket. Absent tensors are skipped."""
    for t, dim in dims:
        if t is not None:
            torch._dynamo.maybe_mark_dynamic(t, dim)


BlockWeights = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]
Kernels = tuple[Callable[..., Any], Callable[..., Any]]  # (eager, compiled)


def grouped_conv(y: Tensor, w: Tensor, b: Tensor, groups: int) -> Tensor:
    """``Conv1d(groups=G, padding=K//2)`` on channels-last ``y [B,N,C]`` as one batched matmul
    over the unfolded windows. cuDNN runs this grouped convolution as G kernels plus layout
    transposes; here it is one copy and one GEMM, and the layout never changes."""
    bsz, n, c = y.shape
    k = w.shape[-1]
    windows = F.pad(y, (0, 0, k // 2, k // 2)).unfold(1, k, 1)  # [B, N, C, K], a view
    windows = windows.reshape(bsz, n, groups, c // groups, k)
    out = torch.einsum("bngik,goik->bngo", windows, w.view(groups, -1, c // groups, k))
    return out.reshape(bsz, n, -1) + b


def conv_mish(y: Tensor, w: Tensor, b: Tensor, groups: int) -> Tensor:
    return F.mish(grouped_conv(y, w, b, groups))


def conv_mish_fused(y: Tensor, w: Tensor, b: Tensor, groups: int) -> Tensor:
    """The same with the Triton kernel, through its op (compiled code); ``w`` packed by
    ``convkernel.pack_weight``."""
    return torch.ops.ishowtts.conv_mish(y.contiguous(), w, b)


def conv_mish_launched(y: Tensor, w: Tensor, b: Tensor, groups: int) -> Tensor:
    """``conv_mish_fused`` with the kernel launched directly (the eager path: fused.py says
    why)."""
    return convkernel.conv_mish(y.contiguous(), w, b)


def embed(x: Tensor, pre: Tensor, w_x: Tensor, conv1_w: Tensor, conv1_b: Tensor, conv2_w: Tensor,
          conv2_b: Tensor, mask: Tensor | None, groups: int,
          conv: Callable[..., Tensor] = conv_mish) -> Tensor:  # fmt: skip
    """Input embedding of the noisy state ``x [B,N,mel]``: ``[2B,N,D]`` for both CFG halves
    when ``pre`` has them (``[2B,N,D]``), ``[B,N,D]`` for an unguided model (``pre [B,N,D]``).
    ``pre`` holds the per-request part (condition, text, bias) of the input projection;
    ``conv`` is ``conv_mish`` or ``conv_mish_fused`` (its weights packed to match)."""
    h = F.linear(x, w_x)
    guided = pre.shape[0] != h.shape[0]
    h = (torch.cat((h, h), dim=0) if guided else h) + pre
    if mask is not None and guided:
        mask = torch.cat((mask, mask))
    keep = None if mask is None else mask[:, :, None].to(h.dtype)
    # Padding frames are zeroed before each convolution: the same as an unpadded sequence.
    y = h if keep is None else h * keep
    y = conv(y, conv1_w, conv1_b, groups)
    if keep is not None:
        y = y * keep
    y = conv(y, conv2_w, conv2_b, groups)
    if keep is not None:
        y = y * keep
    return h + y


def linear_gelu(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return F.gelu(F.linear(x, w, b), approximate="tanh")


def block(h: Tensor, f: Tensor | None, g: Tensor | None, mod: Tensor, qkv_w: Tensor,
          qkv_b: Tensor, out_w: Tensor, out_b: Tensor, ff1_w: Tensor, ff1_b: Tensor,
          ff2_w: Tensor, ff2_b: Tensor, cos: Tensor, sin: Tensor, attn_mask: Tensor | None,
          heads: int, rope_heads: int | None = None, defer: bool = False,
          ff_in: Callable[..., Tensor] = linear_gelu,
          rope: Callable[..., tuple[Tensor, Tensor, Tensor]] = rope_heads_major,
          ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    """One DiT block. ``mod [6, D]``: shift, 1+scale, gate (attention), shift, 1+scale, gate
    (feed-forward). Weights come as plain tensors so one compiled graph serves every layer.
    ``rope_heads``: rotate only the first heads (v0 models rotate one), None: all.
    ``defer``: return the feed-forward output unadded, ``(h, f)``; the next block (or the
    head) adds ``g * f`` as it starts, in the same kernel as its LayerNorm: one pass over the
    residual stream a layer fewer. ``f, g``: such a deferred output and its gate, or None.
    ``ff_in``: the first feed-forward projection with its GELU (``linear_gelu``, or one GEMM
    with the GELU in its epilogue). ``rope``: q, k (rotated) and v from the projection
    (``rope_heads_major``, ``rope_rows`` or ``rope_kernel``)."""
    if f is not None and g is not None:
        h = h + g * f
    bsz, n, dim = h.shape
    x = F.layer_norm(h, (dim,), eps=1e-6) * mod[1] + mod[0]
    qkv = F.linear(x, qkv_w, qkv_b).view(bsz, n, 3, heads, -1)
    q, k, v = rope(qkv, cos, sin, rope_heads)
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    a = F.linear(a.transpose(1, 2).reshape(bsz, n, -1), out_w, out_b)
    h = h + mod[2] * a
    x = F.layer_norm(h, (dim,), eps=1e-6) * mod[4] + mod[3]
    x = F.linear(ff_in(x, ff1_w, ff1_b), ff2_w, ff2_b)
    if defer:
        return h, x
    return h + mod[5] * x, None


def first_block(h: Tensor, *args: Any) -> tuple[Tensor, Tensor | None]:
    """``block`` with nothing deferred into it. Its own code object, so that torch.compile
    keeps one entry for the first layer and one for the rest instead of two guard sets on
    one function (each distinct entry counts against dynamo's recompile limit)."""
    return block(h, None, None, *args)


def head(h: Tensor, f: Tensor | None, g: Tensor | None, fmod: Tensor, out_w: Tensor,
         out_b: Tensor, cfg: Tensor | None) -> Tensor:  # fmt: skip
    """Final modulation, projection to mel and guidance (``cfg`` None: an unguided model, one
    half): the velocity ``[B,N,mel]`` in fp32. ``f, g``: the last block's deferred output."""
    if f is not None and g is not None:
        h = h + g * f
    x = F.layer_norm(h, (h.shape[-1],), eps=1e-6) * fmod[0] + fmod[1]
    out = F.linear(x, out_w, out_b).float()
    if cfg is None:
        return out
    cond, uncond = out.chunk(2, dim=0)
    return cond + (cond - uncond) * cfg


class FastDiT:
    """Holds the weights of one upstream DiT (already on its device and dtype) in our layout."""

    @torch.no_grad()
    def __init__(self, dit: UpstreamModule, fused_conv: bool = True, attention: str = "auto",
                 guided: bool = True, mel_scale: float = 1.0,
                 fuse: frozenset[str] | None = None) -> None:  # fmt: skip
        """``guided``: classifier-free guidance packed into every step (F5); False for a
        distilled student, which runs the conditional half only. ``mel_scale``: the model
        works on mel / scale (DMOSpeech2 students); samplers divide and multiply by it.
        ``fuse``: which of ``FUSIONS`` to use (None: all the device runs)."""
        dit.requires_grad_(False)  # inference only: no autograd history, no autograd wrappers
        self.dit = dit
        self.guided = guided
        self.mel_scale = float(mel_scale)
        first = dit.transformer_blocks[0]
        self.dim: int = dit.dim
        self.depth: int = dit.depth
        self.heads: int = first.attn.heads
        self.dim_head: int = first.attn.inner_dim // self.heads
        if first.attn.q_norm is not None:
            raise ValueError("qk_norm variants of DiT are not supported")
        self.rope_heads: int | None = first.attn.processor.pe_attn_head
        if dit.long_skip_connection is not None or dit.text_embed.average_upsampling:
            raise ValueError("long skip / average upsampling variants of DiT are not supported")
        proj = dit.input_embed.proj
        self.mel_dim: int = dit.proj_out.out_features
        m = self.mel_dim
        self.w_x = proj.weight[:, :m].contiguous()
        self.w_c = proj.weight[:, m : 2 * m].contiguous()
        self.w_t = proj.weight[:, 2 * m :].contiguous()
        self.b_in = proj.bias
        conv = dit.input_embed.conv_pos_embed.conv1d
        self.groups: int = conv[0].groups
        self.conv = (conv[0].weight, conv[0].bias, conv[2].weight, conv[2].bias)
        conv_fns: Kernels = (conv_mish, conv_mish)
        if fused_conv and convkernel.available(proj.weight.device, conv[0].weight.shape[1]):
            w1, b1, w2, b2 = self.conv
            self.conv = (convkernel.pack_weight(w1, self.groups), b1,
                         convkernel.pack_weight(w2, self.groups), b2)  # fmt: skip
            conv_fns = (conv_mish_launched, conv_mish_fused)
        self.blocks: list[BlockWeights] = [
            (
                torch.cat([b.attn.to_q.weight, b.attn.to_k.weight, b.attn.to_v.weight]),
                torch.cat([b.attn.to_q.bias, b.attn.to_k.bias, b.attn.to_v.bias]),
                b.attn.to_out[0].weight,
                b.attn.to_out[0].bias,
                b.ff.ff[0][0].weight,
                b.ff.ff[0][0].bias,
                b.ff.ff[2].weight,
                b.ff.ff[2].bias,
            )
            for b in dit.transformer_blocks
        ]
        self.out_w, self.out_b = dit.proj_out.weight, dit.proj_out.bias
        self.dtype = proj.weight.dtype
        self.device = proj.weight.device
        self.ff_dim: int = self.blocks[0][4].shape[0]
        self.conv_taps: int = conv[0].weight.shape[-1]
        usable = available_fusions(self.device)
        if fuse is not None and not fuse <= FUSIONS:
            raise ValueError(f"unknown fusions {sorted(fuse - FUSIONS)}; known {sorted(FUSIONS)}")
        self.fuse = usable if fuse is None else fuse & usable
        ff_in: Kernels = (linear_gelu, linear_gelu)
        if "gelu" in self.fuse:
            ff_in = (fused.linear_gelu, torch.ops.ishowtts.linear_gelu)
        rope: Kernels = (rope_heads_major, rope_heads_major)
        if "rows" in self.fuse:
            rope = (rope_rows, rope_rows)
        if "rope" in self.fuse:
            rope = (rope_kernel_launched, rope_kernel)
        # (eager, compiled) of each kernel the step functions are handed: our fused kernels
        # run as plain launches eagerly and as custom ops in compiled code (fused.py says why).
        self.kernels: dict[str, Kernels] = {"conv_fn": conv_fns, "ff_in": ff_in, "rope": rope}
        self.conv_fn: Callable[..., Tensor] = conv_fns[0]
        self.ff_in: Callable[..., Tensor] = ff_in[0]
        self.rope: Callable[..., tuple[Tensor, Tensor, Tensor]] = rope[0]
        # Attention kernel choice: fixed at trace time in compiled code, so every call (warm-up
        # and capture included) runs under the same choice. "auto": cuDNN first on CUDA (3 %
        # faster a step than flash on an H100), torch's own choice elsewhere.
        if attention == "auto":
            attention = "cudnn" if proj.weight.device.type == "cuda" else "default"
        self.attention = ATTENTION.get(attention)
        self.mark_dynamic = False  # set while compiling: sequence length stays symbolic
        self.embed_fn: Callable[..., Tensor] = embed
        self.block_fn: Callable[..., tuple[Tensor, Tensor | None]] = block
        self.first_block_fn: Callable[..., tuple[Tensor, Tensor | None]] = first_block
        self.prepare_fn: Callable[..., Tensor] = self._prepare_padded
        self.head_fn: Callable[..., Tensor] = head

    def compiled(self, **kwargs: Any) -> dict[str, Callable[..., Any]]:
        """The step functions through torch.compile, by attribute name (each compiles when
        first called); ``use`` puts them in place. The block is traced once for every layer and
        the sequence length is symbolic, so one compilation serves every shape bucket."""
        # Every FastDiT in a process (F5, a student, tests) shares the compiled code objects;
        # each distinct kernel choice or model is one more entry. Dynamo's default limit (8)
        # then fails a fullgraph compile outright.
        cfg = torch._dynamo.config
        limit = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
        setattr(cfg, limit, max(getattr(cfg, limit), 64))
        # The text embedding's ~80 small kernels a request become a handful.
        prepare = torch.compile(self._prepare_padded, fullgraph=True, dynamic=True, **kwargs)
        return {
            "embed_fn": torch.compile(embed, fullgraph=True, **kwargs),
            "block_fn": torch.compile(block, fullgraph=True, **kwargs),
            "first_block_fn": torch.compile(first_block, fullgraph=True, **kwargs),
            "prepare_fn": prepare,
            "head_fn": torch.compile(head, fullgraph=True, **kwargs),
        }

    def use(self, fns: dict[str, Callable[..., Any]] | None) -> None:
        """Run these step functions (from ``compiled``), or the plain ones (None)."""
        plain = {"embed_fn": embed, "block_fn": block, "first_block_fn": first_block,
                 "prepare_fn": self._prepare_padded, "head_fn": head}  # fmt: skip
        for name, fn in (fns or plain).items():
            setattr(self, name, fn)
        for name, (eager, compiled) in self.kernels.items():
            setattr(self, name, eager if fns is None else compiled)
        self.mark_dynamic = fns is not None

    def compile(self, **kwargs: Any) -> None:
        self.use(self.compiled(**kwargs))

    def uncompile(self) -> None:
        self.use(None)

    def twin(self, fns: dict[str, Callable[..., Any]] | None) -> FastDiT:
        """A copy sharing this one's weights that runs ``fns``: compiling through it (in
        another thread) leaves the functions this one runs as they are."""
        other = copy.copy(self)
        other.use(fns)
        return other

    @torch.no_grad()
    def modulation(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Per-step modulation tables for times ``t [S]``: ``[S, depth, 6, D]`` and
        ``[S, 2, D]`` in the model dtype, computed in fp32."""
        dit = self.dit
        t = t.to(self.device, torch.float32)
        mlp = dit.time_embed.time_mlp
        temb = dit.time_embed.time_embed(t)
        temb = F.linear(temb, mlp[0].weight.float(), mlp[0].bias.float())
        temb = F.linear(F.silu(temb), mlp[2].weight.float(), mlp[2].bias.float())
        act = F.silu(temb)
        mods = []
        for b in dit.transformer_blocks:
            lin = b.attn_norm.linear
            e = F.linear(act, lin.weight.float(), lin.bias.float()).view(len(t), 6, self.dim)
            shift, scale, gate, shift2, scale2, gate2 = e.unbind(1)
            mods.append(torch.stack([shift, 1 + scale, gate, shift2, 1 + scale2, gate2], dim=1))
        lin = dit.norm_out.linear
        scale, shift = (
            F.linear(act, lin.weight.float(), lin.bias.float()).view(len(t), 2, self.dim).unbind(1)
        )
        final = torch.stack([1 + scale, shift], dim=1)
        return torch.stack(mods, dim=1).to(self.dtype), final.to(self.dtype)

    @torch.no_grad()
    def prepare(self, cond: Tensor, text: Tensor, lengths: list[int], n: int) -> Tensor:
        """The per-request part of the input projection, ``[2B, n, D]`` (cond half first;
        ``[B, n, D]``, the cond half only, when unguided).
        ``cond [B, n, mel]`` is the reference mel zero-padded, ``text [B, nt]`` token ids
        (-1 padded), ``lengths`` each sample's real frame count (``<= n``)."""
        te = self.dit.text_embed
        halves = []
        for drop in (False, True) if self.guided else (False,):
            rows = []
            for i, length in enumerate(lengths):
                e = te(text[i : i + 1], seq_len=length, drop_text=drop)
                rows.append(F.pad(e, (0, 0, 0, n - e.shape[1])))
            emb = torch.cat(rows, dim=0).to(self.dtype)
            part = F.linear(emb, self.w_t, self.b_in)
            if not drop:
                part = part + F.linear(cond.to(self.dtype), self.w_c)
            halves.append(part)
        return torch.cat(halves, dim=0)

    def text_embedding(self, tokens: Tensor, lengths: Tensor, drop: Tensor | None = None) -> Tensor:
        """Upstream's text embedding over a whole bucket, each sample's frame count given as a
        tensor, so one CUDA graph serves every length: what upstream computes for one sample at
        its exact length. Frames past a sample's length stay zero (the convolutions see the
        zero padding upstream's shorter sequence has); v1 models also zero filler tokens, v0
        models keep them. The GRN norm runs over each sample's real frames, as upstream's.
        ``drop [B]`` bool: which samples are the guidance pass's (text dropped)."""
        te = self.dit.text_embed
        n = tokens.shape[1]
        text = tokens + 1  # -1 padding becomes the filler token 0
        frames = (torch.arange(n, device=tokens.device)[None, :] < lengths[:, None])[..., None]
        dead = (text == 0)[..., None] if te.mask_padding else ~frames
        if drop is not None:
            text = torch.where(drop[:, None], 0, text)
        x = te.text_embed(text)
        if not te.extra_modeling:
            return x
        x = (x + te.freqs_cis[:n]).masked_fill(dead, 0.0)
        for blk in te.text_blocks:
            res = x
            y = blk.dwconv(x.transpose(1, 2)).transpose(1, 2)
            y = F.gelu(blk.pwconv1(blk.norm(y)))
            g = (y.square() * frames).sum(dim=1, keepdim=True).sqrt()
            y = blk.grn.gamma * (y * (g / (g.mean(dim=-1, keepdim=True) + 1e-6))) + blk.grn.beta + y
            x = (res + blk.pwconv2(y)).masked_fill(dead, 0.0)
        return x

    @torch.no_grad()
    def prepare_padded(self, cond: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
        """``prepare`` for a whole bucket at once (no per-sample shapes, so it can be a CUDA
        graph): ``tokens [B, n]`` padded with -1, ``lengths [B]`` frame counts."""
        return self.prepare_fn(cond, tokens, lengths)

    def _prepare_padded(self, cond: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
        cond_part = F.linear(cond.to(self.dtype), self.w_c)
        if not self.guided:
            emb = self.text_embedding(tokens, lengths)
            return F.linear(emb.to(self.dtype), self.w_t, self.b_in) + cond_part
        # Both halves in one batch (half the kernels): the second drops the text.
        bsz = tokens.shape[0]
        drop = torch.arange(2 * bsz, device=tokens.device) >= bsz
        emb = self.text_embedding(tokens.repeat(2, 1), lengths.repeat(2), drop)
        both = F.linear(emb.to(self.dtype), self.w_t, self.b_in)
        return torch.cat((both[:bsz] + cond_part, both[bsz:]), dim=0)

    def velocity(self, x: Tensor, pre: Tensor, mods: Tensor, fmod: Tensor, cos: Tensor,
                 sin: Tensor, mask: Tensor | None, cfg: Tensor | None) -> Tensor:  # fmt: skip
        """Velocity ``[B,N,mel]`` (fp32) for state ``x`` at one step: guided by ``cfg``, or
        the conditional prediction alone when ``cfg`` is None (``pre`` then has one half)."""
        if self.attention is None:
            return self._velocity(x, pre, mods, fmod, cos, sin, mask, cfg)
        with prefer(self.attention):
            return self._velocity(x, pre, mods, fmod, cos, sin, mask, cfg)

    def _velocity(self, x: Tensor, pre: Tensor, mods: Tensor, fmod: Tensor, cos: Tensor,
                  sin: Tensor, mask: Tensor | None, cfg: Tensor | None) -> Tensor:  # fmt: skip
        xin = x.to(self.dtype)
        keys = mask if mask is None or cfg is None else torch.cat((mask, mask))
        attn_mask = None if keys is None else keys[:, None, None, :]
        if self.mark_dynamic:
            _dynamic((xin, 1), (pre, 1), (mask, 1), (cos, 0), (sin, 0), (attn_mask, 3))
        h = self.embed_fn(xin, pre, self.w_x, *self.conv, mask, self.groups, self.conv_fn)
        defer = "residual" in self.fuse
        f: Tensor | None = None  # a block's deferred feed-forward output (gate: its mod[5])
        for i, w in enumerate(self.blocks):
            if self.mark_dynamic:
                _dynamic((h, 1), (f, 1))
            args = (mods[i], *w, cos, sin, attn_mask, self.heads, self.rope_heads, defer,
                    self.ff_in, self.rope)  # fmt: skip
            if f is None:
                h, f = self.first_block_fn(h, *args)
            else:
                h, f = self.block_fn(h, f, mods[i - 1][5], *args)
        if self.mark_dynamic:
            _dynamic((h, 1), (f, 1))
        g = None if f is None else mods[-1][5]
        return self.head_fn(h, f, g, fmod, self.out_w, self.out_b, cfg)
