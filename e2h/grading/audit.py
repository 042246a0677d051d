"""The gold audit: can the grader read every gold answer as a whole?

Each gold goes through what ``grade`` does to a gold (answer extraction, cleaning, the whitelist parser).
A gold the parser cannot read is compared as a whole normalised string (never a fragment of it), which is
right only for exact rewrites; the audit lists those golds so that the set stays small and known.

    e2h grade --audit                         # MATH500 + MATH train golds in tests/data
    e2h grade --audit golds.jsonl other.jsonl # any JSONL with an "answer" (or "gold") field
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from e2h.grading.extract import answer_candidate
from e2h.grading.normalize import clean_answer
from e2h.grading.parse import ParseError, parse_answer

# The repository's copies of MATH500 and of the MATH train golds (tests/data/LICENSES.md).
DEFAULT_GOLD_FILES = tuple(Path(__file__).resolve().parents[2] / "tests" / "data" / name
                           for name in ("math500.jsonl", "math_train_golds.jsonl"))


@dataclass
class AuditResult:
    path: str
    golds: int = 0
    unparsed: list[tuple[str, str, str]] = field(default_factory=list)  # (id, gold, why)


def audit_gold(gold: str) -> str | None:
    """None when the grader parses ``gold`` as a whole; else why not."""
    whole = answer_candidate(gold) or gold
    try:
        parse_answer(clean_answer(whole))
    except ParseError as err:
        return str(err) or type(err).__name__
    except (RecursionError, ValueError, OverflowError, ZeroDivisionError) as err:
        return f"{type(err).__name__}: {err}"
    return None


def audit_file(path: str | Path) -> AuditResult:
    result = AuditResult(str(path))
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        gold = row.get("answer", row.get("gold"))
        if not isinstance(gold, str):
            continue
        result.golds += 1
        why = audit_gold(gold) if gold.strip() else "empty gold"
        if why is not None:
            result.unparsed.append((str(row.get("unique_id", row.get("id", f"line {n}"))), gold, why))
    return result
