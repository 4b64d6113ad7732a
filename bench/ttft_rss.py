#!/usr/bin/env python3
"""Time to first token and peak resident memory of ember-cli and llama.cpp on one GGUF file.

Each measurement is a fresh process with the file already in the page cache (one untimed
warm-up run first): load the model, run a PROMPT-token prompt, take the first token's
logits. Peak RSS is the process's high-water mark (getrusage); llama.cpp runs inside a
Python interpreter, whose own RSS (measured without a model) is printed beside it.
Usage: ttft_rss.py --ember build/bench/examples/ember-cli -m MODEL.gguf [-t 2] [--prompt 16]
"""
import argparse
import json
import subprocess
import sys

LLAMA = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from llama_cpp import Llama
t_import = time.perf_counter()
model, n_prompt, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if model == "-":
    print(json.dumps({"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    sys.exit()
t1 = time.perf_counter()
llm = Llama(model_path=model, n_ctx=512, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False)
t2 = time.perf_counter()
n_vocab = llm.n_vocab()
llm.eval([(i * 7919 + 2 * 104729 + 13) % n_vocab for i in range(n_prompt)])
t3 = time.perf_counter()
print(json.dumps({"load_s": t2 - t1, "ttft_s": t3 - t1,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def ember(cli, model, n_prompt, threads):
    out = subprocess.run([cli, "bench", "-m", model, "-p", str(n_prompt), "-n", "0", "-t", str(threads), "-c", "512",
                          "--json"], check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["load_s"], r["ttft_s"], r["peak_rss_mib"]


def llama(model, n_prompt, threads):
    out = subprocess.run([sys.executable, "-c", LLAMA, model, str(n_prompt), str(threads)], check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r.get("load_s", 0), r.get("ttft_s", 0), r["rss_mib"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ember", required=True)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    ember(a.ember, a.model, a.prompt, a.t)  # warm the page cache
    best = {}
    for _ in range(a.repeat):
        for name, fn in (("ember", lambda: ember(a.ember, a.model, a.prompt, a.t)),
                         ("llama.cpp", lambda: llama(a.model, a.prompt, a.t))):
            load, ttft, rss = fn()
            b = best.setdefault(name, [load, ttft, rss])
            best[name] = [min(b[0], load), min(b[1], ttft), max(b[2], rss)]
    python_rss = llama("-", 0, 1)[2]
    print(f"| engine | load s | time to first token ({a.prompt}-token prompt) s | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: |")
    for name, (load, ttft, rss) in best.items():
        extra = f" (Python alone: {python_rss:.0f})" if name == "llama.cpp" else ""
        print(f"| {name} | {load:.3f} | {ttft:.3f} | {rss:.0f}{extra} |")


if __name__ == "__main__":
    main()
