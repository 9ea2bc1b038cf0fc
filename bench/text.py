"""Tiers 1-2 of the text signals: texts per second on one core, in micro-batches.

Run: ``.venv/bin/python bench/text.py [--n 4000] [--batch 256]``

Prints, on generated multilingual notes (the curated set's texts with random names and
words appended so that no two texts are equal):

- tier 1 alone (normalise, language, PII, spaCy patterns, gibberish);
- the embedding alone (USE-m3, batched; cache off: every text is new);
- tiers 1-2 end to end through ``TextClassifier.classify`` (patterns + embedding + head
  + recurring phrasing on in-process state), cold (cache off, every text new);
- the same with a realistic repetition (60% of texts drawn from 40 frequent phrasings,
  as shop notes are) and the embedding cache on.

The process is pinned to one CPU and BLAS to one thread; rates are per CPU-second of
the process (its one-core capacity), with the wall-clock rate and load beside them. Generated data, not the
shared corpora (no public order-note corpus exists).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAMES = ["Anna", "Jan", "Maria", "Piotr", "Lea", "Omar", "Noa", "Wei", "Luca", "Ines", "Sven", "Olga", "Yusuf",
         "Chloé", "Mateo", "Aiko", "Dara", "Femi", "Tomasz", "Greta"]
WORDS = ["thanks", "please", "today", "kindly", "merci", "danke", "gracias", "dzięki", "שלום", "شكرا", "谢谢",
         "regards", "cheers", "ok", "best", "soon", "asap", "bye", "hi", "hello"]


def corpus(n: int, *, seed: int = 1, frequent_share: float = 0.0, max_chars: int = 10_000) -> list[str]:
    from detector.text_train import load_curated

    rng = random.Random(seed)
    base = [r.text for r in load_curated() if len(r.text) <= max_chars]
    frequent = rng.sample(base, 40)
    out = []
    for _ in range(n):
        if rng.random() < frequent_share:
            out.append(rng.choice(frequent))
        else:
            out.append(f"{rng.choice(base)} {rng.choice(NAMES)} {rng.choice(WORDS)} {rng.choice(NAMES)}")
    return out


def rate(fn, texts: list[str], batch: int) -> str:
    """Texts per CPU-second of this process (one core, one thread) and per wall second.

    The CPU-time figure is the one-core capacity; on a shared machine the wall figure
    also counts time the scheduler gave to other processes.
    """
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(0, len(texts), batch):
        fn(texts[i : i + batch])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return f"{len(texts) / cpu:,.0f} texts/s per CPU-second ({len(texts) / wall:,.0f}/s wall, load {os.getloadavg()[0]:.1f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    from detector.text_stage import TextClassifier, TextInput
    from features.state import MemoryState
    from features.text.embed import Embedder
    from features.text.extract import TextExtractor
    from features.text.phrasing import PhraseClusterer
    from models.text.head import TextHead

    t = time.perf_counter()
    extractor = TextExtractor()
    t_patterns = time.perf_counter() - t
    t = time.perf_counter()
    cold = Embedder(cache_size=0).warm()
    t_embed = time.perf_counter() - t
    print(f"start-up: spaCy patterns {t_patterns:.2f}s ({extractor.matcher.n_patterns} phrases), USE-m3 load {t_embed:.2f}s")

    texts = corpus(args.n)
    avg_len = sum(map(len, texts)) / len(texts)
    print(f"corpus: {len(texts)} unique generated notes in 8+ languages, mean {avg_len:.0f} chars, batch {args.batch}")
    # Warm the code paths once (allocations, lazy imports) before timing.
    extractor.extract(texts[:64])
    cold.encode([e.embed_input for e in extractor.extract(texts[:64])])

    print(f"tier 1 only (normalise, language, PII, patterns, gibberish): {rate(extractor.extract, texts, args.batch)}")
    exs = extractor.extract(texts)
    tok = cold._encoder()._tokenizer
    n_tok = sum(len(tok.encode(e.embed_input)) for e in exs) / len(exs)
    print(f"embedding only (USE-m3, cache off, {n_tok:.1f} tokens/text): "
          f"{rate(cold.encode, [e.embed_input for e in exs], args.batch)}")

    head = TextHead.load()

    def run(texts_: list[str], embedder: Embedder, label: str) -> None:
        clf = TextClassifier(extractor=extractor, embedder=embedder, head=head,
                             phrasing=PhraseClusterer.with_baseline(embedder.encode, MemoryState()))
        t0 = datetime(2026, 11, 22, tzinfo=UTC)
        counter = iter(range(10**9))

        def classify(chunk: list[str]) -> None:
            clf.classify([TextInput(x, account=f"c-{k % 500}", event_id=f"e-{k}", at=t0 + timedelta(seconds=k))
                          for x in chunk for k in [next(counter)]])

        print(f"{label}{rate(classify, texts_, args.batch)}")

    run(texts, cold, "tiers 1-2 end to end, cold (every text new, cache off): ")
    short = corpus(args.n, seed=3, max_chars=40)
    print(f"short notes (curated texts <= 40 chars + 3 random words, mean {sum(map(len, short)) / len(short):.0f} chars):")
    run(short, cold, "  tiers 1-2 end to end, cold: ")
    mixed = corpus(args.n, seed=2, frequent_share=0.6)
    run(mixed, Embedder(cache_size=50_000).warm(), "tiers 1-2 end to end, 60% frequent phrasings, cache on: ")
    print("target: >= 1,000 texts/s on one core (tiers 1-2)")


if __name__ == "__main__":
    main()
