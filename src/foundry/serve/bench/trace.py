"""Read a request trace (arrival time, prompt tokens, output tokens per request) from a CSV file.

Two layouts are understood, both of the Azure LLM inference trace 2023 (CC-BY-4.0; Patel et al.,
"Splitwise", ISCA 2024):

- the original ``AzureLLMInferenceTrace_{conv,code}.csv``: ``TIMESTAMP`` (a date-time such as
  ``2023-11-16 18:15:46.6805900``), ``ContextTokens``, ``GeneratedTokens``;
- Vidur's re-export: ``arrived_at`` (seconds), ``num_prefill_tokens``, ``num_decode_tokens``.

Arrival times come back in seconds relative to the first row. The project reads traces from a path
the user gives; it ships no copy of them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

LAYOUTS: dict[str, tuple[str, str, str]] = {
    "vidur": ("arrived_at", "num_prefill_tokens", "num_decode_tokens"),
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
}


@dataclass(frozen=True)
class Trace:
    """Per-request columns of a trace, in arrival order. Times in seconds from the first request."""

    arrival_times: np.ndarray  # [N] float64
    prompt_lens: np.ndarray  # [N] int64
    output_lens: np.ndarray  # [N] int64

    def __len__(self) -> int:
        return len(self.prompt_lens)

    @property
    def rate(self) -> float:
        """Mean arrival rate (requests/s) over the trace's span."""
        span = float(self.arrival_times[-1] - self.arrival_times[0])
        return (len(self) - 1) / span if span > 0 else float("inf")


def _parse_timestamp(text: str) -> float:
    # Azure writes 7 fractional digits; datetime takes at most 6.
    head, _, frac = text.strip().partition(".")
    stamp = datetime.fromisoformat(head)
    return stamp.timestamp() + (float("0." + frac) if frac else 0.0)


def read_trace(path: str | Path) -> Trace:
    """Read a trace CSV in either layout; raises ``ValueError`` naming the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"trace: no such file {path}")
    try:
        return _read_rows(path)
    except (UnicodeDecodeError, csv.Error):
        wanted = " or ".join(", ".join(cols) for cols in LAYOUTS.values())
        raise ValueError(f"trace: {path} is not a CSV text file; expected the columns {wanted}") from None


def _read_rows(path: Path) -> Trace:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        layout = next((name for name, cols in LAYOUTS.items() if set(cols) <= set(header)), None)
        if layout is None:
            wanted = " or ".join(", ".join(cols) for cols in LAYOUTS.values())
            raise ValueError(f"trace: {path} has columns {header}; expected {wanted}")
        time_col, prompt_col, output_col = LAYOUTS[layout]
        times, prompts, outputs = [], [], []
        for line, row in enumerate(reader, start=2):
            try:
                t = _parse_timestamp(row[time_col]) if layout == "azure" else float(row[time_col])
                p, o = int(row[prompt_col]), int(row[output_col])
            except (TypeError, ValueError) as e:
                raise ValueError(f"trace: {path} line {line}: cannot parse {dict(row)} ({e})") from None
            if p < 0 or o < 0:
                raise ValueError(f"trace: {path} line {line}: negative token count in {dict(row)}")
            times.append(t)
            prompts.append(p)
            outputs.append(o)
    if not times:
        raise ValueError(f"trace: {path} has no rows")
    arrival = np.asarray(times, dtype=np.float64)
    order = np.argsort(arrival, kind="stable")
    arrival = arrival[order] - arrival[order][0]
    return Trace(
        arrival, np.asarray(prompts, dtype=np.int64)[order], np.asarray(outputs, dtype=np.int64)[order]
    )
