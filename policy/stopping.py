"""Where a sampled solution ends: EOS after the answer line, as the reference trains it.

The reference SFT appends EOS after ``"# Answer\\n\\n{answer}"``, so EOS is the real stop and vLLM stops on it
by default. A model that has not learned EOS well keeps going after the answer (``"...# Answer\\n\\n7\\n\\nWe"``).
vLLM cannot express "stop at the next blank line, but only after '# Answer'" (stop strings are unconditional,
and "\\n\\n" also ends every reasoning step), so instead of a logits processor we cut the text after sampling:
everything after the answer line's end is dropped and the row's ``finish_reason`` says ``"answer_end"``.
``num_tokens`` keeps counting what the model generated (the compute spent), not what was kept.

    >>> cut_after_answer_line("Add.\\n\\n# Answer\\n\\n7\\n\\nMore text")
    ('Add.\\n\\n# Answer\\n\\n7', True)
    >>> cut_after_answer_line("Add.\\n\\n# Answer\\n\\n7")
    ('Add.\\n\\n# Answer\\n\\n7', False)
"""

from __future__ import annotations

from e2h.text_format import (ANSWER_MARKER, ANSWER_PREFIX, STEP_SEPARATOR, extract_final_answer, is_answer_step,
                             split_solution)


def cut_after_answer_line(text: str) -> tuple[str, bool]:
    """Return (text up to the end of the first answer line, whether anything was cut)."""
    start = text.find(ANSWER_MARKER)
    if text.lstrip().startswith(ANSWER_PREFIX):  # the solution opens with the answer step
        answer_from = len(text) - len(text.lstrip()) + len(ANSWER_PREFIX)
    elif start >= 0:
        answer_from = start + len(ANSWER_MARKER)
    else:
        return text, False
    end = text.find(STEP_SEPARATOR, answer_from)
    if end < 0:
        return text, False
    return text[:end], True


def is_complete_solution(text: str) -> bool:
    """True for text in the step format that ends with its answer line: at least one reasoning step, then
    ``# Answer`` and a non-empty answer, nothing after it.

    >>> is_complete_solution("We add.\\n\\n# Answer\\n\\n7"), is_complete_solution("We add.\\n\\n7")
    (True, False)
    """
    steps = split_solution(text)
    if len(steps) < 2 or not is_answer_step(steps[-1]) or any(is_answer_step(s) for s in steps[:-1]):
        return False
    return extract_final_answer(text) is not None and cut_after_answer_line(text)[0] == text.rstrip()
