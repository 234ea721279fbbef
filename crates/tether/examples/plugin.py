"""A plugin-style script: it only exports functions and lets the host call them.

Run it with `cargo run --example plugin`.
"""

from collections import Counter
from typing import Dict, List

import tether


@tether.export
def word_count(text: str) -> int:
    """Number of words in text."""
    return len(text.split())


@tether.export
def top_words(text: str, n: int = 3) -> List[List[object]]:
    """The n most common words with their counts."""
    return [[w, c] for w, c in Counter(text.lower().split()).most_common(n)]


@tether.export("stats")
def text_stats(text: str) -> Dict[str, int]:
    """Characters, words and lines."""
    return {"chars": len(text), "words": len(text.split()), "lines": text.count("\n") + 1}


if __name__ == "__main__":
    tether.serve()  # answer the host until it shuts the plugin down
