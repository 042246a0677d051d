import pytest

from e2h import text_format as tf


def test_prompt_is_reference_template():
    assert tf.format_prompt(" What is 2? ") == "# Question\n\nWhat is 2?\n\n# Solution\n\n"


@pytest.mark.parametrize(
    "steps, answer, text",
    [
        (["a = 1", "b = 2"], "3", "a = 1\n\nb = 2\n\n# Answer\n\n3"),
        ([], "7", "# Answer\n\n7"),
        (["only step"], None, "only step"),
        (["x", "# Answer\n\n4"], None, "x\n\n# Answer\n\n4"),
    ],
)
def test_format_and_split_round_trip(steps, answer, text):
    assert tf.format_solution(steps, answer) == text
    expected_steps = [s for s in steps] + ([tf.answer_step(answer)] if answer is not None else [])
    assert tf.split_solution(text) == expected_steps


def test_format_rejects_separator_inside_a_step_and_double_answer():
    with pytest.raises(ValueError, match="separator"):
        tf.format_solution(["one\n\ntwo"], "1")
    with pytest.raises(ValueError, match="already"):
        tf.format_solution(["# Answer\n\n1"], "1")


@pytest.mark.parametrize(
    "text, answer",
    [
        ("step\n\n# Answer\n\n42</s>junk", "42"),
        ("step\n\n# Answer\n\n 3/4 \n\nmore text", "3/4"),
        ("# Answer\n\n5", "5"),
        ("no answer line here", None),
        ("step\n\n# Answer\n\n", None),
        ("a\n\n# Answer\n\n1\n\n# Answer\n\n2", "1"),  # the first answer line: the solution ends there
    ],
)
def test_extract_final_answer(text, answer):
    assert tf.extract_final_answer(text, eos_token="</s>") == answer


@pytest.mark.parametrize(
    "raw",
    ["step.# Answer12", "step.\n# Answer\n12", "step.\n\n# Answer\n\n12", "step.# Answer\n\n12"],
)
def test_answer_marker_variants_normalise(raw):
    assert tf.normalize_answer_marker(raw) == "step.\n\n# Answer\n\n12"
    assert tf.split_solution(tf.normalize_answer_marker(raw)) == ["step.", "# Answer\n\n12"]
