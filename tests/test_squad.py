"""Reading SQuAD JSON: v1.1/v2.0, all answers kept, one clear error per kind of bad input."""

import json
from pathlib import Path

import pytest

from bertbridge.core.errors import DataError
from bertbridge.core.tasks.qa.squad import Answer, QAExample, examples_from_pairs, read_squad

FIXTURE = Path(__file__).parent / "fixtures" / "squad" / "dev_small_v2.json"
CONTEXT = "Jane Austen wrote Emma in 1815. Emma is a comedy."


def squad_file(tmp_path, qas, *, context=CONTEXT, version="1.1", title="Emma", name="train.json"):
    top = {"data": [{"title": title, "paragraphs": [{"context": context, "qas": qas}]}]}
    if version is not None:
        top["version"] = version
    path = tmp_path / name
    path.write_text(json.dumps(top), encoding="utf-8")
    return path


def qa(qid="q1", question="Who wrote Emma?", answers=(("Jane Austen", 0),), **extra):
    return {"id": qid, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers], **extra}


def test_reads_the_v2_fixture_with_every_answer_and_the_title():
    squad = read_squad(FIXTURE)
    assert (squad.version, squad.v2, len(squad)) == ("2.0", True, 8)
    q1 = squad.examples[0]
    assert q1.id == "q1" and q1.title == "Eiffel_Tower" and not q1.is_impossible
    assert [a.text for a in q1.answers] == ["The Eiffel Tower", "Eiffel Tower"]
    assert all(q1.context[a.start : a.end] == a.text for e in squad.examples for a in e.answers)
    q5 = squad.examples[4]
    assert q5.is_impossible and q5.answers == ()


def test_v1_file_and_inferred_versions(tmp_path):
    squad = read_squad(squad_file(tmp_path, [qa()]))
    assert (squad.version, squad.v2) == ("1.1", False)
    assert squad.examples[0] == QAExample("q1", "Who wrote Emma?", CONTEXT, (Answer("Jane Austen", 0),), False, "Emma")
    assert read_squad(squad_file(tmp_path, [qa()], version=None)).version == "1.1"
    inferred = read_squad(squad_file(tmp_path, [qa(is_impossible=False)], version=None))
    assert (inferred.version, inferred.v2) == ("2.0", True)
    assert read_squad(squad_file(tmp_path, [qa()], version="v2.0")).v2 is True


def test_prediction_input_may_lack_answers_training_input_may_not(tmp_path):
    path = squad_file(tmp_path, [{"id": "q9", "question": "When?"}])
    assert read_squad(path, require_answers=False).examples[0].answers == ()
    with pytest.raises(DataError, match=r"train\.json: question 'q9' .* has no answers and is not marked is_impossible"):
        read_squad(path)


def test_unicode_answer_offsets_count_characters(tmp_path):
    context = "Café naïve 😀 Zoë  left."
    path = squad_file(tmp_path, [qa(answers=(("Zoë", context.index("Zoë")),))], context=context)
    assert read_squad(path).examples[0].answers[0].text == "Zoë"


@pytest.mark.parametrize(
    "content, expected",
    [
        (b'{"data": [}', r"bad\.json, line 1, column 11: invalid JSON"),
        (b'{"data": []}\n\n{"x": 1}', r"bad\.json, line 3, column 1: invalid JSON \(Extra data\)"),
        (b'{"data": [{"title": "caf\xe9"}]}', r"bad\.json, line 1: bytes that are not valid UTF-8 .*re-save the file as UTF-8"),
        (b"[1, 2]", r"bad\.json: not a SQuAD file: .* found list"),
        (b'{"version": "1.1"}', r"bad\.json: not a SQuAD file: .* found no 'data' key"),
        (b'{"data": {"a": 1}}', r"bad\.json: not a SQuAD file: .* found 'data' holding dict"),
        (b'{"data": [{"title": "T"}]}', r"bad\.json: article 0 of 'data' must be an object with a 'paragraphs' list"),
        (b'{"data": [{"title": "T", "paragraphs": [{"qas": []}]}]}', r"bad\.json: article 0 \('T'\), paragraph 0 has no 'context'"),
        (b'{"data": [{"title": "T", "paragraphs": [{"context": "c"}]}]}', r"bad\.json: article 0 \('T'\), paragraph 0 has no 'qas'"),
        (b'{"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": []}]}]}', r"bad\.json: holds no questions"),
    ],
)
def test_file_level_errors_name_the_file_and_position(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected):
        read_squad(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.json: file not found"):
        read_squad(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "question, expected",
    [
        ({"question": "Who?", "answers": []}, r"article 0 \('Emma'\), paragraph 0, question 0 has no 'id'"),
        ({"id": "q7", "answers": []}, r"question 'q7' \(article 0 \('Emma'\), paragraph 0\) has no 'question'"),
        (qa("q7", question="   "), r"question 'q7' .*: the question text is empty"),
        (qa("q7", is_impossible="no"), r"question 'q7' .*'is_impossible' must be true or false"),
        (qa("q7", is_impossible=True), r"question 'q7' .* is marked is_impossible but has 1 answer"),
        ({**qa("q7"), "answers": {"text": "x"}}, r"question 'q7' .*'answers' must be a list"),
        ({**qa("q7"), "answers": [{"text": "Jane Austen", "answer_start": "0"}]},
         r"question 'q7' .*answer 0 \('Jane Austen'\) has 'answer_start' '0'; it must be an integer .* occurs at offset 0"),
        (qa("q7", answers=(("Emma", 99),)), r"question 'q7' .*answer_start 99, outside the context of 49 characters"),
        (qa("q7", answers=(("", 3),)), r"question 'q7' .*answer 0 has an empty or non-text 'text'"),
    ],
)
def test_question_level_errors_name_the_question_id(tmp_path, question, expected):
    with pytest.raises(DataError, match=r"train\.json: .*" + expected):
        read_squad(squad_file(tmp_path, [question]))


def test_misplaced_answer_says_what_is_there_and_suggests_the_nearest_offset(tmp_path):
    path = squad_file(tmp_path, [qa("q3", answers=(("Emma", 33),))])
    with pytest.raises(DataError) as err:
        read_squad(path)
    message = str(err.value)
    assert str(path) in message and "question 'q3'" in message
    assert "answer 0 is 'Emma' but the context has 'mma ' at answer_start 33" in message
    assert "occurs at offset 32 (of 2 occurrences); set answer_start to 32" in message
    assert "\n" not in message


def test_answer_not_in_the_context_at_all(tmp_path):
    with pytest.raises(DataError, match=r"question 'q4' .*the context has 'Jane' .*does not occur in the context at all"):
        read_squad(squad_file(tmp_path, [qa("q4", answers=(("Mary", 0),))]))


def test_duplicate_ids_name_both_places(tmp_path):
    top = {"data": [
        {"title": "A", "paragraphs": [{"context": CONTEXT, "qas": [qa("dup")]}]},
        {"title": "B", "paragraphs": [{"context": CONTEXT, "qas": [qa("other"), qa("dup")]}]},
    ]}
    path = tmp_path / "dups.json"
    path.write_text(json.dumps(top))
    with pytest.raises(DataError, match=(
        r"dups\.json: question id 'dup' \(article 1 \('B'\), paragraph 0, question 1\) was already used by "
        r"article 0 \('A'\), paragraph 0, question 0"
    )):
        read_squad(path)


def test_numeric_ids_become_strings(tmp_path):
    assert read_squad(squad_file(tmp_path, [qa(qid=17)])).examples[0].id == "17"


def test_examples_from_pairs():
    examples = examples_from_pairs(["Who?", "When?"], ["Jane did.", "In 1815."])
    assert [(e.id, e.question, e.context, e.answers, e.is_impossible) for e in examples] == [
        ("0", "Who?", "Jane did.", (), False), ("1", "When?", "In 1815.", (), False)]
    assert [e.id for e in examples_from_pairs(["a?"], ["b"], ids=["x"])] == ["x"]


@pytest.mark.parametrize(
    "args, expected",
    [
        ((["Who?", "  "], ["c", "c"]), r"question 1 is empty"),
        ((["Who?"], [""]), r"context 0 is empty"),
        ((["Who?", 3], ["c", "c"]), r"question 1 must be a string, got int"),
        ((["Who?"], ["c", "d"]), r"got 1 question\(s\) but 2 context\(s\)"),
        (("Who?", ["c"]), r"lists of strings, not single strings"),
        ((["a", "b"], ["c", "d"], ["x", "x"]), r"id 'x' of item 1 was already used by item 0"),
        ((["a"], ["c"], ["x", "y"]), r"got 2 id\(s\) for 1 question"),
    ],
)
def test_examples_from_pairs_errors_name_the_item(args, expected):
    with pytest.raises(DataError, match=expected):
        examples_from_pairs(*args)
