"""Seed the fuzzer's corpus from the golden vectors: each frame as a raw-bytes operation.

python firmware/tools/fuzz_seeds.py tests/vectors/wire-v1.json firmware/build/fuzz-corpus
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def frames(doc: dict) -> list[bytes]:  # type: ignore[type-arg]
    out = [bytes.fromhex(v["hex"]) for v in doc["valid"] + doc["malformed"]]
    out.append(bytes.fromhex(doc["resync"]["hex"]))
    for ex in doc["exchanges_1_1"]:
        out += [bytes.fromhex(s["send"]) for s in ex["steps"]]
    return out


def main() -> int:
    vectors, corpus = Path(sys.argv[1]), Path(sys.argv[2])
    corpus.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames(json.loads(vectors.read_text()))):
        chunks = [f[k : k + 1020] for k in range(0, len(f), 1020)]
        seed = b"".join(bytes((0, (len(c) + 3) // 4)) + c for c in chunks) + b"\x02\x40"
        (corpus / f"vector-{i:03d}").write_bytes(seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
