#!/usr/bin/env python3
"""Step time of the PyTorch model (model.py) training on random tokens: forward, backward and
both optimizers, timed step by step between torch.cuda.synchronize() calls. Progress goes
to stderr; stdout gets one line:

  pytorch preset=medium n_emb=4 tokens=65536 step_ms=123.4 peak_mb=45678 flops=1.23e15 mfu=0.45

step_ms is the median timed step, peak_mb the peak of torch.cuda.max_memory_allocated() over
the timed steps (on the CPU the process's peak resident set), flops the model FLOPs of one
step (model.model_flops: 6 N T for the matmul weights plus the attention over the pairs the
mask allows), mfu = flops / step time / --peak-tflops.

  bench.py --preset medium --n-emb 4 --tokens 65536 --steps 10 --warmup 3 [--device cuda] [--compile]

On CUDA the defaults are bf16, torch.compile and FlexAttention; on the CPU f32 and the dense
attention, and only the tiny and small presets unless --force.
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.dont_write_bytecode = True   # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "f32": torch.float32, "f64": torch.float64}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def fmt_e(x):  # 1.23e15, not 1.23e+15
    m, e = f"{x:.2e}".split("e")
    return f"{m}e{int(e)}"


def random_batch(cfg, T, doc_len, gen, device):
    """T + 1 random non-eot ids with an eot opening a new document with probability 1/doc_len
    at each position (geometric document lengths); inputs and targets shifted by one."""
    ids = torch.randint(0, cfg.vocab - 1, (T + 1,), generator=gen)
    ids += (ids >= cfg.eot).long()                      # skip the eot id
    ids[torch.rand(T + 1, generator=gen) < 1.0 / doc_len] = cfg.eot
    ids = ids.to(torch.int32)
    return ids[:-1].to(device), ids[1:].to(device)


def main():
    ap = argparse.ArgumentParser(description="PyTorch training-step benchmark of the gptc model")
    ap.add_argument("--preset", choices=sorted(M.PRESETS), default="medium")
    ap.add_argument("--n-emb", type=int, default=1, help="input embeddings x00.. (1..5)")
    ap.add_argument("--tokens", type=int, help="tokens per step (default: the preset's seq_len)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="default bf16 on CUDA, f32 on the CPU")
    ap.add_argument("--compile", dest="compile", action="store_true", default=None,
                    help="torch.compile the model and Newton-Schulz (default on CUDA)")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--attn", choices=["auto", "flex", "dense"], default="auto",
                    help="auto: FlexAttention on CUDA when torch has it and the block is a multiple of 128, "
                         "else a dense [T, T] mask")
    ap.add_argument("--window", type=int, help="long window in blocks (default window_max = 27); short = long // 2")
    ap.add_argument("--doc-len", type=float, default=1024, help="mean document length in tokens")
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="peak FLOP/s for the MFU, in 1e12 (989: H100/H200 SXM dense bf16)")
    ap.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="allow the medium preset on the CPU")
    ap.add_argument("--check-flex", action="store_true",
                    help="first compare compiled FlexAttention with the dense mask (model.check_flex)")
    a = ap.parse_args()

    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    dtype = DTYPES[a.dtype or ("bf16" if cuda else "f32")]
    use_compile = cuda if a.compile is None else a.compile
    if use_compile and not hasattr(torch, "compile"):
        log(f"bench: torch {torch.__version__} has no torch.compile; running eagerly")
        use_compile = False
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = M.preset(a.preset, n_emb=a.n_emb, **({"seq_len": a.tokens} if a.tokens else {}))
    T = cfg.seq_len
    if T % cfg.block or T % 4:
        sys.exit(f"bench: --tokens {T} must be a multiple of the block ({cfg.block})")
    if not cuda and a.preset == "medium" and not a.force:
        sys.exit("bench: the medium preset on the CPU needs --force (dense attention holds T x T scores)")
    attention = a.attn
    if attention == "auto":
        attention = "flex" if M.flex_ok(cfg, dev) else "dense"
    if attention == "flex" and M.flex_attention is None:
        sys.exit(f"bench: torch {torch.__version__} has no FlexAttention (torch >= 2.5)")
    if attention == "flex" and not use_compile:
        log("bench: FlexAttention without torch.compile runs its slow reference path")
    if attention == "dense" and T > 16384:
        log(f"bench: dense attention at T = {T} needs {cfg.heads * T * T * 4 / 2**30:.0f} GiB of scores per layer")
    wl = a.window if a.window is not None else cfg.window_max
    if a.check_flex:
        if M.flex_attention is None or not hasattr(torch, "compile"):
            sys.exit(f"bench: --check-flex needs FlexAttention and torch.compile (torch {torch.__version__})")
        err = M.check_flex(dev)
        log(f"bench: FlexAttention against the dense mask: max abs difference {err:.2e}")
        if not err < 1e-3:
            sys.exit("bench: FlexAttention differs from the dense mask")

    torch.manual_seed(a.seed)
    model = M.GPT(cfg, dtype, dev, attention, seed=a.seed)
    opt = M.Optimizers(model, cfg, compile_ns=use_compile)
    fwd = torch.compile(model, dynamic=False) if use_compile else model
    nparam = sum(p.numel() for p in model.spec_params().values())
    gen = torch.Generator().manual_seed(a.seed)
    data = [random_batch(cfg, T, a.doc_len, gen, dev) for _ in range(min(a.steps + a.warmup, 8))]
    window = torch.tensor(wl, dtype=torch.int32, device=dev)   # a tensor: no recompile per value
    log(f"bench: {a.preset} n_emb={cfg.n_emb} T={T} params={nparam:,} device={dev} dtype={str(dtype)[6:]} "
        f"attention={attention} compile={use_compile} windows={wl}/{wl // 2} torch={torch.__version__}")

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    def step(s):
        inputs, targets = data[s % len(data)]
        loss = fwd(inputs, targets, window)
        loss.backward()
        opt.step(s)
        model.zero_grad(set_to_none=True)
        return loss

    for s in range(a.warmup):
        t0 = time.perf_counter()
        loss = step(s)
        sync()
        log(f"warmup {s}: {1e3 * (time.perf_counter() - t0):.1f} ms, loss {loss.item():.4f}")
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for s in range(a.warmup, a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        loss = step(s)
        sync()
        times.append(1e3 * (time.perf_counter() - t0))
        log(f"step {s}: {times[-1]:.1f} ms, loss {loss.item():.4f}")
    if cuda:
        peak_mb = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # kB on Linux
    ms = statistics.median(times)
    pl = sum(M.attention_pairs(x.cpu(), cfg.eot, cfg.block, wl) for x, _ in data) / len(data)
    ps = sum(M.attention_pairs(x.cpu(), cfg.eot, cfg.block, wl // 2) for x, _ in data) / len(data)
    flops = M.model_flops(cfg, pl, ps)
    mfu = flops / (ms / 1e3) / (a.peak_tflops * 1e12)
    log(f"bench: step ms min {min(times):.1f} mean {statistics.mean(times):.1f} max {max(times):.1f}; "
        f"attention pairs per layer long {pl:.3g} short {ps:.3g} (causal {T * (T + 1) / 2:.3g})")
    print(f"pytorch preset={a.preset} n_emb={cfg.n_emb} tokens={T} step_ms={ms:.1f} peak_mb={peak_mb:.0f} "
          f"flops={fmt_e(flops)} mfu={mfu:.2f}", flush=True)


if __name__ == "__main__":
    main()
