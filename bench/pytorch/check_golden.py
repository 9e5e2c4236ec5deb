#!/usr/bin/env python3
"""Checks bench/pytorch/model.py against a float64 golden set (tests/golden/<set>, see its
README): in float64 on the CPU, the block masks (exactly), the loss, every gradient and
activation, the optimizer steps (after_step1 from the golden gradients and end to end,
after_step2) and the training trajectory with its validations must match to --tol relative
(max|a - b| / max|b| per tensor, |a - b| / |b| per loss). Prints the figures; exit status 1 on
a mismatch. This is what makes the benchmark model the same model as gptc's.

  check_golden.py [--golden DIR] [--tol 1e-9] [--no-trajectory]
"""
import argparse
import dataclasses
import json
import os
import struct
import sys

import torch

sys.dont_write_bytecode = True   # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "golden", "tiny_x02"))
DTYPES = {"F64": torch.float64, "F32": torch.float32, "I32": torch.int32, "I64": torch.int64}


def read_safetensors(path):
    """The whole file: 8-byte header length, JSON header, raw little-endian data."""
    assert sys.byteorder == "little"
    with open(path, "rb") as f:
        data = bytearray(f.read())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        dt = DTYPES[e["dtype"]]
        a, b = e["data_offsets"]
        count = (b - a) // torch.empty(0, dtype=dt).element_size()
        t = torch.frombuffer(data, dtype=dt, count=count, offset=8 + n + a) if count else torch.empty(0, dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out


def read_shard(path):
    """S-7.1: 256 int32 header words (magic, version, N), then N uint16 tokens."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    magic, version, n = struct.unpack("<3i", data[:12])
    assert magic == 20240520 and version == 1 and len(data) >= 1024 + 2 * n, path
    return torch.frombuffer(data, dtype=torch.int16, count=n, offset=1024).to(torch.int32) & 0xFFFF


def batches(tokens, T):
    """S-7.2 with one rank and one file: inputs and targets shifted by one, no wrap-around."""
    pos = 0
    while pos + T + 1 < tokens.numel():
        yield tokens[pos:pos + T], tokens[pos + 1:pos + T + 1]
        pos += T
    raise SystemExit("golden: shard exhausted")


def config_of(g):
    c = g["config"]
    assert (c.get("momentum_start", 0.85), c.get("momentum_end", 0.95)) == (0.85, 0.95)
    return M.Config(vocab=c["vocab"], eot=c["eot"], dim=c["dim"], heads=c["n_heads"], head_dim=c["head_dim"],
                    n_emb=c["n_emb"], seq_len=c["seq_len"], block=c["block_size"],
                    window_max=c["max_window_blocks"], steps=c["num_iterations"], cooldown=c["cooldown_frac"],
                    attn_scale=c["attn_scale"], logit_cap=c["softcap"], lr_head=c["lr_head"],
                    lr_embed=c["lr_embed"], lr_scalar=c["lr_scalar"], lr_muon=c["muon_lr"], muon_wd=c["muon_wd"],
                    mlp_wd_mul=c["mlp_wd_mul"], momentum_warmup=c["momentum_warmup_steps"],
                    adam_betas=(c["adam_beta1"], c["adam_beta2"]), adam_eps=c["adam_eps"])


def rel(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    d = (a - b).abs().max().item() if a.numel() else 0.0
    s = b.abs().max().item() if b.numel() else 0.0
    return d / s if s > 0 else d


class Report:
    def __init__(self, tol):
        self.tol, self.worst, self.bad = tol, 0.0, []

    def check(self, what, pairs):
        """pairs: {name: (mine, golden)}; prints the worst relative error of the family."""
        errs = {k: rel(a, b) for k, (a, b) in pairs.items()}
        name = max(errs, key=errs.get)
        self.worst = max(self.worst, errs[name])
        bad = [k for k, e in errs.items() if not e <= self.tol]
        self.bad += [f"{what}: {k} {errs[k]:.3e}" for k in bad]
        print(f"{what:<34} {len(pairs):3d} compared, worst {errs[name]:.3e} ({name}){'  FAIL' if bad else ''}")


def load(model, P):
    with torch.no_grad():
        for n, p in model.spec_params().items():
            p.copy_(P[n])


def loss_grads(model, inputs, targets, window, acts=None):
    model.zero_grad(set_to_none=True)
    loss = model(inputs, targets, window, acts=acts)
    loss.backward()
    return loss.item(), {n: p.grad.detach().clone() for n, p in model.spec_params().items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--golden", default=DEFAULT, help="golden set folder (default %(default)s)")
    ap.add_argument("--tol", type=float, default=1e-9)
    ap.add_argument("--no-trajectory", action="store_true")
    args = ap.parse_args()
    D = args.golden
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    g = json.load(open(os.path.join(D, "golden.json")))
    cfg = config_of(g)
    ss, ost = g["single_step"], g["optimizer_steps"]
    wl = ss["window_long"]
    assert ss["window_short"] == wl // 2
    params = read_safetensors(os.path.join(D, "params.safetensors"))
    inp = read_safetensors(os.path.join(D, "inputs.safetensors"))
    tokens, targets = inp["tokens"], inp["targets"]
    print(f"golden: {D}: n_emb={cfg.n_emb} d={cfg.dim} heads={cfg.heads}x{cfg.head_dim} T={tokens.numel()} "
          f"block={cfg.block} windows {wl}/{wl // 2}; float64, torch {torch.__version__}")
    R = Report(args.tol)

    # masks: the dense mask of the block lists against the golden one, cell by cell
    docs = M.doc_ids(tokens, cfg.eot)
    assert torch.equal(docs, inp["doc_ids"]), "doc ids differ"
    lists = M.block_lists(docs, cfg.block)
    gm = read_safetensors(os.path.join(D, "masks.safetensors"))
    diff = [int((M.dense_mask(docs, cfg.block, lists, w) != gm[k].bool()).sum())
            for w, k in ((wl, "mask_long"), (wl // 2, "mask_short"))]
    print(f"{'masks (long, short): cells differing':<34} {diff[0]} {diff[1]}")
    if any(diff):
        R.bad.append(f"masks: {diff} cells differ")
    # the pair count behind bench.py's attention FLOPs equals the masks' allowed cells
    pairs = [M.attention_pairs(tokens, cfg.eot, cfg.block, w) for w in (wl, wl // 2)]
    cells = [int(gm[k].sum()) for k in ("mask_long", "mask_short")]
    print(f"{'attention pairs (long, short)':<34} {pairs[0]} {pairs[1]} (mask cells {cells[0]} {cells[1]})")
    if pairs != cells:
        R.bad.append(f"attention pairs {pairs} != mask cells {cells}")

    # loss, gradients, activations at the starting state
    model = M.GPT(cfg, torch.float64, attention="dense")
    load(model, params)
    acts = {}
    loss, G = loss_grads(model, tokens, targets, wl, acts)
    with torch.no_grad():
        ev = model(tokens, targets, wl, eval_chunks=True).item()
    R.check("loss", {"loss": (loss, ss["loss"]), "4-chunk eval loss": (ev, ss["loss_eval_4chunk"])})
    print(f"{'':<34} {loss!r} (golden {ss['loss']!r})")
    R.check("gradients", {n: (G[n], t) for n, t in read_safetensors(os.path.join(D, "grads.safetensors")).items()})
    R.check("activations", {n: (acts[n], t) for n, t in read_safetensors(os.path.join(D, "acts.safetensors")).items()})

    # optimizer steps (schedules with num_iterations from the golden file, windows fixed)
    cfg3 = dataclasses.replace(cfg, steps=ost["num_iterations"])
    golden_g = read_safetensors(os.path.join(D, "grads.safetensors"))
    after1 = read_safetensors(os.path.join(D, "after_step1.safetensors"))
    after2 = read_safetensors(os.path.join(D, "after_step2.safetensors"))
    opt = M.Optimizers(model, cfg3)
    opt.step(0)                                          # end to end: with this model's gradients
    R.check("after_step1, own gradients", {n: (p, after1[n]) for n, p in model.spec_params().items()})

    model = M.GPT(cfg, torch.float64, attention="dense")
    load(model, params)
    for n, p in model.spec_params().items():             # the optimizer alone: golden gradients
        p.grad = golden_g[n].clone()
    opt = M.Optimizers(model, cfg3)
    opt.step(0)
    R.check("after_step1, golden gradients", {n: (p, after1[n]) for n, p in model.spec_params().items()})
    l1, _ = loss_grads(model, tokens, targets, wl)
    opt.step(1)
    with torch.no_grad():
        l2 = model(tokens, targets, wl).item()
    R.check("after_step2 (step 2 own gradients)", {n: (p, after2[n]) for n, p in model.spec_params().items()})
    R.check("losses after steps 1, 2", {"after_step1": (l1, ost["steps"][1]["loss_at_after_step1"]),
                                        "after_step2": (l2, ost["loss_at_after_step2"])})

    if not args.no_trajectory:
        trajectory(g, cfg, params, D, R)

    if R.bad:
        print("golden: MISMATCH (tolerance %.0e)\n  " % args.tol + "\n  ".join(R.bad))
        sys.exit(1)
    print(f"golden: OK, worst relative error {R.worst:.3e} <= {args.tol:.0e}")


def trajectory(g, cfg, params, D, R):
    """The training loop of S-8.1 (one rank) from params with a fresh optimizer: training loss
    before every update, validation (4-chunk loss, fresh loader) at the golden's steps."""
    tj = g["trajectory"]
    cfg = dataclasses.replace(cfg, steps=tj["num_iterations"], window_max=tj["max_window_blocks"])
    model = M.GPT(cfg, torch.float64, attention="dense")
    load(model, params)
    opt = M.Optimizers(model, cfg)
    train = batches(read_shard(os.path.join(D, tj["train_bin"])), tj["train_seq_len"])
    val_tokens = read_shard(os.path.join(D, tj["val_bin"]))
    nval = tj["val_tokens"] // (tj["world_size"] * tj["val_seq_len"])
    gval = {v["step"]: v for v in tj["val"]}
    losses, vlosses, lams, wins = {}, {}, {}, []
    for s in range(tj["steps"] + 1):
        wl, ws = M.window_blocks(s, cfg)
        if s in gval:
            it = batches(val_tokens, tj["val_seq_len"])
            with torch.no_grad():
                vlosses[s] = sum(model(*next(it), wl, eval_chunks=True).item() for _ in range(nval)) / nval
            P = model.spec_params()
            logged = {"x_lambdas": P["lambdas"][:, 0], "unet_lambdas": P["skip_weights"],
                      "v_lambdas": P["sa_lambdas"][:, 0], "ve_lambdas": P["sa_lambdas"][:, 1]}
            logged.update({f"x{k:02d}_lambdas": P["lambdas"][:, k + 1] for k in range(cfg.n_emb)})
            lams.update({f"step {s} {k}": (v.detach().clone(), gval[s][k]) for k, v in logged.items()})
            wins.append((wl, ws) == (gval[s]["window_long"], gval[s]["window_short"]))
        if s == tj["steps"]:
            break
        wins.append((wl, ws) == (tj["window_long"][s], tj["window_short"][s]))
        losses[s], _ = loss_grads(model, *next(train), wl)
        opt.step(s)
    print(f"{'trajectory windows':<34} {sum(wins)} of {len(wins)} equal")
    if not all(wins):
        R.bad.append("trajectory: window schedule differs")
    R.check("trajectory training losses", {f"step {s}": (l, tj["train_loss"][s]) for s, l in losses.items()})
    R.check("trajectory validation losses", {f"step {s}": (v, gval[s]["val_loss"]) for s, v in vlosses.items()})
    R.check("trajectory logged lambdas", lams)


if __name__ == "__main__":
    main()
