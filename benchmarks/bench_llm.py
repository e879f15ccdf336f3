"""Seconds per label of KAP description generation with the offline LLM (SmolLM2-135M-Instruct,
Q4_1 GGUF) on this CPU: model load (GGUF de-quantisation, and the cached float32 copy),
generation per label with the in-context prompt, and the two together.

    python benchmarks/bench_llm.py [--labels 8] [--batch-size 8] [--threads N]
"""

from __future__ import annotations

import time

from _common import benchmark_parser, set_threads

from sspa_core.data.labels import load_label_names
from sspa_core.descriptions import generate_descriptions
from sspa_core.llm import load_causal_lm, offline_llm_path


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--labels", type=int, default=8, help="number of COCO labels to describe")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    threads = set_threads(args)
    labels = load_label_names("coco")[: args.labels]
    print(f"offline LLM: {offline_llm_path()}")
    print(f"torch threads: {threads}, labels: {len(labels)}, batch size: {args.batch_size}, "
          f"max new tokens: {args.max_new_tokens}")

    start = time.perf_counter()
    load_causal_lm(cache=False)
    cold = time.perf_counter() - start
    load_causal_lm(cache=True)  # writes the float32 copy if it is not there yet
    start = time.perf_counter()
    llm = load_causal_lm(cache=True)
    warm = time.perf_counter() - start

    start = time.perf_counter()
    doc = generate_descriptions(labels, "natural", llm=llm, batch_size=args.batch_size,
                                max_new_tokens=args.max_new_tokens)
    per_label = (time.perf_counter() - start) / len(labels)

    n = len(labels)
    print(f"load from GGUF (de-quantise):        {cold:7.2f} s")
    print(f"load from the cached float32 copy:   {warm:7.2f} s")
    print(f"generation per label:                {per_label:7.2f} s/label")
    print(f"per label incl. GGUF load ({n} labels): {(cold + per_label * n) / n:7.2f} s/label")
    print(f"per label incl. cached load ({n} labels): {(warm + per_label * n) / n:7.2f} s/label")
    post = doc["provenance"]["postprocess"]
    print(f"post-processing: repaired {len(post['repaired'])}, truncated {len(post['truncated'])}, "
          f"fallback {len(post['fallback'])}")
    for label, sentence in doc["descriptions"].items():
        print(f"  {label}: {sentence}")


if __name__ == "__main__":
    main()
