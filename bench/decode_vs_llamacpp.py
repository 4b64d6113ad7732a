#!/usr/bin/env python3
"""Prompt processing and generation speed of ember-cli and llama.cpp on one GGUF file.

Alternates the two engines REPEAT times and keeps each one's best run. llama.cpp is its own
llama-bench (--llama-bench PATH, built by bench/build_llama_bench.sh from the llama-cpp-python
source distribution with MODELS.md's flags), or else the llama_cpp Python package built from
that same source, timed around its eval calls.

The roofline share of a generation rate is its tokens/s times the file's bytes over the read
bandwidth: a fixed --bandwidth, or with --membw PATH (bench/membw) a probe run with the same
threads right before and right after each engine's run, so that a rate is set against the
bandwidth of its own seconds: this VM's read bandwidth jumps between ~34 and ~55 GB/s from one
second to the next, so a run counts only where its two probes agree within 10%. The table then
gives the median of the counted runs' shares, and stderr each run's probes and share.
Usage: decode_vs_llamacpp.py --ember build/release/examples/ember-cli -m MODEL.gguf [--llama-bench PATH]
       [--bandwidth GBPS | --membw PATH]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def ember(cli, model, n_prompt, n_gen, threads, depth, kv):
    out = subprocess.run([cli, "bench", "-m", model, "-p", str(n_prompt), "-n", str(n_gen), "-t", str(threads),
                          "--depth", str(depth), "--kv-type", kv, "--json"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["pp"], r["tg"]


def llama_bench(path, model, n_prompt, n_gen, threads, depth, kv):
    # Two runs, as ember-cli bench measures: the prompt after `depth` tokens of context, then
    # generation after depth + n_prompt. llama-bench fills the context untimed, then times.
    def run(p, n, d):
        args = [path, "-m", model, "-t", str(threads), "-p", str(p), "-n", str(n), "-d", str(d), "-r", "1",
                "--no-warmup", "-o", "json"]
        if p > 512:  # the prompt as one batch, as ember-cli bench takes it (512 is llama-bench's default)
            args += ["-b", str(p), "-ub", str(p)]
        # llama-bench's default flash attention ("auto": on, on this CPU) decodes slower at depth
        # here than without it (Q4_0 tg16 after 1024: 6.1 vs 7.5 t/s); a q8_0 V cache needs it.
        args += ["-fa", "1", "-ctk", "q8_0", "-ctv", "q8_0"] if kv == "q8_0" else ["-fa", "0"]
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        return json.loads(out)[0]["avg_ts"]
    return run(n_prompt, 0, depth), run(0, n_gen, depth + n_prompt)


def llama(llm, n_prompt, n_gen, n_vocab, depth):
    # Wall-clock time around llama.cpp's own eval calls (its perf counters read zero through
    # the Python binding); the binding adds well under 0.1 ms per call. Same token ids as
    # ember-cli bench: --depth tokens of context first, then the prompt, then generation.
    ids = [(i * 7919 + 2 * 104729 + 13) % n_vocab for i in range(n_prompt)]
    gen = [(i * 7919 + 3 * 104729 + 13) % n_vocab for i in range(n_gen)]
    llm.reset()
    if depth:
        llm.eval([(i * 7919 + 104729 + 13) % n_vocab for i in range(depth)])
    t0 = time.perf_counter()
    llm.eval(ids)
    pp = n_prompt / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for t in gen:
        llm.eval([t])
    return pp, n_gen / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ember", required=True)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-p", type=int, default=64)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("--depth", type=int, default=0, help="tokens of context before the prompt")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bandwidth", type=float, default=0, help="read GB/s: adds each tg's share of the roofline")
    ap.add_argument("--kv", choices=("f16", "q8_0"), default="f16",
                    help="KV cache type of both engines (llama.cpp's q8_0 values need its flash attention)")
    ap.add_argument("--llama-bench", help="llama.cpp's llama-bench binary (else the llama_cpp Python package)")
    ap.add_argument("--membw", help="bench/membw: probe the read bandwidth around every run")
    a = ap.parse_args()
    if a.llama_bench:
        peer = lambda: llama_bench(a.llama_bench, a.model, a.p, a.n, a.t, a.depth, a.kv)
    else:
        from llama_cpp import Llama, llama_cpp  # only this path needs the Python package
        kv_args = {"type_k": llama_cpp.GGML_TYPE_Q8_0, "type_v": llama_cpp.GGML_TYPE_Q8_0,
                   "flash_attn": True} if a.kv == "q8_0" else {}
        llm = Llama(model_path=a.model, n_ctx=a.depth + a.p + a.n + 8, n_batch=max(a.p, 1), n_threads=a.t,
                    n_threads_batch=a.t, verbose=False, **kv_args)
        n_vocab = llm.n_vocab()
        peer = lambda: llama(llm, a.p, a.n, n_vocab, a.depth)
    size = os.path.getsize(a.model)
    probe = lambda: float(subprocess.run([a.membw, str(a.t)], check=True, capture_output=True,
                                         text=True).stdout.split()[-1])
    best = {"ember": [0, 0], "llama.cpp": [0, 0]}
    shares = {"ember": [], "llama.cpp": []}
    for r in range(a.repeat):
        for name, fn in (("ember", lambda: ember(a.ember, a.model, a.p, a.n, a.t, a.depth, a.kv)),
                         ("llama.cpp", peer)):
            before = probe() if a.membw else 0
            pp, tg = fn()
            best[name] = [max(best[name][0], pp), max(best[name][1], tg)]
            if a.membw:
                after = probe()
                share = tg * size / ((before + after) / 2 * 1e9)
                steady = abs(before - after) <= 0.1 * max(before, after)
                if steady:
                    shares[name].append(share)
                print(f"round {r + 1} {name}: membw {before:.1f} / {after:.1f} GB/s, tg {tg:.1f} t/s, "
                      f"{100 * share:.0f}% of roofline" + ("" if steady else " (probes disagree: not counted)"),
                      file=sys.stderr)
    e, l = best["ember"], best["llama.cpp"]
    tg = f"tg{a.n}" + (" after " + str(a.depth + a.p) if a.depth or a.p > 64 else "") + (
        ", q8_0 KV" if a.kv == "q8_0" else "")
    # Decode reads every weight once per token: the roofline is bandwidth / file size.
    roof = a.bandwidth * 1e9 / size if a.bandwidth > 0 else 0
    if a.membw:
        share = lambda name, tg_ts: (f" | {100 * statistics.median(shares[name]):.0f}% of {len(shares[name])}"
                                     if shares[name] else " | no steady run")
    elif roof:
        share = lambda name, tg_ts: f" | {100 * tg_ts / roof:.0f}%"
    else:
        share = lambda name, tg_ts: ""
    col = " | tg share of roofline" + (" (median of steady runs)" if a.membw else "") if roof or a.membw else ""
    print(f"| engine | pp{a.p} t/s | {tg} t/s{col} |")
    print("| --- | ---: | ---: |" + (" ---: |" if col else ""))
    print(f"| ember | {e[0]:.1f} | {e[1]:.1f}{share('ember', e[1])} |")
    peer_name = "llama-bench" if a.llama_bench else "llama.cpp (Python binding)"
    print(f"| {peer_name} | {l[0]:.1f} | {l[1]:.1f}{share('llama.cpp', l[1])} |")
    print(f"| ember / {peer_name} | {e[0] / l[0]:.2f}x | {e[1] / l[1]:.2f}x" + (" | |" if col else " |"))

if __name__ == "__main__":
    main()
