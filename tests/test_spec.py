"""Task spec: construction, validation messages, files, overrides, round trip."""

import json

import pytest

from bertbridge.core.errors import SpecError
from bertbridge.core.spec import TaskSpec, apply_overrides


def test_defaults_are_the_documented_ones():
    spec = TaskSpec()
    assert spec.task.type == "text_classification"
    assert spec.model.name == "minilm"
    assert spec.backend is None
    assert spec.training.epochs == 3 and spec.training.batch_size == 32


def test_round_trip_through_dict_yaml_and_json(tmp_path):
    import yaml

    spec = TaskSpec.from_dict({
        "task": {"multi_label": True, "threshold": 0.3},
        "data": {"train": "/d/t.jsonl", "labels": ["a", "b", "c"], "text_pair_column": "q"},
        "training": {"epochs": 2, "early_stopping": {"patience": 1, "metric": "macro_f1"}},
        "backend": "pytorch",
        "output_dir": "/models/out",
    })
    assert TaskSpec.from_dict(spec.to_dict()) == spec
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec.to_dict()))
    (tmp_path / "s.json").write_text(json.dumps(spec.to_dict()))
    assert TaskSpec.from_file(tmp_path / "s.yaml") == spec
    assert TaskSpec.from_file(tmp_path / "s.json") == spec
    assert spec.data.labels == ("a", "b", "c")


def test_specs_are_frozen():
    with pytest.raises(Exception):
        TaskSpec().training.epochs = 5  # type: ignore[misc]


def test_relative_paths_resolve_against_the_spec_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "spec.yaml").write_text("data:\n  train: data/train.tsv\noutput_dir: out\n")
    spec = TaskSpec.from_file(tmp_path / "sub" / "spec.yaml")
    assert spec.data.train == str(tmp_path / "sub" / "data" / "train.tsv")
    assert spec.output_dir == str(tmp_path / "sub" / "out")
    assert spec.model.name == "minilm"  # an alias is not a path


def test_overrides_parse_values_as_yaml(tmp_path):
    (tmp_path / "s.yaml").write_text("training:\n  epochs: 3\n")
    spec = TaskSpec.from_file(
        tmp_path / "s.yaml",
        ["training.epochs=5", "training.learning_rate=2e-5", "training.mixed_precision=true", "data.labels=[x, y]", "backend=tensorflow"],
    )
    assert spec.training.epochs == 5
    assert spec.training.learning_rate == pytest.approx(2e-5)
    assert spec.training.mixed_precision is True
    assert spec.data.labels == ("x", "y")
    assert spec.backend == "tensorflow"
    assert TaskSpec().with_overrides(["training.seed=9"]).training.seed == 9


@pytest.mark.parametrize("override", ["training.epochs", "=3", "training..epochs=3"])
def test_malformed_override_is_explained(override):
    with pytest.raises(SpecError, match="section.field=value"):
        apply_overrides({}, [override])


def test_override_into_a_value_is_refused():
    with pytest.raises(SpecError, match="'backend' is a value, not a section"):
        apply_overrides({"backend": "pytorch"}, ["backend.name=x"])


@pytest.mark.parametrize(
    "data, message",
    [
        ({"training": {"epcohs": 3}}, r"spec\.training\.epcohs is not a known field\. Did you mean 'epochs'\?"),
        ({"training": {"epochs": "three"}}, r"spec\.training\.epochs must be an integer, got 'three'"),
        ({"training": {"epochs": 0}}, r"spec\.training\.epochs must be >= 1"),
        ({"training": {"mixed_precision": "yes"}}, r"mixed_precision must be true or false"),
        ({"data": {"header": False, "text_column": "text"}}, r"header is false, so columns are 0-based indices"),
        ({"data": {"labels": ["a", "a", "b"]}}, r"lists \['a'\] more than once"),
        ({"data": {"labels": ["a", "b"], "labels_file": "l.txt"}}, r"either 'labels' or 'labels_file'"),
        ({"task": {"threshold": 1.5}}, r"threshold must be between 0 and 1"),
        ({"training": {"max_seq_length": 4}}, r"max_seq_length must be between 8 and 8192"),
        ({"data": {"format": "xlsx"}}, r"must be one of: csv, tsv, jsonl"),
        ({"training": []}, r"spec\.training must be a mapping of fields"),
        ({"data": {"labels": [True, False]}}, r"spec\.data\.labels has True, which is not a label name\. In YAML, yes/no/true/false/null are not strings: quote them"),
        ({"training": {"seed": -1}}, r"spec\.training\.seed must be between 0 and 2\*\*32 - 1"),
    ],
)
def test_bad_fields_name_their_path_and_fix(data, message):
    with pytest.raises(SpecError, match=message):
        TaskSpec.from_dict(data)


def test_task_type_is_checked_against_the_task_registry():
    import bertbridge

    with pytest.raises(SpecError, match=r"invalid task type 'text_clasification'; available: question_answering, "
                                         r"text_classification\. Did you mean 'text_classification'\?"):
        bertbridge.load_spec({"task": {"type": "text_clasification"}})
    with pytest.raises(SpecError, match=r"spec\.task\.multi_label only applies to type 'text_classification'"):
        bertbridge.load_spec({"task": {"type": "question_answering", "multi_label": True}})


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  epochs: [1\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: invalid YAML at line \d+"):
        TaskSpec.from_file(bad)
    with pytest.raises(SpecError, match="spec file not found"):
        TaskSpec.from_file(tmp_path / "missing.yaml")
    (tmp_path / "s.txt").write_text("x")
    with pytest.raises(SpecError, match=r"must end in \.yaml, \.yml or \.json"):
        TaskSpec.from_file(tmp_path / "s.txt")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="top level must be a mapping"):
        TaskSpec.from_file(tmp_path / "list.yaml")
    (tmp_path / "field.yaml").write_text("training:\n  batch_size: -1\n")
    with pytest.raises(SpecError, match=r"field\.yaml: spec\.training\.batch_size must be >= 1"):
        TaskSpec.from_file(tmp_path / "field.yaml")


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    yaml_spec = tmp_path / "dup.yaml"
    yaml_spec.write_text("data:\n  train: train.tsv\ntraining:\n  epochs: 2\n  batch_size: 8\n  epochs: 3\n")
    with pytest.raises(SpecError, match=r"dup\.yaml: key 'epochs' appears twice in one mapping \(lines 4 and 6\)"):
        TaskSpec.from_file(yaml_spec)
    json_spec = tmp_path / "dup.json"
    json_spec.write_text('{"data": {"train": "train.tsv"},\n "training": {"epochs": 2,\n   "epochs": 3}}')
    with pytest.raises(SpecError, match=r"dup\.json: key 'epochs' appears twice in one object \(lines 2, 3\)"):
        TaskSpec.from_file(json_spec)
    merged = tmp_path / "merge.yaml"  # a YAML merge key may be overridden: that is not a duplicate
    merged.write_text("data: {train: train.tsv}\nbase: &base {epochs: 2, batch_size: 4}\n"
                      "training:\n  <<: *base\n  epochs: 3\n")
    from bertbridge.core.spec import load_mapping

    assert load_mapping(merged)["training"] == {"epochs": 3, "batch_size": 4}


def test_yaml_values_it_cannot_build_and_deep_nesting_are_spec_errors(tmp_path):
    bad_date = tmp_path / "date.yaml"
    bad_date.write_text("training:\n  seed: 2020-02-30\n")  # YAML reads this as a date, and there is no such day
    with pytest.raises(SpecError, match=r"date\.yaml: invalid YAML"):
        TaskSpec.from_file(bad_date)
    for name, text in (("deep.yaml", "a: " + "[" * 5000 + "]" * 5000), ("deep.json", "[" * 100000 + "]" * 100000)):
        (tmp_path / name).write_text(text)
        with pytest.raises(SpecError, match=rf"{name.replace('.', chr(92) + '.')}: .*(nested too deeply|invalid)"):
            TaskSpec.from_file(tmp_path / name)


def _laughs(levels: int) -> str:
    """A "billion laughs" YAML: each level is nine aliases of the one before."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ntraining: {{epochs: *l{levels - 1}}}\n"


def test_yaml_alias_bombs_are_refused_and_errors_stay_short(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_laughs(9))  # 9**9 = 387 million strings once expanded: refused before anything is built
    with pytest.raises(SpecError, match=r"bomb\.yaml: its YAML aliases expand to more than 100,000 values"):
        TaskSpec.from_file(bomb)
    small = tmp_path / "small.yaml"
    levels = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 5)]
    small.write_text(f"training:\n  epochs: [{', '.join(levels)}]\n")  # 66,000 values: allowed, but not an integer
    with pytest.raises(SpecError, match=r"spec\.training\.epochs must be an integer") as err:
        TaskSpec.from_file(small)
    assert len(str(err.value)) < len(str(small)) + 300  # the value is shown cut, never in full


def test_integer_columns_and_numeric_labels_are_accepted():
    spec = TaskSpec.from_dict({"data": {"header": False, "text_column": 3, "label_column": 1, "labels": [0, 1]}})
    assert spec.data.text_column == 3
    assert spec.data.labels == ("0", "1")


def test_the_tuning_section_round_trips_and_resolves_its_folder(tmp_path):
    (tmp_path / "spec.yaml").write_text(
        "tuning:\n  trials: 4\n  out_dir: study\n  parameters:\n"
        "    training.learning_rate: {log_uniform: [1.0e-5, 1.0e-4]}\n    training.epochs: {choice: [2, 3]}\n"
        "    training.warmup_ratio: {uniform: [0, 0.2]}\n    training.max_seq_length: {int_uniform: [32, 64]}\n")
    spec = TaskSpec.from_file(tmp_path / "spec.yaml")
    assert [(p.path, p.kind, p.values) for p in spec.tuning.parameters.parameters] == [
        ("training.learning_rate", "log_uniform", (1e-5, 1e-4)), ("training.epochs", "choice", (2, 3)),
        ("training.warmup_ratio", "uniform", (0.0, 0.2)), ("training.max_seq_length", "int_uniform", (32, 64))]
    assert spec.tuning.out_dir == str(tmp_path / "study")
    assert TaskSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.to_dict()["tuning"]["parameters"]["training.epochs"] == {"choice": [2, 3]}


@pytest.mark.parametrize("parameters, message", [
    ({"training.epochs": {"uniform": [1, 3]}}, r"training\.epochs takes an integer; uniform draws real numbers, so use int_uniform or choice"),
    ({"training.epoch": {"choice": [1, 2]}}, r"training\.epoch is not a spec field"),
    ({"data.train": {"choice": ["a.tsv"]}}, r"only fields of task, model, training can be searched"),
    ({"training.learning_rate": {"log_uniform": [0, 1e-4]}}, r"log_uniform needs low > 0"),
    ({"training.learning_rate": {"log_uniform": [1e-5, 2]}}, r"the value 2\.0 is not valid there: spec\.training\.learning_rate must be in \(0, 1\)"),
    ({"training.learning_rate": {"log_uniform": [1e-4, 1e-5]}}, r"low must be below high"),
    ({"training.epochs": {"choice": [2, "x"]}}, r"the value 'x' is not valid there"),
    ({"training.epochs": {"int_uniform": [1.5, 3]}}, r"int_uniform must be \[low, high\] with whole numbers"),
    ({"training.learning_rate": {"normal": [1, 2]}}, r"normal is not a distribution; .* Did you mean 'uniform'\?"),
    ({"training.learning_rate": [1e-5, 1e-4]}, r"must be one distribution"),
    ({"training.early_stopping": {"choice": [1]}}, r"is not a single value that can be searched"),
    ({"task.type": {"int_uniform": [1, 2]}}, r"task\.type takes a string; use choice"),
])
def test_a_bad_search_space_names_the_parameter_and_the_fix(parameters, message):
    with pytest.raises(SpecError, match=r"spec\.tuning\.parameters\.[a-z_.]+.*" + message):
        TaskSpec.from_dict({"tuning": {"parameters": parameters}})
